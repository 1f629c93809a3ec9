"""Blocked arrays: lazy numpy-like arrays cut into blocks, run as stateless tasks.

>>> import numpy as np, graphwren as gw
>>> A = gw.array.random((4096, 4096), chunks=1024, seed=0)
>>> C = (A @ A.T + 1.0) * 2
>>> print(C.explain())      # stages, tasks, projected peak memory per task, bytes moved
>>> c = C.compute()         # numpy.ndarray
>>> C.store("s3://bucket/C"); D = gw.array.load("s3://bucket/C")

Every method returns a new lazy ``Array``; nothing runs until ``compute()``
or ``store()``. Blocks are generated or read by the tasks, never by the
driver (``from_numpy`` ships its array once, through the job's data object).
"""
from __future__ import annotations

import json
import numbers
import operator
import uuid

import numpy as np

from .. import config
from ..errors import MissingKey
from .. import planner
from ..logical.array import (Arange, ArrayError, ArrayExpr, AsType, AxisReduction, Elemwise, FromNumpy, Full, Held,
                             Load, MatMul, Random, Rechunk, Transpose, check_numeric, infer_dtype, make_getitem)
from ..logical.chunks import normalize_chunks
from ..planner.outputs import Blocks, Partitions
from ..tasks.blocks import HEADER_KEY, block_key, unravel
from ..logical.expr import funcname

__all__ = ["Array", "from_numpy", "random", "zeros", "ones", "full", "arange", "load", "ArrayError",
           "tensordot", "dot", "matmul"]

FORMAT = "graphwren.array"


