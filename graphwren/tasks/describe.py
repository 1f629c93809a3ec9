"""Readable names for user functions, for stage labels and messages: workers label with them too."""
from __future__ import annotations

import functools
from typing import Any


def funcname(fn: Any) -> str:
    """A short readable name for a function in plans and stage labels."""
    if isinstance(fn, functools.partial):
        return f"partial({funcname(fn.func)})"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    return name.replace("<locals>.", "")
