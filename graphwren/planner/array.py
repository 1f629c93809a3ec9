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
import concurrent.futures
import itertools
import math
import threading

import numpy as np

from ..runtime import codec
from ..runtime.plan import BROADCAST, CUSTOM, ONE_TO_ONE, Edge, Plan, Stage
from ..logical.array import Arange, ArrayError, ArrayExpr, Elemwise, FromNumpy, Full, GetItem, Load, MatMul, MatMulSplit, Random, Rechunk, ReduceLevel, Transpose, block_shape, chunk_offsets
from .matmul import RUNTIME_OVERHEAD
from ..logical.expr import funcname

HEADER_KEY = "_array.json"


def block_key(idx) -> str:
    return "block/" + (".".join(map(str, idx)) if len(idx) else "0")


def ravel(idx, numblocks) -> int:
    t = 0
    for i, n in zip(idx, numblocks):
        t = t * n + i
    return t


def unravel(t: int, numblocks) -> tuple:
    out = []
    for n in reversed(numblocks):
        t, i = divmod(t, n)
        out.append(i)
    return tuple(reversed(out))


_pool = None
_pool_lock = threading.Lock()


def _prefetcher():
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="gw-array-prefetch")
    return _pool


def prefetched(thunks):
    """Results of the thunks in order, each computed while the previous one is in use."""
    thunks = list(thunks)
    if len(thunks) <= 1 or threading.current_thread().name.startswith("gw-array-prefetch"):
        for t in thunks:
            yield t()
        return
    pool = _prefetcher()
    fut = pool.submit(thunks[0])
    for k in range(len(thunks)):
        value = fut.result()
        if k + 1 < len(thunks):
            fut = pool.submit(thunks[k + 1])
        yield value
        del value


class Env:
    """What kernels see while a task runs."""

    def __init__(self, ctx):
        self.ctx = ctx


# ----------------------------------------------------------------------------- kernels


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
    def __init__(self, data_name, offsets, numblocks, name):
        self.data_name, self.offsets, self.numblocks, self.name = data_name, offsets, numblocks, name

    def compute(self, env, idx):
        t = ravel(idx, self.numblocks)
        return codec.decode(env.ctx.read_data(self.data_name, self.offsets[t], self.offsets[t + 1]))

    def source_bytes(self, idx):
        t = ravel(idx, self.numblocks)
        return self.offsets[t + 1] - self.offsets[t]


class KRandom(Kernel):
    def __init__(self, seed, chunks, dtype):
        self.seed, self.chunks, self.dtype = seed, chunks, np.dtype(dtype)

    def compute(self, env, idx):
        rng = np.random.default_rng([self.seed, *idx])
        shape = block_shape(self.chunks, idx)
        if self.dtype in (np.float32, np.float64):
            return rng.random(shape, dtype=self.dtype)
        return rng.random(shape).astype(self.dtype)


class KFull(Kernel):
    def __init__(self, value, chunks, dtype):
        self.value, self.chunks, self.dtype = value, chunks, np.dtype(dtype)

    def compute(self, env, idx):
        return np.full(block_shape(self.chunks, idx), self.value, dtype=self.dtype)


class KArange(Kernel):
    def __init__(self, start, step, chunks, dtype):
        self.start, self.step, self.chunks, self.dtype = start, step, chunks, np.dtype(dtype)

    def compute(self, env, idx):
        off = sum(self.chunks[0][:idx[0]])
        n = self.chunks[0][idx[0]]
        return (self.start + self.step * np.arange(off, off + n)).astype(self.dtype, copy=False)


class KLoad(Kernel):
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
    def __init__(self, edge, numblocks, name):
        self.edge, self.numblocks, self.name = edge, numblocks, name

    def compute(self, env, idx):
        t = ravel(idx, self.numblocks)
        return next(iter(env.ctx.input_pieces(self.edge, [(t, None)])))

    def reads(self, idx, out):
        out.append((self.edge, ravel(idx, self.numblocks)))