class Array:
    """A lazy blocked array. ``chunks`` are per-dimension block lengths, as in dask.array."""

    __array_priority__ = 20

    def __init__(self, expr: ArrayExpr):
        self.expr = expr

    # -- metadata --------------------------------------------------------------
    shape = property(lambda self: self.expr.shape)
    dtype = property(lambda self: self.expr.dtype)
    chunks = property(lambda self: self.expr.chunks)
    ndim = property(lambda self: self.expr.ndim)
    numblocks = property(lambda self: self.expr.numblocks)
    name = property(lambda self: self.expr.name)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __repr__(self):
        return (f"graphwren.Array<{self.expr.name}, shape={self.shape}, dtype={self.dtype}, "
                f"chunks={tuple(max(c) if c else 0 for c in self.chunks)}, blocks={self.numblocks}>")

    def __bool__(self):
        raise TypeError("the truth value of a lazy graphwren array is unknown until compute()")

    # -- running ---------------------------------------------------------------
    def compute(self, **settings) -> np.ndarray:
        """Run the plan and return a numpy array (a numpy scalar for 0-d results)."""
        settings = config.resolve(settings)
        planned = planner.plan(self.expr, settings)
        output = Blocks(self.shape, self.dtype, self.chunks)
        planner.execute(planned, settings, output, description=f"array {planned.plan.stage(planned.output).label}")
        return output.value()

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self.compute())
        return out.astype(dtype, copy=False) if dtype is not None else out

    def store(self, url: str, **settings) -> dict:
        """Write every block from the tasks to ``url`` plus a small JSON header; returns the header.

        The driver never holds a block: each task writes its own, and only their
        sizes come back.
        """
        from ..runtime.storage import open_store
        settings = config.resolve(settings)
        store = open_store(url)
        for node in self.expr.walk():
            if isinstance(node, Load) and node.url == store.url:
                raise ArrayError(f"store({url!r}): the array reads its own target (load({url!r})); "
                                 "store to another URL")
        planned = planner.plan(self.expr, settings, target=store.url)
        store.delete(HEADER_KEY)
        store.delete("block/")
        output = Partitions()
        planner.execute(planned, settings, output, description=f"store {url}")
        written = sum(n for part in output.value() for _, n in part)
        header = {"format": FORMAT, "version": 1, "shape": list(self.shape), "dtype": self.dtype.str,
                  "chunks": [list(c) for c in self.chunks], "token": uuid.uuid4().hex, "nbytes": written}
        store.put(HEADER_KEY, json.dumps(header).encode())
        return header

    def persist(self, **settings) -> "Array":
        """Compute now and keep the blocks in storage; the new Array reads them back (dask's persist).

        The blocks are written as by ``store()`` under a job id of the configured
        storage (``{storage}/{job}/array``), recorded like a kept job: they stay
        until ``graphwren clean`` removes that job (on Redis, whose stores are key
        prefixes, under their own prefix ``{prefix}/{job}``, which clean does not see).
        """
        from ..runtime import records
        from ..runtime.lease import Lease
        from ..runtime.storage import open_store
        settings = config.resolve(settings)
        job = records.new_job_id()
        url = _persist_url(settings["storage"], job)
        lease = None
        if not url.startswith(("redis://", "rediss://")):
            lease = Lease(job, f"persist array {self.name}")
            lease.add(open_store(settings["storage"]))   # graphwren jobs / clean see it as a job
        try:
            self.store(url, **settings)
        except BaseException:
            if lease is not None:
                lease.end("failed")
            raise
        if lease is not None:
            lease.end("finished")
        return load(url)

    def explain(self, **settings) -> str:
        """Logical plan, optimized plan, stages (tasks, edges, storage, reads/writes, peak memory/task)."""
        return planner.explain(self.expr, config.resolve(settings))

    # -- structure ---------------------------------------------------------------
    def rechunk(self, chunks) -> "Array":
        """New block lengths: an int, a tuple (-1 = whole dim), per-dim tuples, or {axis: chunks}."""
        if isinstance(chunks, dict):
            chunks = tuple(chunks.get(d, self.chunks[d]) for d in range(self.ndim))
        new = normalize_chunks(chunks, self.shape, self.dtype)
        if new == self.chunks:
            return self
        return Array(Rechunk(self.expr, new))

    def transpose(self, *axes) -> "Array":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if not axes:
            axes = tuple(reversed(range(self.ndim)))
        axes = tuple(a % self.ndim if self.ndim else a for a in axes)
        if sorted(axes) != list(range(self.ndim)):
            raise ArrayError(f"transpose: axes {axes} are not a permutation of the {self.ndim} dimensions")
        if axes == tuple(range(self.ndim)):
            return self
        if isinstance(self.expr, Transpose):  # rule: transpose of transpose is one transpose
            inner = self.expr.axes
            combined = tuple(inner[a] for a in axes)
            base = Array(self.expr.x)
            return base if combined == tuple(range(self.ndim)) else Array(Transpose(self.expr.x, combined))
        return Array(Transpose(self.expr, axes))

    @property
    def T(self) -> "Array":
        return self.transpose()

    def astype(self, dtype) -> "Array":
        dtype = check_numeric(dtype, "astype")
        if dtype == self.dtype:
            return self
        return Array(Elemwise(AsType(dtype), (self.expr,), dtype))

    def __getitem__(self, index) -> "Array":
        if isinstance(index, Array):
            raise NotImplementedError("graphwren arrays cannot be indexed by another array")
        return Array(make_getitem(self.expr, index))

    # -- elementwise -------------------------------------------------------------
    def _elemwise(self, op, *args, name=None):
        return elemwise(op, self, *args, name=name)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or ufunc.nout != 1 or kwargs.get("out") is not None:
            return NotImplemented
        extra = {k: v for k, v in kwargs.items() if k not in ("out",)}
        if extra:
            return NotImplemented
        return elemwise(ufunc, *inputs, name=ufunc.__name__)

    def __array_function__(self, func, types, args, kwargs):
        impl = _HANDLED.get(func)
        if impl is None:
            return NotImplemented
        return impl(*args, **kwargs)

    # -- reductions ---------------------------------------------------------------
    def _reduce(self, how, axis=None, keepdims=False, split_every=None, dtype=None, ddof=0):
        if self.dtype.kind == "c" and how in ("min", "max"):
            raise ArrayError(f"{how} of complex array {self.expr.name} is not supported")
        if axis is None:
            axes = tuple(range(self.ndim))
        else:
            axes = axis if isinstance(axis, (tuple, list)) else (axis,)
            norm = []
            for a in axes:
                if not isinstance(a, numbers.Integral) or not -self.ndim <= a < self.ndim:
                    raise ArrayError(f"{how}: axis {a} is out of bounds for a {self.ndim}-d array")
                norm.append(int(a) % self.ndim)
            if len(set(norm)) != len(norm):
                raise ArrayError(f"{how}: repeated axis in {axis}")
            axes = tuple(sorted(norm))
        if self.size == 0 and how in ("min", "max"):
            raise ArrayError(f"{how} of an empty array has no identity")
        return Array(AxisReduction(self.expr, how, axes, bool(keepdims), split_every, ddof,
                                   None if dtype is None else np.dtype(dtype)))

    def sum(self, axis=None, dtype=None, keepdims=False, split_every=None):
        return self._reduce("sum", axis, keepdims, split_every, dtype)

    def prod(self, axis=None, dtype=None, keepdims=False, split_every=None):
        return self._reduce("prod", axis, keepdims, split_every, dtype)

    def min(self, axis=None, keepdims=False, split_every=None):
        return self._reduce("min", axis, keepdims, split_every)

    def max(self, axis=None, keepdims=False, split_every=None):
        return self._reduce("max", axis, keepdims, split_every)

    def mean(self, axis=None, dtype=None, keepdims=False, split_every=None):
        return self._reduce("mean", axis, keepdims, split_every, dtype)

    def var(self, axis=None, dtype=None, ddof=0, keepdims=False, split_every=None):
        return self._reduce("var", axis, keepdims, split_every, dtype, ddof)

    def std(self, axis=None, dtype=None, ddof=0, keepdims=False, split_every=None):
        return self._reduce("std", axis, keepdims, split_every, dtype, ddof)

    # -- linear algebra -------------------------------------------------------------
    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def dot(self, other):
        return dot(self, other)


