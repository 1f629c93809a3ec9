"""Cumulative sums and products: each block's own scan, offset by the totals of the blocks before it."""
from __future__ import annotations

import numpy as np

from .array_kernels import Kernel, prefetched

_SCAN = {"cumsum": np.cumsum, "cumprod": np.cumprod}


class KScan(Kernel):
    """Kernel: cumsum/cumprod of block idx along ``axis``, plus (times) the totals of the earlier blocks."""

    def __init__(self, kx, ktotals, how, axis, dtype):
        self.kx, self.kt, self.how, self.axis, self.dtype = kx, ktotals, how, axis, np.dtype(dtype)

    def _before(self, idx):
        return [idx[:self.axis] + (i,) + idx[self.axis + 1:] for i in range(idx[self.axis])]

    def compute(self, env, idx):
        out = _SCAN[self.how](self.kx.compute(env, idx), axis=self.axis, dtype=self.dtype)
        offset = None
        for t in prefetched([(lambda j=j: self.kt.compute(env, j)) for j in self._before(idx)]):
            if offset is None:
                offset = np.array(t, dtype=self.dtype, copy=True)
            elif self.how == "cumsum":
                offset += t
            else:
                offset *= t
        if offset is None:
            return out
        return out + offset if self.how == "cumsum" else out * offset

    def reads(self, idx, out):
        self.kx.reads(idx, out)
        for j in self._before(idx):
            self.kt.reads(j, out)

    def source_bytes(self, idx):
        return self.kx.source_bytes(idx) + sum(self.kt.source_bytes(j) for j in self._before(idx))
