"""numpy's protocols on graphwren arrays, and the numpy-named functions of ``gw.array``.

``array_ufunc`` (``__array_ufunc__``) applies an elementwise ufunc block by
block, maps ``ufunc.reduce``/``accumulate``/``outer`` onto the blocked
reductions, scans and broadcasting, and never applies a generalized ufunc
(``ufunc.signature`` set: matmul, vecdot, matvec, vecmat) blockwise: those
go to blocked implementations or are refused. ``array_function``
(``__array_function__``) dispatches through ``HANDLED``, the one table of
numpy functions graphwren implements; any other numpy function raises
TypeError naming it, so nothing silently computes the wrong thing.

The elementwise functions (``gw.array.sin`` ...) are generated from numpy's
own ufunc list (``UFUNCS``), not written one by one.
"""
from __future__ import annotations

import functools
import numbers

import numpy as np

from .array_base import NO_IDENTITY, Array, ArrayError, cumulative, divmod_, elemwise, from_numpy, reduce
from .array_blockwise import einsum
from .array_linalg import dot, matmul

#: Every elementwise numpy ufunc, by its numpy name (np.abs and np.absolute are both there).
UFUNCS = {n: getattr(np, n) for n in dir(np)
          if isinstance(getattr(np, n), np.ufunc) and getattr(np, n).signature is None}


class UfuncOutput:
    """A picklable elementwise op: output ``k`` of a ufunc with several outputs (divmod, modf, frexp)."""

    def __init__(self, ufunc, k):
        self.ufunc, self.k = ufunc, k
        self.__qualname__ = f"{ufunc.__name__}[{k}]"

    def __call__(self, *args):
        return self.ufunc(*args)[self.k]

    def __reduce__(self):
        return (UfuncOutput, (self.ufunc, self.k))


def _foreign(values) -> bool:
    """True when an operand is another library's array (dask, xarray...): let it handle the call."""
    return any(hasattr(type(v), "__array_ufunc__") and not isinstance(v, (Array, np.ndarray, np.generic))
               and type(v).__array_ufunc__ is not None for v in values)


def _operand(v):
    if isinstance(v, (Array, np.ndarray, np.generic, numbers.Number)):
        return v
    if isinstance(v, (list, tuple)):
        return np.asarray(v)
    return v


def apply_ufunc(ufunc, inputs, kwargs):
    """An elementwise ufunc over arrays and scalars, block by block (dtype= passes through)."""
    name = ufunc.__name__
    kwargs = dict(kwargs)
    dtype = kwargs.pop("dtype", None)
    if kwargs.pop("where", True) is not True:
        raise TypeError(f"numpy.{name}: where= is not supported for graphwren arrays; use gw.array.where")
    kwargs.pop("casting", None) if kwargs.get("casting") == "same_kind" else None
    kwargs.pop("order", None)
    kwargs.pop("subok", None)
    if kwargs:
        raise TypeError(f"numpy.{name}: argument(s) {sorted(kwargs)} are not supported for graphwren arrays")
    if len(inputs) != ufunc.nin:
        raise TypeError(f"numpy.{name} takes {ufunc.nin} operands, got {len(inputs)}")
    inputs = [_operand(v) for v in inputs]
    op = ufunc if dtype is None else functools.partial(ufunc, dtype=np.dtype(dtype))
    if ufunc.nout == 1:
        return elemwise(op, *inputs, name=name)
    if dtype is not None:
        raise TypeError(f"numpy.{name}: dtype= is not supported for ufuncs with several outputs")
    return tuple(elemwise(UfuncOutput(ufunc, k), *inputs, name=f"{name}[{k}]") for k in range(ufunc.nout))


# ----------------------------------------------------------------------------- generalized ufuncs


def vecdot(x1, x2, /, *, axis=-1):
    """numpy.vecdot: sum over ``axis`` of conj(x1) * x2, broadcasting the other dimensions."""
    prod = elemwise(np.multiply, elemwise(np.conjugate, x1, name="conjugate"), x2, name="multiply")
    return prod.sum(axis=axis)