def _binop(op, name, reflected=False):
    def method(self, other):
        if isinstance(other, (Array, numbers.Number, np.generic)) or (
                isinstance(other, np.ndarray) and other.ndim == 0):
            return elemwise(op, other, self, name=name) if reflected else elemwise(op, self, other, name=name)
        if isinstance(other, np.ndarray):
            other = from_numpy(other, chunks=_matching_chunks(self, other))
            return elemwise(op, other, self, name=name) if reflected else elemwise(op, self, other, name=name)
        if isinstance(other, (str, bytes)):
            raise ArrayError(f"{name}: cannot combine array {self.name} with {other!r}: not a number")
        return NotImplemented
    method.__name__ = f"__{'r' if reflected else ''}{name}__"
    return method


def _matching_chunks(a: Array, x: np.ndarray):
    chunks = []
    for d in range(x.ndim):
        ad = a.ndim - x.ndim + d
        chunks.append(a.chunks[ad] if 0 <= ad < a.ndim and a.shape[ad] == x.shape[d] else -1)
    return tuple(chunks)


for _name, _op in [("add", operator.add), ("sub", operator.sub), ("mul", operator.mul),
                   ("truediv", operator.truediv), ("floordiv", operator.floordiv), ("mod", operator.mod),
                   ("pow", operator.pow), ("and", operator.and_), ("or", operator.or_), ("xor", operator.xor),
                   ("lshift", operator.lshift), ("rshift", operator.rshift)]:
    setattr(Array, f"__{_name}__", _binop(_op, _name))
    setattr(Array, f"__r{_name}__", _binop(_op, _name, reflected=True))
