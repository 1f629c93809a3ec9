"""What an array stage runs inside a worker: a small tree of kernels computing one block.

Sources make or read their block right there (random generation, a ranged
read of the data the driver shipped, a GET of a stored block); fused narrow
nodes run inside the consuming task; a stage-output block arrives through
the task's input edge. ``BlockTask`` is the stage function.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ..errors import ArrayError
from ..runtime import codec
from ..runtime.prefetch import Prefetcher
from .blocks import block_key, block_shape, ravel, unravel
from .shipped import Shipped


_blocks = Prefetcher(2, "gw-array-prefetch")


def prefetched(thunks):
    """Results of the thunks in order, each computed while the previous one is in use.

    One ahead, not more: a block in flight is memory, and the matmul budget
    (planner/matmul.py) counts exactly one pair being prefetched. Kernels
    nest (a product of sums): inner calls run inline in the pool's thread.
    """
    return _blocks.iter(thunks, ahead=1)


class Env:
    """What kernels see while a task runs."""

    def __init__(self, ctx):
        self.ctx = ctx


class Kernel:
    """Computes one block of a node. ``out_nbytes``/``peak`` are planning estimates."""

    name = ""

    def compute(self, env, idx):
        raise NotImplementedError

    def reads(self, idx, out: list) -> None:
        """Append (edge, upstream task) for every stage-output block this block needs."""

    def source_bytes(self, idx) -> int:
        """Bytes this block reads from sources in storage (Plan.data, stored arrays)."""
        return 0


class KFromData(Kernel):
    """Block idx of an array the driver shipped (from_numpy): one ranged read of the plan's data."""

    def __init__(self, data: Shipped, numblocks, name):
        self.data, self.numblocks, self.name = data, numblocks, name

    def compute(self, env, idx):
        return self.data.read(env.ctx, ravel(idx, self.numblocks))

    def source_bytes(self, idx):
        return self.data.nbytes(ravel(idx, self.numblocks))


class KFull(Kernel):
    """Kernel: block idx filled with one value."""

    def __init__(self, value, chunks, dtype):
        self.value, self.chunks, self.dtype = value, chunks, np.dtype(dtype)

    def compute(self, env, idx):
        return np.full(block_shape(self.chunks, idx), self.value, dtype=self.dtype)


class KArange(Kernel):
    """Kernel: block idx of an arange, generated in the task."""

    def __init__(self, start, step, chunks, dtype):
        self.start, self.step, self.chunks, self.dtype = start, step, chunks, np.dtype(dtype)

    def compute(self, env, idx):
        off = sum(self.chunks[0][:idx[0]])
        n = self.chunks[0][idx[0]]
        return (self.start + self.step * np.arange(off, off + n)).astype(self.dtype, copy=False)


class KLinspace(Kernel):
    """Kernel: block idx of a linspace, ``start + step * i`` with the last value exactly ``stop`` (as numpy)."""

    def __init__(self, start, stop, num, endpoint, chunks, dtype):
        self.start, self.stop, self.num, self.endpoint = start, stop, num, endpoint
        self.chunks, self.dtype = chunks, np.dtype(dtype)

    def compute(self, env, idx):
        off = sum(self.chunks[0][:idx[0]])
        n = self.chunks[0][idx[0]]
        div = self.num - 1 if self.endpoint else self.num
        work = np.result_type(float, self.start, self.stop)
        i = np.arange(off, off + n, dtype=work)
        if div > 0:
            step = (self.stop - self.start) / div
            y = i * step + self.start if step != 0 else i * 0 + self.start
        else:
            y = i * (self.stop - self.start) + self.start
        if self.endpoint and self.num > 1 and off + n == self.num and n:
            y[-1] = self.stop
        if self.dtype.kind in "iu":
            y = np.floor(y)     # numpy rounds toward -inf for integer linspace
        return y.astype(self.dtype, copy=False)


class KEye(Kernel):
    """Kernel: block idx of eye(N, M, k): the piece of the k-th diagonal that crosses this block."""

    def __init__(self, k, chunks, dtype):
        self.k, self.chunks, self.dtype = k, chunks, np.dtype(dtype)

    def compute(self, env, idx):
        r0 = sum(self.chunks[0][:idx[0]])
        c0 = sum(self.chunks[1][:idx[1]])
        nr, nc = block_shape(self.chunks, idx)
        return np.eye(nr, nc, k=self.k + r0 - c0, dtype=self.dtype)


