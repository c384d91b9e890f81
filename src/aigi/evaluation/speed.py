"""Deprecated: moved to `aigi.inference.speed` (this path works until aigi 0.2, with a DeprecationWarning)."""

from .._deprecated import moved_names

__getattr__ = moved_names(__name__, "aigi.inference.speed")
