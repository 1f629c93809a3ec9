"""numpy's protocols on graphwren arrays: every numpy entry point graphwren supports matches numpy, the rest refuse.

The property test draws shapes (0-size, 1 block, ragged, 3-d) and chunkings
and runs every supported numpy function and ufunc on a graphwren array and
on the same numpy array. To keep one example to one job, the results are
raveled and concatenated into one lazy array, computed once, and split back.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphwren.array as da
from graphwren.collections import array_numpy


def _last(x):
    return x.shape[-1] - 1 if x.ndim and x.shape[-1] else 0


# (name, function applied to both, needs ndim >= n). Both sides receive the same kind of object, so each
# call goes through numpy's dispatch (__array_function__/__array_ufunc__) on the graphwren side.
ENTRY_POINTS = [
    ("sin", lambda x: np.sin(x), 0),
    ("exp", lambda x: np.exp(x), 0),
    ("add", lambda x: np.add(x, x * 2), 0),
    ("add-dtype", lambda x: np.add(x, 1, dtype=np.float32), 0),
    ("operators", lambda x: (x + 1) * 2 - x / 3 + x ** 2 - abs(-x), 0),
    ("maximum", lambda x: np.maximum(x, 1.0), 0),
    ("power-scalar-left", lambda x: 2.0 ** x, 0),
    ("comparison", lambda x: (x > 1.0) & (x <= 1.3), 0),
    ("where", lambda x: np.where(x > 1.0, x, -x), 0),
    ("clip", lambda x: np.clip(x, 0.8, 1.2), 0),
    ("round", lambda x: np.round(x, 1), 0),
    ("isclose", lambda x: np.isclose(x, x + 1e-9), 0),
    ("divmod-0", lambda x: np.divmod(x, 0.3)[0], 0),
    ("modf-1", lambda x: np.modf(x * 3)[1], 0),
    ("frexp-0", lambda x: np.frexp(x)[0], 0),
    ("sum", lambda x: np.sum(x), 0),
    ("sum-axis0", lambda x: np.sum(x, axis=0), 1),
    ("sum-keepdims", lambda x: np.sum(x, axis=-1, keepdims=True), 1),
    ("prod-axis-last", lambda x: np.prod(x, axis=-1), 1),
    ("mean-axis0", lambda x: np.mean(x, axis=0), 1),
    ("var-ddof1", lambda x: np.var(x, axis=0, ddof=1), 1),
    ("std-positional", lambda x: x.std(0, None, None, 1, True), 1),
    ("min", lambda x: np.min(x), 0),
    ("max-axis-last", lambda x: np.max(x, axis=-1), 1),
    ("amax-tuple", lambda x: np.amax(x, axis=(0, -1)), 2),
    ("argmin", lambda x: np.argmin(x), 0),
    ("argmax-axis0", lambda x: np.argmax(x, axis=0), 1),
    ("argmin-axis-last", lambda x: x.argmin(axis=-1), 1),
    ("argmax-ties", lambda x: np.argmax(np.round(x, 0)), 0),
    ("any", lambda x: np.any(x > 1.4, axis=0), 1),
    ("all", lambda x: np.all(x > 0.6), 0),
    ("nansum", lambda x: np.nansum(np.where(x > 1.3, np.nan, x), axis=0), 1),
    ("nanmean", lambda x: np.nanmean(np.where(x > 1.3, np.nan, x), axis=-1), 1),
    ("nanvar", lambda x: np.nanvar(np.where(x > 1.3, np.nan, x), axis=0), 1),
    ("nanmax", lambda x: np.nanmax(np.where(x > 1.3, np.nan, x)), 0),
    ("cumsum", lambda x: np.cumsum(x), 0),
    ("cumsum-axis0", lambda x: np.cumsum(x, axis=0), 1),
    ("cumprod-axis-last", lambda x: np.cumprod(x, axis=-1), 1),
    ("nancumsum", lambda x: np.nancumsum(np.where(x > 1.3, np.nan, x), axis=-1), 1),
    ("add.reduce", lambda x: np.add.reduce(x), 1),
    ("multiply.accumulate", lambda x: np.multiply.accumulate(x), 1),
    ("maximum.reduce", lambda x: np.maximum.reduce(x, axis=-1), 1),
    ("subtract.outer", lambda x: np.subtract.outer(x[..., :2], np.ravel(x)[:3]), 1),
    ("reshape-flat", lambda x: np.reshape(x, -1), 0),
    ("reshape-split", lambda x: np.reshape(x, (1,) + x.shape[:-1] + (1, x.shape[-1], 1)), 1),
    ("ravel", lambda x: np.ravel(x), 0),
    ("transpose", lambda x: np.transpose(x), 0),
    ("moveaxis", lambda x: np.moveaxis(x, 0, -1), 1),
    ("swapaxes", lambda x: np.swapaxes(x, 0, -1), 1),
    ("squeeze", lambda x: np.squeeze(np.expand_dims(x, 0)), 0),
    ("expand_dims", lambda x: np.expand_dims(x, -1), 0),
    ("concatenate", lambda x: np.concatenate([x, x[:1] * 2], axis=0), 1),
    ("stack", lambda x: np.stack([x, x + 1], axis=-1), 0),
    ("reverse", lambda x: x[::-1], 1),
    ("step-slice", lambda x: x[..., ::-2], 1),
    ("take", lambda x: np.take(x, [0, 0, -1] if x.shape[0] else [], axis=0), 1),
    ("int-array-index", lambda x: x[..., [_last(x), 0, _last(x)]] if x.shape[-1] else x[..., []], 1),
    ("bool-mask", lambda x: x[np.asarray(x) > 1.0], 0),
    ("matmul", lambda x: np.matmul(x, np.swapaxes(x, -1, -2)), 2),
    ("matmul-vector", lambda x: np.matmul(x, np.ones(x.shape[-1])), 1),
    ("ndarray@array", lambda x: np.ones((2, x.shape[-2])) @ x, 2),
    ("vecdot", lambda x: np.vecdot(x, x), 1),
    ("dot", lambda x: np.dot(x, x.T), 2),
    ("tensordot-full", lambda x: np.tensordot(x, x, axes=x.ndim), 1),
    ("einsum", lambda x: np.einsum("ij,kj->ik", x, x), 2),
    ("flip", lambda x: np.flip(x, axis=0), 1),
    ("broadcast_to", lambda x: np.broadcast_to(x, (2,) + x.shape), 0),
    ("count_nonzero", lambda x: np.count_nonzero(x > 1.0, axis=0), 1),
    ("trace", lambda x: np.trace(x), 2),
    ("astype", lambda x: np.astype(x, np.float32), 0),
    ("roll", lambda x: np.roll(x, 2, axis=0), 1),
    ("roll-flat", lambda x: np.roll(x, -3), 0),
    ("diff", lambda x: np.diff(x, axis=0), 1),
    ("tril", lambda x: np.tril(x, 1), 2),
    ("triu", lambda x: np.triu(x, -1), 2),
    ("diagonal", lambda x: np.diagonal(x if x.ndim == 2 else x[0], 1), 2),
    ("diag", lambda x: np.diag(np.ravel(x)[:4], -1), 0),
    ("average", lambda x: np.average(x, axis=0, weights=np.arange(1.0, x.shape[0] + 1)), 1),
    ("vdot", lambda x: np.vdot(x, x), 0),
    ("outer", lambda x: np.outer(x, np.ravel(x)[:2]), 0),
    ("angle", lambda x: np.angle(x - 1.0), 0),
    ("fix", lambda x: np.fix(x * 3), 0),
    ("compress", lambda x: np.compress([True, False, True][:x.shape[0]], x, axis=0), 1),
    ("append", lambda x: np.append(x, x), 0),
    ("atleast_3d", lambda x: np.atleast_3d(x), 0),
    ("dstack", lambda x: np.dstack([x, x]), 0),
    ("zeros_like", lambda x: np.zeros_like(x), 0),
    ("full_like", lambda x: np.full_like(x, 7.0), 0),
]


def _outcome(fn, x):
    """(result, None) or (None, the exception's kind) of one entry point."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return fn(x), None
    except (ValueError, IndexError, TypeError, ZeroDivisionError) as exc:
        return None, next(k for k in (IndexError, TypeError, ValueError, ZeroDivisionError) if isinstance(exc, k))


@st.composite
def array_and_chunks(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(0 if draw(st.booleans()) and d == 0 else 1, 5)) for d in range(ndim))
    chunks = []
    for s in shape:   # ragged lengths, one block, or a fixed edge
        kind = draw(st.sampled_from(["edge", "one", "ragged"]))
        if kind == "one" or s <= 1:
            chunks.append(-1)
        elif kind == "edge":
            chunks.append(draw(st.integers(1, s)))
        else:
            cuts = sorted(draw(st.sets(st.integers(1, s - 1), min_size=1, max_size=s - 1)))
            chunks.append(tuple(b - a for a, b in zip([0] + cuts, cuts + [s])))
    x = np.random.default_rng(sum(shape) + ndim).random(shape) + 0.5
    return x, tuple(chunks)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=array_and_chunks())
