"""Sharing detectors: model cards with measured results, and Hub-ready export folders."""