class KLoad(Kernel):
    """Kernel: block idx of an array stored by Array.store, one GET."""

    def __init__(self, url, chunks, dtype, name):
        self.url, self.chunks, self.dtype, self.name = url, chunks, np.dtype(dtype), name

    def compute(self, env, idx):
        from ..errors import MissingKey
        from ..runtime.storage import open_store
        key = block_key(idx)
        try:
            blob = open_store(self.url).get(key)
        except MissingKey:
            raise ArrayError(f"load({self.url!r}): block {idx} ({key}) is missing from storage") from None
        block = codec.decode(blob)
        want = block_shape(self.chunks, idx)
        if block.shape != want or block.dtype != self.dtype:
            raise ArrayError(f"load({self.url!r}): block {idx} has shape {block.shape} and dtype {block.dtype}, "
                             f"the header says {want} {self.dtype}")
        return block

    def source_bytes(self, idx):
        return math.prod(block_shape(self.chunks, idx)) * self.dtype.itemsize


class KStageRef(Kernel):
    """Kernel: block idx as an upstream stage committed it (read through the task's input edge)."""

    def __init__(self, edge, numblocks, name):
        self.edge, self.numblocks, self.name = edge, numblocks, name

    def compute(self, env, idx):
        t = ravel(idx, self.numblocks)
        return next(iter(env.ctx.input_pieces(self.edge, [(t, None)])))

    def reads(self, idx, out):
        out.append((self.edge, ravel(idx, self.numblocks)))


class KElemwise(Kernel):
    """Kernel: an elementwise op over its operands' blocks, broadcasting as numpy does."""

    def __init__(self, op, args, ndim):
        # args: (kernel, broadcast flags per dim, offset) or ("scalar", value)
        self.op, self.args, self.ndim = op, args, ndim

    def _arg_idx(self, flags, off, idx):
        return tuple(0 if f else idx[off + d] for d, f in enumerate(flags))

    def compute(self, env, idx):
        vals = []
        for a in self.args:
            if a[0] == "scalar":
                vals.append(a[1])
            else:
                k, flags, off = a
                vals.append(k.compute(env, self._arg_idx(flags, off, idx)))
        return self.op(*vals)

    def reads(self, idx, out):
        for a in self.args:
            if a[0] != "scalar":
                a[0].reads(self._arg_idx(a[1], a[2], idx), out)

    def source_bytes(self, idx):
        return sum(a[0].source_bytes(self._arg_idx(a[1], a[2], idx)) for a in self.args if a[0] != "scalar")


class KTranspose(Kernel):
    """Kernel: the transposed block, from the input block that holds it."""

    def __init__(self, k, axes):
        self.k, self.axes = k, axes

    def _in(self, idx):
        inp = [0] * len(self.axes)
        for d, a in enumerate(self.axes):
            inp[a] = idx[d]
        return tuple(inp)

    def compute(self, env, idx):
        return self.k.compute(env, self._in(idx)).transpose(self.axes)

    def reads(self, idx, out):
        self.k.reads(self._in(idx), out)

    def source_bytes(self, idx):
        return self.k.source_bytes(self._in(idx))


class KGetItem(Kernel):
    """Kernel: a slice of the array, from the input blocks the slice touches."""

    def __init__(self, k, plan):
        self.k, self.plan = k, plan

    def _map(self, idx):
        in_idx, local, d = [], [], 0
        for entry in self.plan:
            if entry[0] == "s":
                b, s, e, st = entry[1][idx[d]]
                in_idx.append(b)
                local.append(slice(s, e if e >= 0 else None, st))   # e == -1: down to the block's first item
                d += 1
            elif entry[0] == "i":
                in_idx.append(entry[1])
                local.append(entry[2])
            else:
                local.append(None)
                d += 1
        return tuple(in_idx), tuple(local)

    def compute(self, env, idx):
        in_idx, local = self._map(idx)
        return self.k.compute(env, in_idx)[local]

    def reads(self, idx, out):
        self.k.reads(self._map(idx)[0], out)

    def source_bytes(self, idx):
        return self.k.source_bytes(self._map(idx)[0])