for _name, _op in [("lt", operator.lt), ("le", operator.le), ("gt", operator.gt), ("ge", operator.ge),
                   ("eq", operator.eq), ("ne", operator.ne)]:
    setattr(Array, f"__{_name}__", _binop(_op, _name))
for _name, _op in [("neg", operator.neg), ("pos", operator.pos), ("abs", operator.abs), ("invert", operator.invert)]:
    setattr(Array, f"__{_name}__", (lambda op, nm: lambda self: elemwise(op, self, name=nm))(_op, _name))
Array.__hash__ = object.__hash__


def elemwise(op, *args, name=None) -> Array:
    """``op`` applied block by block; arrays broadcast as numpy's; mixed chunkings are rechunked."""
    opname = name or funcname(op)
    exprs = []
    for a in args:
        if isinstance(a, Array):
            exprs.append(a)
        elif isinstance(a, np.ndarray) and a.ndim > 0:
            exprs.append(None)
        elif isinstance(a, (numbers.Number, np.generic, np.ndarray)):
            v = a.item() if isinstance(a, (np.generic, np.ndarray)) else a
            if isinstance(v, (str, bytes)) or not isinstance(v, numbers.Number):
                raise ArrayError(f"{opname}: {a!r} is not a number")
            exprs.append(a if isinstance(a, np.generic) else v)
        else:
            raise ArrayError(f"{opname}: cannot combine a graphwren array with {type(a).__name__}")
    arrays = [a for a in exprs if isinstance(a, Array)]
    if not arrays:
        raise ArrayError(f"{opname}: no graphwren array among the operands")
    ref = max(arrays, key=lambda a: a.ndim)
    for k, a in enumerate(args):
        if exprs[k] is None:
            exprs[k] = from_numpy(a, chunks=_matching_chunks(ref, a))
    arrays = [a for a in exprs if isinstance(a, Array)]
    unified = _unify(arrays, opname)
    it = iter(unified)
    operands = tuple(next(it).expr if isinstance(a, Array) else a for a in exprs)
    dtype = infer_dtype(op, operands, opname)
    return Array(Elemwise(op, operands, dtype))


def _unify(arrays: list[Array], opname: str) -> list[Array]:
    """Rechunk operands so every broadcast dimension has one chunking (the first array's)."""
    ndim = max(a.ndim for a in arrays)
    target = [None] * ndim
    for d in range(ndim):
        sizes = set()
        for a in arrays:
            k = d - (ndim - a.ndim)
            if k >= 0 and a.shape[k] != 1:
                sizes.add(a.shape[k])
                if target[d] is None:
                    target[d] = a.chunks[k]
        if len(sizes) > 1:
            shapes = " and ".join(str(a.shape) for a in arrays)
            raise ArrayError(f"{opname}: shape mismatch, operands could not be broadcast together with "
                             f"shapes {shapes} (dimension {d}: {sorted(sizes)})")
    out = []
    for a in arrays:
        off = ndim - a.ndim
        want = tuple(target[off + k] if a.shape[k] != 1 else a.chunks[k] for k in range(a.ndim))
        out.append(a if want == a.chunks else Array(Rechunk(a.expr, want)))
    return out


# ----------------------------------------------------------------------------- linear algebra


