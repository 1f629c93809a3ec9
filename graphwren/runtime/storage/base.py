"""The one storage interface every part of the runtime talks to.

Keys are '/'-separated strings relative to the store's root (its URL's
prefix). Values are bytes. Every implementation must pass
tests/test_storage.py, which runs the same contract against all of them.
"""
from __future__ import annotations

import abc


class Store(abc.ABC):
    """A flat key -> bytes store with the few operations the runtime needs."""

    url: str  # the URL this store was opened from; workers reopen it from this

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Write (or overwrite) a whole value. Readers never see a partial value."""

    @abc.abstractmethod
    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """Read a value, or its byte range [start, end). Raises MissingKey."""

    @abc.abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create key only if it does not exist; True if this call created it.

        This is the commit primitive: of racing writers exactly one wins.
        """

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """True if the key holds a value."""

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """Length in bytes of a value. Raises MissingKey."""

    @abc.abstractmethod
    def list(self, prefix: str) -> list[str]:
        """All keys starting with prefix (recursively, like S3), sorted."""

    @abc.abstractmethod
    def delete(self, prefix: str) -> int:
        """Delete every key starting with prefix; returns how many went."""

    def close(self) -> None:
        """Release connections. The store must not be used afterwards."""

    def __repr__(self):
        return f"{type(self).__name__}({self.url!r})"
