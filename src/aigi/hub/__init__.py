"""Sharing detectors: model cards with measured results, Hub-ready export folders, and Space folders of the demo."""
