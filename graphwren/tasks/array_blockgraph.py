"""The block-graph kernel: a function of this block's index and the exact input blocks its table names."""
from __future__ import annotations

import numpy as np

from ..errors import ArrayError
from .array_kernels import Kernel, prefetched
from .blocks import block_shape, ravel
from .describe import funcname


class KBlockGraph(Kernel):
    """Kernel: ``func(idx, blocks)``, blocks streamed (one prefetched) in the order ``table[t]`` lists them."""

    def __init__(self, func, kernels, table, numblocks, chunks, dtype):
        self.func, self.kernels, self.table = func, kernels, table
        self.numblocks, self.chunks, self.dtype = numblocks, chunks, np.dtype(dtype)

    def _reads(self, idx):
        return self.table[ravel(idx, self.numblocks)]

    def compute(self, env, idx):
        thunks = [(lambda a=a, j=j: self.kernels[a].compute(env, j)) for a, j in self._reads(idx)]
        out = self.func(idx, prefetched(thunks))
        want = block_shape(self.chunks, idx)
        out = np.zeros(want, dtype=self.dtype) if out is None else np.asarray(out)   # None: a zero block
        if out.shape != want:
            raise ArrayError(f"{funcname(self.func)}: block {idx} has shape {out.shape}, planned {want}")
        return out.astype(self.dtype, copy=False)

    def reads(self, idx, out):
        for a, j in self._reads(idx):
            self.kernels[a].reads(j, out)

    def source_bytes(self, idx):
        return sum(self.kernels[a].source_bytes(j) for a, j in self._reads(idx))