class KElemwise(Kernel):
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
    def __init__(self, k, plan):
        self.k, self.plan = k, plan

    def _map(self, idx):
        in_idx, local, d = [], [], 0
        for entry in self.plan:
            if entry[0] == "s":
                b, s, e, st = entry[1][idx[d]]
                in_idx.append(b)
                local.append(slice(s, e, st))
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
    """Streaming block product over a k range, accumulating in place."""

    def __init__(self, ka, kb, nk, ranges=None):
        self.ka, self.kb, self.nk, self.ranges = ka, kb, nk, ranges

    def _ks(self, idx):
        if self.ranges is None:
            return idx, range(self.nk)
        s, i, j = idx
        return (i, j), range(*self.ranges[s])

    def compute(self, env, idx):
        (i, j), ks = self._ks(idx)
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

    def reads(self, idx, out):
        (i, j), ks = self._ks(idx)
        for k in ks:
            self.ka.reads((i, k), out)
            self.kb.reads((k, j), out)

    def source_bytes(self, idx):
        (i, j), ks = self._ks(idx)
        return sum(self.ka.source_bytes((i, k)) + self.kb.source_bytes((k, j)) for k in ks)


class KReduce(Kernel):
    """One reduction level: fold the group of input blocks, then finalize on the last level."""

    def __init__(self, k, how, axes, split, first, last, keepdims, ddof, dtype, in_numblocks, in_dtype):
        self.k, self.how, self.axes, self.split = k, how, tuple(axes), split
        self.first, self.last, self.keepdims, self.ddof = first, last, keepdims, ddof
        self.dtype, self.in_numblocks, self.in_dtype = np.dtype(dtype), in_numblocks, np.dtype(in_dtype)

    def _group(self, idx):
        ranges = []
        pos = 0
        for d, n in enumerate(self.in_numblocks):
            if d in self.axes:
                s = self.split[self.axes.index(d)]
                g = idx[pos] if (not self.last or self.keepdims) else 0
                ranges.append(range(g * s, min(n, (g + 1) * s)))
                if not self.last or self.keepdims:
                    pos += 1
            else:
                ranges.append((idx[pos],))
                pos += 1
        return list(itertools.product(*ranges))

    def _chunk(self, b):
        """A raw block -> its partial (moments stacked on a leading axis where needed)."""
        ax = self.axes
        how = self.how
        if how in ("sum", "prod", "min", "max"):
            fn = {"sum": np.sum, "prod": np.prod, "min": np.min, "max": np.max}[how]
            kw = {"dtype": self.dtype} if how in ("sum", "prod") else {}
            out = fn(b, axis=ax, keepdims=True, **kw)
            return out.astype(self.dtype, copy=False)
        wide = np.complex128 if b.dtype.kind == "c" else np.float64
        n = math.prod(b.shape[a] for a in ax)
        s = np.sum(b, axis=ax, keepdims=True, dtype=wide)
        if how == "mean":
            return np.stack([s, np.full_like(s, n)])
        mean = s / n if n else s
        m2 = np.sum(np.abs(b - mean) ** 2, axis=ax, keepdims=True, dtype=np.float64).astype(wide)
        return np.stack([np.full_like(s, n), mean, m2])

    def _combine(self, acc, p):
        how = self.how
        if how == "sum":
            acc += p
        elif how == "prod":
            acc *= p
        elif how == "min":
            np.minimum(acc, p, out=acc)
        elif how == "max":
            np.maximum(acc, p, out=acc)
        elif how == "mean":
            acc += p
        else:  # Chan et al.: merge (count, mean, M2)
            na, ma, m2a = acc
            nb, mb, m2b = p
            n = na + nb
            safe = np.where(n == 0, 1, n)
            delta = mb - ma
            acc[1] = ma + delta * (nb / safe)
            acc[2] = m2a + m2b + np.abs(delta) ** 2 * (na * nb / safe)
            acc[0] = n
        return acc

    def _finalize(self, acc):
        how = self.how
        if how == "mean":
            out = acc[0] / acc[1]
        elif how in ("var", "std"):
            n, _, m2 = acc
            with np.errstate(divide="ignore", invalid="ignore"):
                out = np.real(m2) / np.maximum(np.real(n) - self.ddof, 0)
            if how == "std":
                out = np.sqrt(out)
        else:
            out = acc
        out = np.asarray(out).astype(self.dtype, copy=False)
        if not self.keepdims:
            out = out.reshape(tuple(s for d, s in enumerate(out.shape) if d not in self.axes))
        return out

    def compute(self, env, idx):
        group = self._group(idx)
        thunks = [(lambda g=g: self.k.compute(env, g)) for g in group]
        acc = None
        for blk in prefetched(thunks):
            p = self._chunk(blk) if self.first else blk
            if acc is None:
                acc = np.array(p, copy=True) if len(group) > 1 or not p.flags.writeable else p
            else:
                acc = self._combine(acc, p)
        return self._finalize(acc) if self.last else acc

    def reads(self, idx, out):
        for g in self._group(idx):
            self.k.reads(g, out)

    def source_bytes(self, idx):
        return sum(self.k.source_bytes(g) for g in self._group(idx))