class KRechunk(Kernel):
    """Kernel: a block of the new chunking, assembled from the old blocks that overlap it."""

    def __init__(self, k, tables, dtype):
        # tables[d][j] = [(in block, in slice start, stop, out start, stop), ...]
        self.k, self.tables, self.dtype = k, tables, np.dtype(dtype)

    def _pieces(self, idx):
        return itertools.product(*(self.tables[d][j] for d, j in enumerate(idx)))

    def compute(self, env, idx):
        pieces = list(self._pieces(idx))
        shape = tuple(sum(p[4] - p[3] for p in self.tables[d][j]) for d, j in enumerate(idx))
        if len(pieces) == 1:
            combo = pieces[0]
            blk = self.k.compute(env, tuple(p[0] for p in combo))
            view = blk[tuple(slice(p[1], p[2]) for p in combo)]
            if view.shape == shape:
                return view
        out = np.empty(shape, dtype=self.dtype)
        thunks = [(lambda c=c: (c, self.k.compute(env, tuple(p[0] for p in c)))) for c in pieces]
        for combo, blk in prefetched(thunks):
            out[tuple(slice(p[3], p[4]) for p in combo)] = blk[tuple(slice(p[1], p[2]) for p in combo)]
        return out

    def reads(self, idx, out):
        for combo in self._pieces(idx):
            self.k.reads(tuple(p[0] for p in combo), out)

    def source_bytes(self, idx):
        return sum(self.k.source_bytes(tuple(p[0] for p in c)) for c in self._pieces(idx))


class KMatMul(Kernel):
    """Streaming block product over a k range, accumulating in place.

    ``gram``: the product is X.T @ X (``ka`` transposes what ``kb`` reads), so
    a diagonal block reads each block of X once and multiplies its transpose
    by it: numpy sees one buffer on both sides and calls syrk, not gemm.
    """

    def __init__(self, ka, kb, nk, ranges=None, gram=False):
        self.ka, self.kb, self.nk, self.ranges, self.gram = ka, kb, nk, ranges, gram

    def _ks(self, idx):
        if self.ranges is None:
            return idx, range(self.nk)
        s, i, j = idx
        return (i, j), range(*self.ranges[s])

    def compute(self, env, idx):
        (i, j), ks = self._ks(idx)
        if self.gram and i == j:
            thunks = [(lambda k=k: self._self_pair(env, k, j)) for k in ks]
        else:
            thunks = [(lambda k=k: (self.ka.compute(env, (i, k)), self.kb.compute(env, (k, j)))) for k in ks]
        acc = tmp = None
        for a, b in prefetched(thunks):
            if acc is None:
                acc = np.matmul(a, b)
                if not acc.flags.writeable:
                    acc = acc.copy()
            else:
                if tmp is None:
                    tmp = np.empty_like(acc)
                np.matmul(a, b, out=tmp)
                acc += tmp
            del a, b
        del tmp
        return acc[None] if self.ranges is not None else acc

    def _self_pair(self, env, k, j):
        b = self.kb.compute(env, (k, j))
        return b.T, b

    def reads(self, idx, out):
        (i, j), ks = self._ks(idx)
        for k in ks:
            if not (self.gram and i == j):
                self.ka.reads((i, k), out)
            self.kb.reads((k, j), out)

    def source_bytes(self, idx):
        (i, j), ks = self._ks(idx)
        if self.gram and i == j:
            return sum(self.kb.source_bytes((k, j)) for k in ks)
        return sum(self.ka.source_bytes((i, k)) + self.kb.source_bytes((k, j)) for k in ks)


class BlockTask:
    """The stage function: evaluate this task's output block; or hand it to ``target`` and return its size.

    ``target`` is None (the block returns to the driver) or a writer with
    ``write(idx, block) -> bytes written`` (``tasks.array_zarr.ZarrWriter``).
    """

    def __init__(self, kernel, numblocks, target=None, label=""):
        self.kernel, self.numblocks, self.target, self.label = kernel, numblocks, target, label

    def __call__(self, ctx):
        idx = unravel(ctx.task, self.numblocks)
        ctx.where = f"block {idx}"
        out = np.asarray(self.kernel.compute(Env(ctx), idx))
        if self.target is None:
            return out
        return [(ctx.task, self.target.write(idx, out))]
