"""``bag.str``: every ``str`` method per record, and ``match`` (fnmatch), as dask.bag's StringAccessor.

``b.str.lower()`` maps ``operator.methodcaller("lower")`` (so bytes records
work too, as in dask). On a read_text source the columnar path
(tasks/columnar.py) recognises lower, upper and strip, and ``split()``
followed by ``flatten()``, and runs them as Arrow kernels where that gives
the same result.
"""
from __future__ import annotations

import fnmatch
import functools
import operator

class StringAccessor:
    """String processing per record: ``b.str.<any str method>(...)`` and ``b.str.match(pattern)``."""

    def __init__(self, bag):
        self._bag = bag

    def __dir__(self):
        return sorted(set(dir(type(self)) + dir(str)))

    def __getattr__(self, key: str):
        if key.startswith("_") or not hasattr(str, key):
            raise AttributeError(f"'StringAccessor' object has no attribute {key!r} (str has no such method)")
        method = getattr(str, key)

        @functools.wraps(method)
        def call(*args, **kwargs):
            return self._bag.map(operator.methodcaller(key, *args, **kwargs))
        return call

    def match(self, pattern: str):
        """The records matching a shell-style pattern (fnmatch.fnmatch), as dask."""
        return self._bag.filter(functools.partial(fnmatch.fnmatch, pat=pattern))