# ----------------------------------------------------------------------------- stage functions


class BlockTask:
    """The stage function: evaluate this task's output block; or store it and return its size."""

    def __init__(self, kernel, numblocks, target=None, label=""):
        self.kernel, self.numblocks, self.target, self.label = kernel, numblocks, target, label

    def __call__(self, ctx):
        idx = unravel(ctx.task, self.numblocks)
        ctx.where = f"block {idx}"
        out = np.asarray(self.kernel.compute(Env(ctx), idx))
        if self.target is None:
            return out
        from ..runtime.storage import open_store
        open_store(self.target).put(block_key(idx), codec.encode(out))
        return [(ctx.task, int(out.nbytes))]


class Deps:
    """CUSTOM edge deps: a table task -> [(upstream task, None), ...]."""

    def __init__(self, table):
        self.table = table

    def __call__(self, task):
        return self.table[task]


# ----------------------------------------------------------------------------- lowering


def _count_paths(root: ArrayExpr) -> dict:
    """How many distinct root-to-node paths reach each node (multiplicity of reads)."""
    order = list(root.walk())
    paths = collections.Counter({root.name: 1})
    for node in reversed(order):
        for dep in node.dependencies:
            paths[dep.name] += paths[node.name]
    return paths


class Lowering:
    def __init__(self, root: ArrayExpr, settings: dict, target: str | None = None, build_data: bool = True):
        self.build_data = build_data  # False (explain): size from_numpy blocks without encoding them
        self.root = root
        self.settings = settings
        self.bound = int(settings["max_task_memory"])
        self.paths = _count_paths(root)
        self.stages: dict[str, Stage] = {}
        self._names: dict[str, str] = {}      # expression name (+ target) -> stage name
        self.info: dict[str, dict] = {}     # stage name -> reads/writes facts for explain
        self.data: dict[str, bytes] = {}
        self.data_kernels: dict[str, KFromData] = {}
        self.root_stage = self._stage(root, target)

    def plan(self) -> Plan:
        return Plan(list(self.stages.values()), [self.root_stage], self.data)

    # -- stages ----------------------------------------------------------------
    def _stage(self, expr: ArrayExpr, target=None) -> str:
        key = expr.name + ("" if target is None else "@store")
        if key in self._names:
            return self._names[key]
        edges: list[str] = []
        labels: list[str] = []
        kernel = self._compile(expr, True, edges, labels, root=True)
        ntasks = expr.nblocks
        tables = [[[] for _ in range(ntasks)] for _ in edges]
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
        for e, src in enumerate(edges):
            up = self.stages[src]
            table = tables[e]
            read_bytes += sum(self.info[src]["block"] * len(row) for row in table)
            if up.ntasks == ntasks and all(row == [(t, None)] for t, row in enumerate(table)):
                inputs.append(Edge(src, ONE_TO_ONE))
            elif ntasks > 1 and all(len(row) == up.ntasks for row in table):
                inputs.append(Edge(src, BROADCAST))
            else:
                inputs.append(Edge(src, CUSTOM, Deps(table)))
        peak = self._peak(expr, root=True) + RUNTIME_OVERHEAD
        label = " + ".join(dict.fromkeys(reversed(labels))) or type(expr).__name__.lower()
        if target is not None:
            label += f" -> store({target})"
        if peak > self.bound:
            from .explain import human_bytes
            raise ArrayError(
                f"{label}: a task would need ~{human_bytes(peak)} (blocks of {expr.chunks and tuple(max(c) for c in expr.chunks)}), "
                f"over max_task_memory={human_bytes(self.bound)}; use smaller chunks "
                f"(e.g. half the block edge) or raise max_task_memory")
        out_bytes = sum(expr.block_nbytes(unravel(t, expr.numblocks)) for t in range(ntasks))
        name = f"{type(expr).__name__.lower()}-{len(self.stages)}-{expr.name.rsplit('-', 1)[-1][:6]}"
        stage = Stage(name, ntasks, BlockTask(kernel, expr.numblocks, target, label), inputs,
                      label=label, estimated_bytes=out_bytes if target is None else ntasks * 16,
                      peak_memory=peak)
        self.stages[name] = stage
        self._names[key] = name
        self.info[name] = {"reads": read_bytes, "writes": out_bytes, "block": expr.block_nbytes(),
                           "target": target}
        return name

    # -- kernels -----------------------------------------------------------------
    def _compile(self, e: ArrayExpr, fused: bool, edges: list, labels: list, root: bool = False) -> Kernel:
        if isinstance(e, FromNumpy):
            labels.append("from_numpy")
            return self._from_numpy(e)
        if isinstance(e, Random):
            labels.append("random")
            return KRandom(e.seed, e.chunks, e.dtype)
        if isinstance(e, Full):
            labels.append(f"full({e.value!r})")
            return KFull(e.value, e.chunks, e.dtype)
        if isinstance(e, Arange):
            labels.append("arange")
            return KArange(e.start, e.step, e.chunks, e.dtype)
        if isinstance(e, Load):
            labels.append(f"load({e.url})")
            return KLoad(e.url, e.chunks, e.dtype, e.name)
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
            labels.append(f"matmul[stream over {e.a.numblocks[1]} k-blocks]")
            return KMatMul(sub(e.a), sub(e.b), e.a.numblocks[1])
        if isinstance(e, MatMulSplit):
            labels.append(f"matmul partials[{len(e.ranges)} k-splits]")
            return KMatMul(sub(e.a), sub(e.b), e.a.numblocks[1], e.ranges)
        if isinstance(e, ReduceLevel):
            labels.append(f"{e.how}[{'+'.join(filter(None, ['chunk' if e.first else '', 'combine', 'final' if e.last else '']))}]")
            return KReduce(sub(e.x), e.how, e.axes, e.split, e.first, e.last, e.keepdims, e.ddof, e.dtype,
                           e.x.numblocks, e.x.dtype)
        raise TypeError(f"cannot lower {e!r}; was the plan optimized?")

    def _from_numpy(self, e: FromNumpy) -> KFromData:
        if e.name in self.data_kernels:
            return self.data_kernels[e.name]
        arr = e.data.array
        offs = [chunk_offsets(c) for c in e.chunks]
        blobs, offsets = [], [0]
        for t in range(e.nblocks):
            idx = unravel(t, e.numblocks)
            sl = tuple(slice(o[i], o[i + 1]) for o, i in zip(offs, idx))
            if not self.build_data:
                offsets.append(offsets[-1] + arr[sl].nbytes)
                continue
            blob = codec.encode(np.ascontiguousarray(arr[sl]))
            pad = -len(blob) % 64
            blobs.append(blob + b"\0" * pad if pad else blob)
            offsets.append(offsets[-1] + len(blobs[-1]))
        name = f"array-{e.name.rsplit('-', 1)[-1]}"
        if self.build_data:
            self.data[name] = b"".join(blobs)
        k = self.data_kernels[e.name] = KFromData(name, offsets, e.numblocks, e.name)
        return k

    # -- memory --------------------------------------------------------------------
    def _peak(self, e: ArrayExpr, fused: bool = True, root: bool = False) -> int:
        """Projected bytes a task holds while computing one block of ``e`` (upper bound)."""
        out = e.block_nbytes()
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
        if isinstance(e, (Transpose, GetItem)):
            return self._peak(e.x, False) + out
        if isinstance(e, Rechunk):
            return out + 2 * self._peak(e.x, False) + out
        if isinstance(e, (MatMul, MatMulSplit)):
            pa_, pb = self._peak(e.a, False), self._peak(e.b, False)
            return max(2 * out + 2 * (pa_ + pb), 3 * out)
        if isinstance(e, ReduceLevel):
            return max(out + 2 * self._peak(e.x, False), 3 * out)
        return 2 * out


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