def matmul(a, b) -> Array:
    a = a if isinstance(a, Array) else from_numpy(np.asarray(a), chunks=-1)
    b = b if isinstance(b, Array) else from_numpy(np.asarray(b), chunks=-1)
    for x, side in ((a, "left"), (b, "right")):
        check_numeric(x.dtype, f"matmul ({side} operand {x.name})")
        if x.ndim not in (1, 2):
            raise ArrayError(f"matmul: graphwren supports 1-d and 2-d operands; the {side} operand "
                             f"{x.name} is {x.ndim}-d with shape {x.shape}")
    squeeze = []
    if a.ndim == 1:
        a = a[None, :]
        squeeze.append(0)
    if b.ndim == 1:
        b = b[:, None]
        squeeze.append(1)
    if a.shape[1] != b.shape[0]:
        raise ArrayError(f"matmul: shape mismatch, {a.shape} @ {b.shape}: the left operand has "
                         f"{a.shape[1]} columns, the right {b.shape[0]} rows")
    if a.chunks[1] != b.chunks[0]:
        b = b.rechunk((a.chunks[1], b.chunks[1]))
    out = Array(MatMul(a.expr, b.expr))
    if squeeze == [0]:
        out = out[0]
    elif squeeze == [1]:
        out = out[:, 0]
    elif squeeze == [0, 1]:
        out = out[0, 0]
    return out


def dot(a, b) -> Array:
    a_nd = a.ndim if hasattr(a, "ndim") else np.ndim(a)
    b_nd = b.ndim if hasattr(b, "ndim") else np.ndim(b)
    if a_nd == 0 or b_nd == 0:
        return elemwise(operator.mul, a, b, name="mul")
    return matmul(a, b)


def tensordot(a, b, axes=2) -> Array:
    """tensordot for 2-d operands (and the full contraction), through matmul and transposes."""
    if not isinstance(a, Array):
        a = from_numpy(np.asarray(a), chunks=-1)
    if not isinstance(b, Array):
        b = from_numpy(np.asarray(b), chunks=-1)
    if a.ndim != 2 or b.ndim != 2:
        raise ArrayError(f"tensordot: graphwren supports 2-d operands, got {a.shape} and {b.shape}")
    if isinstance(axes, numbers.Integral):
        ax_a, ax_b = list(range(2 - axes, 2)), list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, numbers.Integral) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, numbers.Integral) else list(ax_b)
    ax_a, ax_b = [x % 2 for x in ax_a], [x % 2 for x in ax_b]
    if len(ax_a) != len(ax_b):
        raise ArrayError(f"tensordot: axes {axes} pair up unequal numbers of dimensions")
    if len(ax_a) == 0:
        raise ArrayError("tensordot with axes=0 (an outer product) is not supported for 2-d arrays")
    if len(ax_a) == 2:
        bb = b if ax_b == [0, 1] and ax_a == [0, 1] or ax_b == [1, 0] and ax_a == [1, 0] else b.T
        return (a * bb).sum()
    left = a if ax_a[0] == 1 else a.T
    right = b if ax_b[0] == 0 else b.T
    return matmul(left, right)