def matvec(x1, x2, /):
    """numpy.matvec: x1 (..., m, n) times the vector x2 (..., n)."""
    x2 = _as_array(x2)
    return matmul(x1, x2[..., None])[..., 0]


def vecmat(x1, x2, /):
    """numpy.vecmat: conj(x1) (..., n) times the matrix x2 (..., n, m)."""
    x1 = elemwise(np.conjugate, _as_array(x1), name="conjugate")
    return matmul(x1[..., None, :], x2)[..., 0, :]


def _matmul_ufunc(x1, x2, /, **kwargs):
    if kwargs:
        raise TypeError(f"numpy.matmul: argument(s) {sorted(kwargs)} are not supported for graphwren arrays")
    return matmul(x1, x2)


GUFUNCS = {"matmul": _matmul_ufunc, "vecdot": vecdot, "matvec": matvec, "vecmat": vecmat}

#: ufunc.reduce and ufunc.accumulate -> graphwren's reductions and scans.
UFUNC_REDUCE = {"add": "sum", "multiply": "prod", "minimum": "min", "maximum": "max", "logical_and": "all",
                "logical_or": "any", "fmin": "nanmin", "fmax": "nanmax"}
UFUNC_ACCUMULATE = {"add": "cumsum", "multiply": "cumprod"}


def _as_array(x):
    return x if isinstance(x, Array) else from_numpy(np.asarray(x), chunks=-1)


def array_ufunc(ufunc, method, inputs, kwargs):
    """``__array_ufunc__``: a blocked implementation of ``ufunc.method``, NotImplemented or a TypeError naming it."""
    name = ufunc.__name__
    if _foreign(inputs) or _foreign(kwargs.get("out") or ()):
        return NotImplemented
    kwargs = dict(kwargs)
    if kwargs.pop("out", None) is not None:
        raise TypeError(f"numpy.{name}: out= is not supported for graphwren arrays (they are immutable); "
                        "use the returned array")
    if method == "__call__":
        if ufunc.signature is not None:
            impl = GUFUNCS.get(name)
            if impl is None:
                raise TypeError(f"numpy.{name} is a generalized ufunc (signature {ufunc.signature}); graphwren "
                                "never applies those block by block and has no blocked implementation of it")
            return impl(*inputs, **kwargs)
        return apply_ufunc(ufunc, inputs, kwargs)
    if ufunc.signature is not None:
        raise TypeError(f"numpy.{name}.{method} is not supported on graphwren arrays")
    if method == "reduce" and name in UFUNC_REDUCE:
        (x,) = inputs
        for k in ("initial", "where"):
            if k in kwargs and not (k == "where" and kwargs[k] is True):
                raise TypeError(f"numpy.{name}.reduce: {k}= is not supported for graphwren arrays")
        how = UFUNC_REDUCE[name]
        dtype = kwargs.pop("dtype", None)
        axis = kwargs.pop("axis", 0)
        return reduce(_as_array(x), how, axis, kwargs.pop("keepdims", False), None,
                      dtype if how in ("sum", "prod") else None)
    if method == "accumulate" and name in UFUNC_ACCUMULATE:
        (x,) = inputs
        return cumulative(_as_array(x), UFUNC_ACCUMULATE[name], kwargs.pop("axis", 0), kwargs.pop("dtype", None))
    if method == "outer" and ufunc.nin == 2:
        a, b = (_as_array(v) for v in inputs)
        return apply_ufunc(ufunc, [a[(Ellipsis,) + (None,) * b.ndim], b], kwargs)
    raise TypeError(f"numpy.{name}.{method} is not supported on graphwren arrays; compute() first")


def array_function(func, types, args, kwargs):
    """``__array_function__``: the implementation in HANDLED, NotImplemented, or a TypeError naming the function."""
    if any(not issubclass(t, (Array, np.ndarray)) for t in types):
        return NotImplemented
    impl = HANDLED.get(func)
    if impl is None:
        mod = getattr(func, "__module__", None) or "numpy"
        raise TypeError(f"{mod}.{func.__name__} is not supported on graphwren arrays (it would compute the wrong "
                        "thing block by block, or needs a blocked implementation graphwren lacks); "
                        "compute() the array to numpy first")
    return impl(*args, **kwargs)


