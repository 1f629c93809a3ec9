"""How a plan's output partitions come back to the user: the one way, for bags and arrays alike.

The driver streams each committed output partition to ``receive``; an
output object keeps what the collection asked for and returns it from
``value()``, so a job never holds more than its result.
"""
from __future__ import annotations

import numpy as np

from ..tasks.blocks import chunk_offsets, unravel


class Partitions:
    """Every output partition, in task order (a bag's records; a store's per-task summaries)."""

    def __init__(self):
        self._parts: dict[int, object] = {}

    def receive(self, _stage: str, task: int, part) -> None:
        self._parts[task] = part

    def value(self) -> list:
        return [self._parts[t] for t in sorted(self._parts)]


class Blocks:
    """An array's output blocks, each placed into one numpy array as it arrives."""

    def __init__(self, shape, dtype, chunks):
        self.out = np.empty(shape, dtype=dtype)
        self.offsets = [chunk_offsets(c) for c in chunks]
        self.numblocks = tuple(len(c) for c in chunks)

    def receive(self, _stage: str, task: int, block) -> None:
        idx = unravel(task, self.numblocks)
        self.out[tuple(slice(o[i], o[i + 1]) for o, i in zip(self.offsets, idx))] = block

    def value(self):
        return self.out[()] if self.out.ndim == 0 else self.out
