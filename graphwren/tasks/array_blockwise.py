"""The blockwise kernel: a user function applied to the blocks its index letters select."""
from __future__ import annotations

import numpy as np

from ..errors import ArrayError
from .array_kernels import Kernel
from .blocks import block_shape
from .describe import funcname


class KBlockwise(Kernel):
    """Kernel: ``func(*blocks, **kwargs)``; args are (kernel, letter positions in out_ind or None) or ("scalar", v)."""

    def __init__(self, func, args, kwargs, block_id, chunks, dtype, writable=True):
        self.func, self.args, self.kwargs, self.block_id = func, args, dict(kwargs), block_id
        self.chunks, self.dtype, self.writable = chunks, np.dtype(dtype), writable

    @staticmethod
    def _arg_idx(where, idx):
        # where[d]: the output dimension that names this argument's block along d, or None (block 0)
        return tuple(0 if w is None else idx[w] for w in where)

    def compute(self, env, idx):
        vals = []
        for a in self.args:
            if a[0] == "scalar":
                vals.append(a[1])
            else:
                block = a[0].compute(env, self._arg_idx(a[1], idx))
                if self.writable and isinstance(block, np.ndarray) and not block.flags.writeable:
                    block = block.copy()   # a zero-copy read from storage: a user function may write into it
                vals.append(block)
        kw = dict(self.kwargs)
        if self.block_id:
            kw["block_id"] = idx
        out = np.asarray(self.func(*vals, **kw))
        want = block_shape(self.chunks, idx)
        if out.shape != want:
            raise ArrayError(f"blockwise {funcname(self.func)}: block {idx} came back with shape {out.shape}, "
                             f"the planned chunks say {want}; pass chunks= (or adjust_chunks=) to say what "
                             "the function returns")
        return out.astype(self.dtype, copy=False)

    def reads(self, idx, out):
        for a in self.args:
            if a[0] != "scalar":
                a[0].reads(self._arg_idx(a[1], idx), out)

    def source_bytes(self, idx):
        return sum(a[0].source_bytes(self._arg_idx(a[1], idx)) for a in self.args if a[0] != "scalar")