def test_every_supported_numpy_entry_point_matches_numpy(case):
    x, chunks = case
    A = da.from_array(x, chunks=chunks)
    checks = []
    for name, fn, min_ndim in ENTRY_POINTS:
        if x.ndim < min_ndim:
            continue
        want, want_exc = _outcome(fn, x)
        got, got_exc = _outcome(fn, A)
        assert (want_exc, got_exc) == (want_exc, want_exc), f"{name} on {x.shape} in {chunks}: numpy raised " \
            f"{want_exc}, graphwren {got_exc}"
        if want_exc is None:
            want = np.asarray(want)
            assert isinstance(got, da.Array), f"{name}: got {type(got)}, not a lazy graphwren array"
            assert got.shape == want.shape, f"{name} on {x.shape} in {chunks}: shape {got.shape}, numpy {want.shape}"
            assert got.dtype == want.dtype, f"{name} on {x.shape} in {chunks}: dtype {got.dtype}, numpy {want.dtype}"
            checks.append((name, got, want))
    parts = [np.ravel(g).astype(np.float64) for _, g, _ in checks]
    values = np.asarray(da.concatenate(parts).compute()) if parts else np.zeros(0)
    at = 0
    for name, got, want in checks:
        n = want.size
        np.testing.assert_allclose(values[at:at + n], want.astype(np.float64).ravel(), rtol=1e-9, atol=1e-9,
                                   equal_nan=True, err_msg=f"{name} on {x.shape} in chunks {chunks}")
        at += n