# ----------------------------------------------------------------------------- elementwise functions


def where(condition, x=None, y=None):
    """numpy.where(condition, x, y), elementwise; the one-argument form (nonzero) is not supported."""
    if x is None and y is None:
        raise NotImplementedError("where(condition) (nonzero) has a data-dependent shape; use "
                                  "where(condition, x, y), or compute() first")
    if x is None or y is None:
        raise ValueError("where: either both or neither of x and y should be given")
    args = [_operand(v) for v in (condition, x, y)]
    if not any(isinstance(a, Array) for a in args):
        return np.where(*args)
    return elemwise(np.where, *args, name="where")


def clip(a, a_min=None, a_max=None, out=None, **kwargs):
    """numpy.clip, elementwise (``min``/``max`` are numpy 2's names for the bounds)."""
    a_min = kwargs.pop("min", a_min)
    a_max = kwargs.pop("max", a_max)
    if out is not None or kwargs:
        raise TypeError(f"clip: {'out=' if out is not None else sorted(kwargs)} not supported for graphwren arrays")
    if a_min is None and a_max is None:
        raise ValueError("clip: one of a_min and a_max must be given")
    a = _as_array(a)
    if a_min is None:       # numpy: clip(a, None, hi) is minimum(a, hi), with its dtype
        return elemwise(np.minimum, a, _operand(a_max), name="clip")
    if a_max is None:
        return elemwise(np.maximum, a, _operand(a_min), name="clip")
    return elemwise(np.clip, a, _operand(a_min), _operand(a_max), name="clip")


class _Round:
    """A picklable np.round with its number of decimals."""

    def __init__(self, decimals):
        self.decimals = int(decimals)
        self.__qualname__ = f"round({self.decimals})"

    def __call__(self, x):
        return np.round(x, self.decimals)

    def __reduce__(self):
        return (_Round, (self.decimals,))


def round_(a, decimals=0, out=None):
    """numpy.round (around), elementwise."""
    if out is not None:
        raise TypeError("round: out= is not supported for graphwren arrays")
    return elemwise(_Round(decimals), _as_array(a), name="round")


class _IsClose:
    """A picklable np.isclose with its tolerances."""

    def __init__(self, rtol, atol, equal_nan):
        self.rtol, self.atol, self.equal_nan = rtol, atol, equal_nan

    def __call__(self, a, b):
        return np.isclose(a, b, rtol=self.rtol, atol=self.atol, equal_nan=self.equal_nan)

    def __reduce__(self):
        return (_IsClose, (self.rtol, self.atol, self.equal_nan))


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    return elemwise(_IsClose(rtol, atol, equal_nan), _operand(a), _operand(b), name="isclose")


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """A lazy 0-d boolean array (as dask's): bool() of it needs compute()."""
    return isclose(a, b, rtol, atol, equal_nan).all()


def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    return elemwise(functools.partial(np.nan_to_num, nan=nan, posinf=posinf, neginf=neginf), _as_array(x),
                    name="nan_to_num")


def _ufunc_function(name, ufunc):
    def fn(*args, **kwargs):
        if not any(isinstance(a, Array) for a in args):
            return ufunc(*args, **kwargs)     # plain numpy operands: numpy's own answer, as dask does
        out = array_ufunc(ufunc, "__call__", args, kwargs)
        if out is NotImplemented:
            raise TypeError(f"{name}: operands of types {[type(a).__name__ for a in args]} are not supported")
        return out

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"numpy.{name}, elementwise on graphwren arrays (generated from numpy's ufunc)."
    return fn


ELEMWISE = {name: _ufunc_function(name, uf) for name, uf in UFUNCS.items()}


# ----------------------------------------------------------------------------- reductions


