"""Kernels that move values between blocks: blockwise reshape, concatenation, and take (integer-array indexing)."""
from __future__ import annotations

import numpy as np

from .array_kernels import Kernel, prefetched
from .blocks import block_shape, chunk_offsets


class KReshape(Kernel):
    """Kernel: output block idx is one input block reshaped; ``groups`` pair input and output dimensions."""

    def __init__(self, k, groups, in_ndim, chunks):
        self.k, self.groups, self.in_ndim, self.chunks = k, groups, in_ndim, chunks

    def _in(self, idx):
        inp = [0] * self.in_ndim
        for ins, outs in self.groups:   # a group's blocks are numbered along its first dims only
            inp[ins[0]] = idx[outs[0]]
        return tuple(inp)

    def compute(self, env, idx):
        return self.k.compute(env, self._in(idx)).reshape(block_shape(self.chunks, idx))

    def reads(self, idx, out):
        self.k.reads(self._in(idx), out)

    def source_bytes(self, idx):
        return self.k.source_bytes(self._in(idx))


class KConcat(Kernel):
    """Kernel: output block idx along ``axis`` is a block of one of the inputs."""

    def __init__(self, kernels, axis, counts):
        self.kernels, self.axis, self.counts = kernels, axis, counts   # counts: blocks of each input on axis

    def _in(self, idx):
        b = idx[self.axis]
        for which, n in enumerate(self.counts):
            if b < n:
                return self.kernels[which], idx[:self.axis] + (b,) + idx[self.axis + 1:]
            b -= n
        raise IndexError(f"block {idx} is past the concatenation's {sum(self.counts)} blocks")

    def compute(self, env, idx):
        k, inner = self._in(idx)
        return k.compute(env, inner)

    def reads(self, idx, out):
        k, inner = self._in(idx)
        k.reads(inner, out)

    def source_bytes(self, idx):
        k, inner = self._in(idx)
        return k.source_bytes(inner)


class KTake(Kernel):
    """Kernel: output block idx gathers its indices along ``axis`` from the input blocks they fall in."""

    def __init__(self, k, index, axis, in_chunks, out_chunks, dtype):
        self.k, self.index, self.axis, self.dtype = k, np.asarray(index), axis, np.dtype(dtype)
        self.in_offs = np.asarray(chunk_offsets(in_chunks[axis]))
        self.out_offs = chunk_offsets(out_chunks[axis])
        self.out_chunks = out_chunks

    def _pieces(self, idx):
        """[(input block along axis, positions in the output block, positions in that input block)]."""
        j = idx[self.axis]
        want = self.index[self.out_offs[j]:self.out_offs[j + 1]]
        blocks = np.searchsorted(self.in_offs, want, side="right") - 1
        pieces = []
        for b in np.unique(blocks):
            where = np.flatnonzero(blocks == b)
            pieces.append((int(b), where, want[where] - self.in_offs[b]))
        return pieces

    def _at(self, idx, b):
        return idx[:self.axis] + (b,) + idx[self.axis + 1:]

    def compute(self, env, idx):
        out = np.empty(block_shape(self.out_chunks, idx), dtype=self.dtype)
        pieces = self._pieces(idx)
        thunks = [(lambda p=p: (p, self.k.compute(env, self._at(idx, p[0])))) for p in pieces]
        ax = self.axis
        for (b, where, local), blk in prefetched(thunks):
            sel = [slice(None)] * out.ndim
            sel[ax] = where
            out[tuple(sel)] = np.take(blk, local, axis=ax)
        return out

    def reads(self, idx, out):
        for b, _, _ in self._pieces(idx):
            self.k.reads(self._at(idx, b), out)

    def source_bytes(self, idx):
        return sum(self.k.source_bytes(self._at(idx, b)) for b, _, _ in self._pieces(idx))
