"""Old import paths of names that moved, kept for one release (0.2) with a DeprecationWarning; see the README's
changelog."""

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def moved_names(old_module: str, new_module: str, elsewhere: Mapping[str, str] | None = None) -> Callable[[str], Any]:
    """A module `__getattr__` for `old_module`: a name is looked up in `new_module`, or where `elsewhere[name]`
    says ("module" or "module:new_name"), with a DeprecationWarning pointing to its new place."""
    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        module, _, new_name = (elsewhere or {}).get(name, new_module).partition(":")
        new_name = new_name or name
        value = getattr(importlib.import_module(module), new_name)
        warnings.warn(f"{old_module}.{name} moved to {module}.{new_name}; the old path goes away after aigi 0.2",
                      DeprecationWarning, stacklevel=2)
        return value

    return __getattr__