def test_matmul_through_numpy_is_never_blockwise():
    # the bug this file guards: np.matmul on 3x3 blocks of 6x6 arrays was applied block by block
    x = np.arange(36.0).reshape(6, 6)
    A = da.from_array(x, chunks=3)
    for got in (np.matmul(A, A), x @ A, A @ x, np.dot(A, x)):
        np.testing.assert_allclose(got.compute(), x @ x)
    assert np.vecdot(A, A).shape == (6,)
    np.testing.assert_allclose(np.vecdot(A, A).compute(), np.vecdot(x, x))


def test_generalized_ufuncs_are_dispatched_or_refused():
    for name in dir(np):
        uf = getattr(np, name)
        if isinstance(uf, np.ufunc) and uf.signature is not None:
            assert name in array_numpy.GUFUNCS, f"generalized ufunc numpy.{name} has no blocked implementation"
    A = da.ones((3, 3), chunks=2)
    np.testing.assert_allclose(np.matvec(A, np.arange(3.0)).compute(), np.ones((3, 3)) @ np.arange(3.0))
    np.testing.assert_allclose(np.vecmat(np.arange(3.0), A).compute(), np.arange(3.0) @ np.ones((3, 3)))


def test_unsupported_numpy_functions_raise_naming_the_function():
    A = da.ones((4, 4), chunks=2)
    for call, name in [(lambda: np.linalg.eig(A), "numpy.linalg.eig"), (lambda: np.sort(A), "sort"),
                       (lambda: np.unique(A), "unique"), (lambda: np.fft.fft(A), "fft"),
                       (lambda: np.median(A), "median"), (lambda: np.nonzero(A), "nonzero")]:
        with pytest.raises((TypeError, NotImplementedError), match=name):
            call()


def test_unsupported_ufunc_forms_raise_naming_them():
    A = da.ones((4,), chunks=2)
    with pytest.raises(TypeError, match="out="):
        np.add(A, 1, out=np.empty(4))
    with pytest.raises(TypeError, match="where="):
        np.add(A, 1, where=np.ones(4, bool))
    with pytest.raises(TypeError, match=r"numpy\.add\.reduceat"):
        np.add.reduceat(A, [0, 2])
    with pytest.raises(TypeError, match=r"numpy\.subtract\.reduce"):
        np.subtract.reduce(A)
    with pytest.raises(TypeError, match=r"numpy\.add\.at"):
        np.add.at(A, [0], 1)


def test_every_elementwise_ufunc_matches_numpy_in_one_job():
    x = np.random.default_rng(5).random((5, 4)) + 0.25
    A = da.from_array(x, chunks=((2, 3), (1, 3)))
    names, parts, wants = [], [], []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for name, uf in sorted(array_numpy.UFUNCS.items()):
            args = [x, x[::-1] + 0.5][:uf.nin]
            try:
                want = uf(*args)
            except TypeError:       # numpy has no loop for floats (bitwise ops, isnat...): graphwren refuses too
                with pytest.raises((TypeError, ValueError)):
                    uf(*[da.from_array(a, chunks=2) for a in args])
                continue
            wants_k = want if isinstance(want, tuple) else (want,)
            got = uf(A, *([A[::-1] + 0.5] if uf.nin == 2 else []))
            gots = got if isinstance(got, tuple) else (got,)
            for k, (g, w) in enumerate(zip(gots, wants_k)):
                assert g.dtype == w.dtype, f"numpy.{name}[{k}]: dtype {g.dtype}, numpy {w.dtype}"
                names.append(f"{name}[{k}]")
                parts.append(g.astype(np.float64))
                wants.append(w.astype(np.float64))
    assert len(names) > 80
    got = np.asarray(da.stack(parts).compute())
    for name, g, w in zip(names, got, wants):
        np.testing.assert_allclose(g, w, rtol=1e-12, equal_nan=True, err_msg=name)


def test_elementwise_module_functions_are_generated_for_every_ufunc():
    for name in array_numpy.UFUNCS:
        assert callable(getattr(da, name)), name
    np.testing.assert_allclose(da.sin(da.ones(3, chunks=2)).compute(), np.sin(np.ones(3)))
    assert isinstance(da.sin(np.ones(3)), np.ndarray)      # numpy operands: numpy's own answer, as dask
