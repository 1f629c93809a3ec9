"""Lower an optimized array expression to a physical plan of stages.

Every stage computes the blocks of one expression, one task per block. A
task evaluates a small tree of picklable *kernels*:

* sources make or read their block right there (random generation, a ranged
  read of ``Plan.data`` for ``from_numpy``, a GET of a stored block);
* narrow nodes (elementwise, transpose, slicing) are fused: evaluated inside
  the consuming task, never materialized;
* a wide node (matmul, reduction level, rechunk) is computed inside the task
  when its output block is reached from the stage root through
  block-identity narrow nodes on a single path (so the matmul's epilogue
  ``(A @ B + 1) * 2`` is one stage). Otherwise (a transpose of a matmul, a
  matmul feeding another matmul, a partial reduction feeding the next
  level) it becomes its own stage and the consumer reads its blocks through
  a CUSTOM edge naming exactly the upstream tasks each task needs.
"""
from __future__ import annotations

import collections
import math

import numpy as np

from ..logical.array import (Arange, ArrayExpr, Elemwise, Eye, FromNumpy, Full, GetItem, Linspace, Load, MatMul,
                             MatMulSplit, PersistedArray, Random, Rechunk, ZarrSource, ReduceLevel, Scan, Transpose, arg_value_dtype)
from ..logical.array_blockgraph import BlockGraph
from ..logical.array_blockwise import Blockwise
from ..logical.array_shape import BlockReshape, Concatenate, Take
from ..logical.expr import funcname
from ..runtime.plan import Stage
from ..tasks.array_blockgraph import KBlockGraph
from ..tasks.array_blockwise import KBlockwise
from ..tasks.array_kernels import (BlockTask, KArange, KElemwise, KEye, KFromData, KFull, KGetItem, KLinspace, KLoad,
                                   KMatMul, KRechunk, KStageRef, KTranspose, Kernel)
from ..tasks.array_random import KRandom
from ..tasks.array_reduce import KReduce
from ..tasks.array_scan import KScan
from ..tasks.array_shape import KConcat, KReshape, KTake
from ..tasks.array_zarr import KZarrRead
from ..tasks.blocks import chunk_offsets, unravel
from . import edges, memory
from .build import PlanBuilder


# ----------------------------------------------------------------------------- lowering


def _count_paths(root: ArrayExpr) -> dict:
    """How many distinct root-to-node paths reach each node (multiplicity of reads)."""
    order = list(root.walk())
    paths = collections.Counter({root.name: 1})
    for node in reversed(order):
        for dep in node.dependencies:
            paths[dep.name] += paths[node.name]
    return paths