def _np_reduce(how):
    def impl(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
        if out is not None:
            raise NotImplementedError("out= is not supported for graphwren arrays")
        args = {"axis": axis, "keepdims": keepdims}
        if how not in ("min", "max"):
            args["dtype"] = dtype
        if how in ("var", "std"):
            args["ddof"] = kw.pop("ddof", 0)
        return getattr(a, how)(**args)
    return impl


_HANDLED = {
    np.sum: _np_reduce("sum"), np.prod: _np_reduce("prod"), np.min: _np_reduce("min"),
    np.max: _np_reduce("max"), np.amin: _np_reduce("min"), np.amax: _np_reduce("max"),
    np.mean: _np_reduce("mean"), np.var: _np_reduce("var"), np.std: _np_reduce("std"),
    np.matmul: matmul, np.dot: dot, np.tensordot: tensordot,
    np.transpose: lambda a, axes=None: a.transpose(axes) if axes is not None else a.T,
    np.shape: lambda a: a.shape, np.ndim: lambda a: a.ndim,
}


# ----------------------------------------------------------------------------- constructors


def _shape(shape) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ArrayError(f"negative dimensions are not allowed: {shape}")
    return shape


def from_numpy(x, chunks="auto") -> Array:
    """A blocked array over ``x``; it travels to the tasks once, through the job's data object."""
    x = np.asarray(x)
    check_numeric(x.dtype, "from_numpy")
    if type(x) is not np.ndarray:
        x = np.array(x)
    return Array(FromNumpy(Held(x), normalize_chunks(chunks, x.shape, x.dtype)))


def random(shape, chunks="auto", seed=None, dtype=np.float64) -> Array:
    """Uniform [0, 1) values, generated by the tasks; block b is reproducible from (seed, b)."""
    shape = _shape(shape)
    dtype = check_numeric(dtype, "random")
    if dtype.kind != "f":
        raise ArrayError(f"random: dtype must be a float type, got {dtype}")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    if not isinstance(seed, numbers.Integral) or seed < 0:
        raise ArrayError(f"random: seed must be a non-negative int, got {seed!r}")
    return Array(Random(int(seed), shape, normalize_chunks(chunks, shape, dtype), dtype))


def full(shape, fill_value, chunks="auto", dtype=None) -> Array:
    shape = _shape(shape)
    dtype = check_numeric(np.asarray(fill_value).dtype if dtype is None else dtype, "full")
    value = np.asarray(fill_value, dtype=dtype).item()
    return Array(Full(value, shape, normalize_chunks(chunks, shape, dtype), dtype))


def zeros(shape, chunks="auto", dtype=np.float64) -> Array:
    return full(shape, 0, chunks, dtype)


def ones(shape, chunks="auto", dtype=np.float64) -> Array:
    return full(shape, 1, chunks, dtype)


def arange(start, stop=None, step=1, chunks="auto", dtype=None) -> Array:
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ArrayError("arange: step must not be zero")
    size = max(0, int(np.ceil((stop - start) / step)))
    dtype = check_numeric(np.arange(start, start + step, step).dtype if dtype is None else dtype, "arange")
    return Array(Arange(start, step, size, normalize_chunks(chunks, (size,), dtype), dtype))


def _persist_url(storage: str, job: str) -> str:
    """Where ``persist`` puts an array: a folder under the job's prefix (a key prefix on Redis)."""
    from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit
    if "://" not in storage:
        return storage.rstrip("/") + f"/{job}/array"
    parts = urlsplit(storage)
    if parts.scheme.lower() in ("redis", "rediss"):
        query = parse_qs(parts.query, keep_blank_values=True)
        prefix = (query.pop("prefix", None) or ["graphwren"])[0] or "graphwren"
        query["prefix"] = [f"{prefix}/{job}"]
        return urlunsplit(parts._replace(query=urlencode({k: v[-1] for k, v in query.items()})))
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + f"/{job}/array"))


def load(url: str) -> Array:
    """The array stored at ``url`` by ``store``, lazily: its blocks stay in storage."""
    from ..runtime.storage import open_store
    store = open_store(url)
    try:
        header = json.loads(store.get(HEADER_KEY))
    except MissingKey:
        raise ArrayError(f"load({url!r}): no graphwren array there (no header {HEADER_KEY!r}); "
                         "was it written by Array.store()?") from None
    except ValueError as exc:
        raise ArrayError(f"load({url!r}): the header {HEADER_KEY!r} is not valid JSON: {exc}") from None
    if header.get("format") != FORMAT:
        raise ArrayError(f"load({url!r}): {HEADER_KEY!r} is not a graphwren array header")
    shape = tuple(header["shape"])
    chunks = tuple(tuple(c) for c in header["chunks"])
    dtype = np.dtype(header["dtype"])
    present = set(store.list("block/"))
    nb = tuple(len(c) for c in chunks)
    n = int(np.prod(nb, dtype=np.int64))
    for t in range(n):
        idx = unravel(t, nb)
        if block_key(idx) not in present:
            raise ArrayError(f"load({url!r}): block {idx} ({block_key(idx)}) of the array is missing "
                             f"({len(present)} of {n} blocks present)")
    return Array(Load(store.url, header.get("token", ""), shape, chunks, dtype))
