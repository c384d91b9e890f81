"""Detector families: configuration, modeling and image processing, one folder each (inference only)."""