def _reduction(how, with_dtype, with_ddof=False):
    if with_ddof:
        def fn(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, split_every=None, **kw):
            _refuse(how, kw)
            return reduce(_as_array(a), how, axis, keepdims, split_every, dtype, ddof, out)
    elif with_dtype:
        def fn(a, axis=None, dtype=None, out=None, keepdims=False, *, split_every=None, **kw):
            _refuse(how, kw)
            return reduce(_as_array(a), how, axis, keepdims, split_every, dtype, out=out)
    else:
        def fn(a, axis=None, out=None, keepdims=False, *, split_every=None, **kw):
            _refuse(how, kw)
            return reduce(_as_array(a), how, axis, keepdims, split_every, out=out)
    fn.__name__ = fn.__qualname__ = how
    fn.__doc__ = f"numpy.{how} as a blocked reduction tree (split_every: blocks folded per task)."
    return fn


def _refuse(how, kw):
    kw = {k: v for k, v in kw.items() if not (k == "where" and v is True) and not (k == "initial" and v is np._NoValue)}
    if kw:
        raise TypeError(f"{how}: argument(s) {sorted(kw)} are not supported for graphwren arrays")


REDUCTIONS = {}
for _how in ("sum", "prod", "mean", "nansum", "nanprod", "nanmean"):
    REDUCTIONS[_how] = _reduction(_how, True)
for _how in ("var", "std", "nanvar", "nanstd"):
    REDUCTIONS[_how] = _reduction(_how, True, True)
for _how in ("min", "max", "any", "all", "nanmin", "nanmax"):
    REDUCTIONS[_how] = _reduction(_how, False)
REDUCTIONS["amin"], REDUCTIONS["amax"] = REDUCTIONS["min"], REDUCTIONS["max"]


def argmin(a, axis=None, out=None, *, keepdims=False, split_every=None):
    return reduce(_as_array(a), "argmin", axis, keepdims, split_every, out=out)


def argmax(a, axis=None, out=None, *, keepdims=False, split_every=None):
    return reduce(_as_array(a), "argmax", axis, keepdims, split_every, out=out)


def cumsum(x, axis=None, dtype=None, out=None, method="sequential"):
    return cumulative(_as_array(x), "cumsum", axis, dtype, out)


def cumprod(x, axis=None, dtype=None, out=None, method="sequential"):
    return cumulative(_as_array(x), "cumprod", axis, dtype, out)


def _nan_as(x, value):
    x = _as_array(x)
    if x.dtype.kind not in "fc":
        return x
    return where(elemwise(np.isnan, x, name="isnan"), value, x)


def nancumsum(x, axis=None, dtype=None, out=None):
    return cumulative(_nan_as(x, 0), "cumsum", axis, dtype, out)


def nancumprod(x, axis=None, dtype=None, out=None):
    return cumulative(_nan_as(x, 1), "cumprod", axis, dtype, out)


def count_nonzero(a, axis=None, *, keepdims=False):
    a = _as_array(a)
    return reduce(elemwise(np.not_equal, a, 0, name="nonzero"), "sum", axis, keepdims, dtype=np.intp)


def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """numpy.trace (offset 0): the sum over the diagonal of two axes, as an einsum."""
    a = _as_array(a)
    if offset != 0 or out is not None:
        raise NotImplementedError("trace: graphwren supports offset=0 and no out=")
    if a.ndim < 2:
        raise ValueError("trace: diag requires an array of at least two dimensions")
    i, j = axis1 % a.ndim, axis2 % a.ndim
    n = min(a.shape[i], a.shape[j])
    a = a[tuple(slice(0, n) if d in (i, j) else slice(None) for d in range(a.ndim))]
    letters = [chr(ord("a") + d) for d in range(a.ndim)]
    letters[j] = letters[i]
    rest = "".join(c for d, c in enumerate(letters) if d not in (i, j))
    dtype = np.trace(np.ones((1, 1), a.dtype)).dtype if dtype is None else dtype   # int32 sums as int64
    return einsum(f"{''.join(letters)}->{rest}", a.astype(dtype))


def ptp(a, axis=None, out=None, keepdims=False):
    a = _as_array(a)
    return reduce(a, "max", axis, keepdims, out=out) - reduce(a, "min", axis, keepdims)


