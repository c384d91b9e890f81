"""Deprecated: moved to `aigi.inference.rows` and `aigi.inference.inputs` (this path works until aigi 0.2, with a
DeprecationWarning)."""

from .._deprecated import moved_names

__getattr__ = moved_names(__name__, "aigi.inference.rows", {
    name: "aigi.inference.inputs" for name in ("FILE_FIELDS", "RECORD_FIELDS", "file_entries", "record_entries")
})
