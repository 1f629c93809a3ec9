"""Planning without remote I/O: while explain() plans, remote files are neither listed nor read.

A plan printed "before paying for it" must not need credentials or a
reachable endpoint. Inside ``planning()``, sources in S3 or Redis report
what their arguments alone say: a glob's file count is ``UNKNOWN`` (shown
as ``?``), sizes are None ("size unknown") and parquet schemas ``UNREAD``.
compute() plans outside it and lists, sizes and reads footers as before.
Local files are still listed: that needs no credentials and costs little.
"""
from __future__ import annotations

import contextlib
import contextvars
import os

_planning = contextvars.ContextVar("graphwren_offline_planning", default=False)


@contextlib.contextmanager
def planning():
    """Plan without touching remote storage (for explain() and visualize())."""
    token = _planning.set(True)
    try:
        yield
    finally:
        _planning.reset(token)


def active() -> bool:
    return _planning.get()


def paths_of(urlpath) -> list[str]:
    return [str(urlpath)] if isinstance(urlpath, (str, os.PathLike)) else [str(p) for p in urlpath]


def is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def skips(urlpath) -> bool:
    """True if, right now, planning must not list or read these paths."""
    return active() and any(is_remote(p) for p in paths_of(urlpath))


def has_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


class Unknown(int):
    """A task count that needs a listing to know: prints as ``?`` and stays unknown through arithmetic.

    It is an int (1) so that lowering can build its stages as usual; nothing
    planned with it ever runs.
    """

    def __new__(cls):
        return super().__new__(cls, 1)

    def __repr__(self) -> str:
        return "?"

    __str__ = __repr__

    def __format__(self, spec) -> str:
        return "?"

    def _unknown(self, *_):
        return self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _unknown
    __floordiv__ = __rfloordiv__ = __truediv__ = __rtruediv__ = __ceil__ = __floor__ = _unknown


UNKNOWN = Unknown()


def is_unknown(n) -> bool:
    return isinstance(n, Unknown)


class _Unread:
    """Stands in for a parquet schema whose footers explain() did not read."""

    def __repr__(self) -> str:
        return "UNREAD"


UNREAD = _Unread()