__all__ = ["where", "clip", "round_", "isclose", "allclose", "nan_to_num", "vecdot", "matvec", "vecmat",
           "argmin", "argmax", "cumsum", "cumprod", "nancumsum", "nancumprod", "ptp", "count_nonzero", "trace", "isnull", "notnull", "average", "vdot",
           "outer", "result_type", "shape", "ndim", "NON_UFUNC_ELEMWISE", "UFUNCS", "ELEMWISE",
           "REDUCTIONS", "HANDLED", "NO_IDENTITY", "ArrayError", "divmod_", "dot"]

HANDLED: dict = {}   # filled in by collections.array once every module is loaded (register_handled)


# ----------------------------------------------------------------------------- more elementwise and reductions


def _elementwise_function(fn, name):
    def wrapped(x, *args, **kwargs):
        x = _as_array(x)
        op = functools.partial(fn, *args, **kwargs) if args or kwargs else fn
        return elemwise(op, x, name=name)
    wrapped.__name__ = wrapped.__qualname__ = name
    wrapped.__doc__ = f"numpy.{name}, elementwise."
    return wrapped


#: numpy's elementwise functions that are not ufuncs.
NON_UFUNC_ELEMWISE = {name: _elementwise_function(getattr(np, name), name)
                      for name in ("angle", "real", "imag", "iscomplex", "isreal", "fix", "sinc", "i0",
                                   "isneginf", "isposinf")}


def isnull(values):
    return elemwise(np.isnan, _as_array(values), name="isnull") if _as_array(values).dtype.kind in "fc" else \
        elemwise(np.not_equal, _as_array(values), _as_array(values), name="isnull")


def notnull(values):
    return elemwise(np.logical_not, isnull(values), name="notnull")


def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    """numpy.average: the mean, or sum(w * a) / sum(w) with weights broadcast along ``axis``."""
    a = _as_array(a)
    if weights is None:
        avg = a.mean(axis=axis, keepdims=keepdims)
        scl = full_count(a, axis, keepdims, avg.dtype)
    else:
        w = _as_array(weights)
        if axis is not None and a.shape[axis % a.ndim] == 0:
            raise ZeroDivisionError("average: weights sum to zero, can't be normalized")
        if w.shape != a.shape:
            if axis is None or w.ndim != 1:
                raise TypeError("average: weights of another shape need axis= and must be 1-d")
            ax = axis % a.ndim
            w = w[tuple(slice(None) if d == ax else None for d in range(a.ndim))]
        scl = (w * elemwise(np.ones_like, a, name="ones_like")).sum(axis=axis, keepdims=keepdims)
        avg = (a * w).sum(axis=axis, keepdims=keepdims) / scl
    return (avg, scl) if returned else avg


def full_count(a, axis, keepdims, dtype):
    from .array_base import full
    axes = range(a.ndim) if axis is None else ((axis,) if isinstance(axis, int) else axis)
    n = 1
    for d in axes:
        n *= a.shape[d % a.ndim]
    shape = a.mean(axis=axis, keepdims=keepdims).shape
    return full(shape, n, dtype=dtype)


def vdot(a, b):
    """numpy.vdot: conj(a) . b over the flattened arrays."""
    from .array_shape import ravel
    return (elemwise(np.conjugate, ravel(_as_array(a)), name="conjugate") * ravel(_as_array(b))).sum()


def outer(a, b, out=None):
    from .array_shape import ravel
    if out is not None:
        raise TypeError("outer: out= is not supported for graphwren arrays")
    return array_ufunc(np.multiply, "outer", (ravel(_as_array(a)), ravel(_as_array(b))), {})


def result_type(*arrays_and_dtypes):
    return np.result_type(*[x.dtype if isinstance(x, Array) else x for x in arrays_and_dtypes])


def shape(a):
    return a.shape if isinstance(a, Array) else np.shape(a)


def ndim(a):
    return a.ndim if isinstance(a, Array) else np.ndim(a)