class ArrayLowering(PlanBuilder):
    """Lowers one optimized array expression: one stage per materialized node, one task per block."""

    def __init__(self, root: ArrayExpr, settings: dict, target: str | None = None, explaining: bool = False):
        super().__init__(settings, explaining)
        self.root = root
        self.paths = _count_paths(root)
        self._names: dict[str, str] = {}        # expression name (+ target) -> stage name
        self._block_bytes: dict[str, int] = {}  # stage name -> bytes of its largest block
        self._shipped: dict[str, KFromData] = {}
        self._ntasks: dict[str, int] = {}
        self.output = self._stage(root, target)

    # -- stages ----------------------------------------------------------------
    def _stage(self, expr: ArrayExpr, target=None) -> str:
        key = expr.name + ("" if target is None else "@store")
        if key in self._names:
            return self._names[key]
        sources: list[str] = []
        labels: list[str] = []
        kernel = self._compile(expr, True, sources, labels, root=True)
        ntasks = expr.nblocks
        tables = [[[] for _ in range(ntasks)] for _ in sources]
        read_bytes = 0
        for t in range(ntasks):
            idx = unravel(t, expr.numblocks)
            got: list = []
            kernel.reads(idx, got)
            for e, up in got:
                if (up, None) not in tables[e][t]:
                    tables[e][t].append((up, None))
            read_bytes += kernel.source_bytes(idx)
        inputs = []
        for src, table in zip(sources, tables):
            read_bytes += sum(self._block_bytes[src] * len(row) for row in table)
            inputs.append(edges.from_table(src, table, self._ntasks[src]))
        label = " + ".join(dict.fromkeys(reversed(labels))) or type(expr).__name__.lower()
        if target is not None:
            label += f" -> to_zarr({target})"
        out_bytes = sum(expr.block_nbytes(unravel(t, expr.numblocks)) for t in range(ntasks))
        blocks = tuple(max(c) for c in expr.chunks) if expr.chunks else ()
        stage = Stage(self.name(type(expr).__name__.lower()), ntasks, BlockTask(kernel, expr.numblocks, target, label),
                      inputs, label=label, estimated_bytes=out_bytes if target is None else ntasks * 16,
                      read_bytes=read_bytes,
                      # a writing task also holds zarr's chunk buffer and its compressed copy
                      peak_memory=memory.array_task(self._peak(expr, root=True)
                                                    + (2 * expr.block_nbytes() if target is not None else 0)))
        if target is not None:
            stage.storage_note = f"blocks written to {target}"
        name = self.add(stage, f"use smaller chunks than {blocks} (e.g. half the block edge)")
        self._names[key] = name
        self._block_bytes[name] = expr.block_nbytes()
        self._ntasks[name] = ntasks
        return name

    # -- kernels -----------------------------------------------------------------
    def _compile(self, e: ArrayExpr, fused: bool, edges: list, labels: list, root: bool = False) -> Kernel:
        if isinstance(e, FromNumpy):
            labels.append("from_numpy")
            return self._from_numpy(e)
        if isinstance(e, Random):
            labels.append("random" if e.dist == "random" else f"random.{e.dist}")
            return KRandom(e.seed, e.chunks, e.dtype, e.dist, e.params)
        if isinstance(e, Linspace):
            labels.append("linspace")
            return KLinspace(e.start, e.stop, e.num, e.endpoint, e.chunks, e.dtype)
        if isinstance(e, Eye):
            labels.append(f"eye(k={e.k})")
            return KEye(e.k, e.chunks, e.dtype)
        if isinstance(e, Full):
            labels.append(f"full({e.value!r})")
            return KFull(e.value, e.chunks, e.dtype)
        if isinstance(e, Arange):
            labels.append("arange")
            return KArange(e.start, e.step, e.chunks, e.dtype)
        if isinstance(e, Load):
            labels.append(f"load({e.url})")
            return KLoad(e.url, e.chunks, e.dtype, e.name)
        if isinstance(e, ZarrSource):
            labels.append(f"from_zarr({e.url})")
            return KZarrRead(e.url, e.chunks, e.dtype)
        if isinstance(e, PersistedArray):
            labels.append("persisted")
            if e.stage not in self._ntasks:
                self.add(Stage(e.stage, e.nblocks, None, label="persisted",
                               external={"store": e.store, "job": e.job}))
                self._ntasks[e.stage] = e.nblocks
                self._block_bytes[e.stage] = e.block_nbytes()
            if e.stage not in edges:
                edges.append(e.stage)
            return KStageRef(edges.index(e.stage), e.numblocks, e.stage)
        if e.kind == "wide" and not root and not (fused and self.paths[e.name] <= 1):
            src = self._stage(e)
            if src not in edges:
                edges.append(src)
            return KStageRef(edges.index(src), e.numblocks, src)
        ident = {op.name for op in e.identity_operands()}

        def sub(op, same_block=False):
            return self._compile(op, fused and same_block and op.name in ident, edges, labels)

        if isinstance(e, Elemwise):
            labels.append(funcname(e.op))
            args = []
            for a in e.args:
                if isinstance(a, ArrayExpr):
                    off = e.ndim - a.ndim
                    flags = tuple(a.shape[d] == 1 and e.shape[off + d] != 1 or
                                  (a.numblocks[d] == 1 and e.numblocks[off + d] != 1) for d in range(a.ndim))
                    args.append((sub(a, True), flags, off))
                else:
                    args.append(("scalar", a))
            return KElemwise(e.op, args, e.ndim)
        if isinstance(e, Transpose):
            labels.append("transpose")
            return KTranspose(sub(e.x), e.axes)
        if isinstance(e, GetItem):
            labels.append(f"getitem[{e.index_repr}]")
            return KGetItem(sub(e.x), e.plan)
        if isinstance(e, Rechunk):
            labels.append("rechunk")
            return KRechunk(sub(e.x), _rechunk_tables(e.x.chunks, e.chunks), e.dtype)
        if isinstance(e, MatMul):
            labels.append(f"matmul[stream over {e.a.numblocks[1]} k-blocks{', gram' if _gram(e) else ''}]")
            return KMatMul(sub(e.a), sub(e.b), e.a.numblocks[1], gram=_gram(e))
        if isinstance(e, MatMulSplit):
            labels.append(f"matmul partials[{len(e.ranges)} k-splits{', gram' if _gram(e) else ''}]")
            return KMatMul(sub(e.a), sub(e.b), e.a.numblocks[1], e.ranges, gram=_gram(e))
        if isinstance(e, ReduceLevel):
            labels.append(f"{e.how}[{'+'.join(filter(None, ['chunk' if e.first else '', 'combine', 'final' if e.last else '']))}]")
            arg = e.how in ("argmin", "argmax")
            return KReduce(sub(e.x), e.how, e.axes, e.split, e.first, e.last, e.keepdims, e.ddof, e.dtype,
                           e.x.numblocks, e.x.dtype, e.x.chunks if arg and e.first else None,
                           arg_value_dtype(e.in_dtype if e.in_dtype is not None else e.x.dtype) if arg else None)
        if isinstance(e, Scan):
            labels.append(f"{e.how}[scan]")
            return KScan(sub(e.x, True), sub(e.totals), e.how, e.axis, e.dtype)
        if isinstance(e, BlockReshape):
            labels.append("reshape")
            return KReshape(sub(e.x), e.groups, e.x.ndim, e.chunks)
        if isinstance(e, Concatenate):
            labels.append(f"concatenate[axis={e.axis}]")
            return KConcat([sub(a) for a in e.arrays], e.axis, [a.numblocks[e.axis] for a in e.arrays])
        if isinstance(e, Take):
            labels.append(f"take[axis={e.axis}]")
            return KTake(sub(e.x), e.index.array, e.axis, e.x.chunks, e.chunks, e.dtype)
        if isinstance(e, BlockGraph):
            labels.append(e.label or funcname(e.func))
            return KBlockGraph(e.func, [sub(a) for a in e.args], e.table, e.numblocks, e.chunks, e.dtype)
        if isinstance(e, Blockwise):
            labels.append(funcname(e.func))
            args = []
            for a, ind in zip(e.args, e.inds):
                if isinstance(a, ArrayExpr):
                    where = tuple(e.out_ind.index(c) if c in e.out_ind and a.numblocks[d] > 1 else None
                                  for d, c in enumerate(ind))
                    args.append((sub(a, True), where))
                else:
                    args.append(("scalar", a))
            return KBlockwise(e.func, args, e.kwargs, e.block_id, e.chunks, e.dtype, e.writable)
        raise TypeError(f"cannot lower {e!r}; was the plan optimized?")

    def _from_numpy(self, e: FromNumpy) -> KFromData:
        if e.name in self._shipped:
            return self._shipped[e.name]
        arr = e.data.array
        offs = [chunk_offsets(c) for c in e.chunks]

        def blocks():
            for t in range(e.nblocks):
                idx = unravel(t, e.numblocks)
                yield np.ascontiguousarray(arr[tuple(slice(o[i], o[i + 1]) for o, i in zip(offs, idx))])

        data = self.ship(f"array-{e.name.rsplit('-', 1)[-1]}", blocks(), lambda block: block.nbytes)
        k = self._shipped[e.name] = KFromData(data, e.numblocks, e.name)
        return k

    # -- memory --------------------------------------------------------------------
    def _peak(self, e: ArrayExpr, fused: bool = True, root: bool = False) -> int:
        """Projected bytes a task holds while computing one block of ``e`` (upper bound)."""
        out = e.block_nbytes()
        if isinstance(e, ZarrSource):   # the block, and each zarr chunk it overlaps decoded then dropped
            return out + 2 * math.prod(e.zchunks) * e.dtype.itemsize
        if e.kind == "source":
            return out
        if e.kind == "wide" and not root and not (fused and self.paths[e.name] <= 1):
            return out  # read from an upstream stage, decoded zero-copy
        ident = {op.name for op in e.identity_operands()}
        if isinstance(e, Elemwise):
            held, peak = 0, 0
            for a in e.args:
                if isinstance(a, ArrayExpr):
                    peak = max(peak, held + self._peak(a, fused and a.name in ident))
                    held += a.block_nbytes()
            return max(peak, held + out) + out   # result + encoder copy
        if isinstance(e, BlockGraph):  # the blocks func holds, one prefetched, the result and its encoded copy
            biggest = max((self._peak(a, False) for a in e.args), default=0)
            return (e.held + 1) * biggest + 2 * out
        if isinstance(e, Blockwise):   # every argument's block, then the result and its encoded copy
            arrays = [a for a in e.args if isinstance(a, ArrayExpr)]
            held = sum(self._peak(a, a.name in ident) for a in arrays)
            copy = max((a.block_nbytes() for a in arrays), default=0) if e.writable else 0   # a read-only block's copy
            return held + copy + 2 * out
        if isinstance(e, (Transpose, GetItem, BlockReshape)):
            return self._peak(e.x, False) + out
        if isinstance(e, Concatenate):
            return max(self._peak(a, False) for a in e.arrays) + out
        if isinstance(e, Take):         # the output, the input block in use and the one prefetched
            return 2 * out + 2 * self._peak(e.x, False)
        if isinstance(e, Scan):         # the block, its scan, the running offset and the result
            return self._peak(e.x, True) + 3 * out + 2 * e.totals.block_nbytes()
        if isinstance(e, Rechunk):
            return out + 2 * self._peak(e.x, False) + out
        if isinstance(e, (MatMul, MatMulSplit)):
            return memory.matmul_blocks(out, self._peak(e.a, False), self._peak(e.b, False))
        if isinstance(e, ReduceLevel):
            temps = 0
            if e.first and e.how not in ("sum", "prod", "min", "max", "any", "all"):
                # float64 temporaries of one input block: deviations (var), NaN masks and the
                # masked copy (nan*), the transposed copy argmin/argmax searches
                temps = 2 * e.x.block_nbytes() // max(1, e.x.dtype.itemsize) * 8
            return max(out + 2 * self._peak(e.x, False) + temps, 3 * out)
        return 2 * out


def _gram(e) -> bool:
    """True for X.T @ X (the same real X on both sides): its diagonal blocks read X's block once and multiply
    it by its own transpose, which numpy runs as a syrk (half a gemm's flops)."""
    a = e.a
    return (isinstance(a, Transpose) and a.axes == (1, 0) and a.x.name == e.b.name
            and e.b.dtype.kind == "f")


def _rechunk_tables(old, new):
    tables = []
    for oc, nc in zip(old, new):
        oo, no = chunk_offsets(oc), chunk_offsets(nc)
        dim = []
        for j in range(len(nc)):
            lo, hi = no[j], no[j + 1]
            pieces = []
            for b in range(len(oc)):
                s, e = max(lo, oo[b]), min(hi, oo[b + 1])
                if s < e or (lo == hi == 0 and b == 0):
                    pieces.append((b, s - oo[b], e - oo[b], s - lo, e - lo))
            dim.append(tuple(pieces))
        tables.append(tuple(dim))
    return tuple(tables)
