"""The core of dask.array's API on graphwren arrays, against numpy: ragged chunkings, 1 block, 0-size, 3-d.

Many checks share one job: ``same(...)`` ravels the lazy results, joins them
into one array, computes it once and compares each piece with numpy.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphwren.array as da
from graphwren import config, planner
from graphwren.errors import ArrayError, ProjectedMemoryError


def same(*pairs, rtol=1e-9):
    """Each (name, lazy array, numpy value) agrees in shape, dtype and values; one job for all of them."""
    for name, got, want in pairs:
        want = np.asarray(want)
        assert isinstance(got, da.Array), f"{name}: {type(got)} is not a lazy array"
        assert got.shape == want.shape, f"{name}: shape {got.shape}, numpy {want.shape}"
        assert got.dtype == want.dtype, f"{name}: dtype {got.dtype}, numpy {want.dtype}"
    kind = np.complex128 if any(np.asarray(w).dtype.kind == "c" for _, _, w in pairs) else np.float64
    values = np.asarray(da.concatenate([np.ravel(g).astype(kind) for _, g, _ in pairs]).compute())
    at = 0
    for name, _, want in pairs:
        want = np.asarray(want).astype(kind).ravel()
        np.testing.assert_allclose(values[at:at + want.size], want, rtol=rtol, atol=rtol, equal_nan=True,
                                   err_msg=name)
        at += want.size


@pytest.fixture
def x3():
    return np.random.default_rng(0).standard_normal((5, 7, 4))


# -- constructors -----------------------------------------------------------------------------------


def test_from_array_asarray_array():
    x = np.arange(12.0).reshape(3, 4)
    A = da.from_array(x, chunks=(2, 3))
    assert A.chunks == ((2, 1), (3, 1))
    assert da.asarray(A) is A and da.from_array(A) is A
    assert da.asarray([[1, 2], [3, 4]]).dtype == np.asarray([[1, 2], [3, 4]]).dtype
    assert da.asarray(x, dtype=np.float32).dtype == np.float32
    assert da.array(np.float64(3.0), ndmin=2).shape == (1, 1)
    same(("from_array", A, x), ("asarray", da.asarray([[1, 2], [3, 4]]), [[1, 2], [3, 4]]))


def test_linspace_eye_identity_like():
    same(("linspace", da.linspace(0, 1, 11, chunks=4), np.linspace(0, 1, 11)),
         ("linspace-noend", da.linspace(-2, 5, 9, endpoint=False, chunks=((2, 7),)), np.linspace(-2, 5, 9, endpoint=False)),
         ("linspace-1", da.linspace(3, 4, 1), np.linspace(3, 4, 1)),
         ("linspace-0", da.linspace(3, 4, 0), np.linspace(3, 4, 0)),
         ("linspace-int", da.linspace(0, 10, 7, chunks=3, dtype=int), np.linspace(0, 10, 7, dtype=int)),
         ("linspace-down", da.linspace(5, -5, 13, chunks=5), np.linspace(5, -5, 13)),
         ("eye", da.eye(7, chunks=3), np.eye(7)),
         ("eye-rect-k", da.eye(5, chunks=(2, 4), M=9, k=3, dtype=np.int32), np.eye(5, 9, k=3, dtype=np.int32)),
         ("eye-negk", da.eye(6, chunks=4, k=-2), np.eye(6, k=-2)),
         ("identity", da.identity(3, dtype=bool), np.identity(3, dtype=bool)),
         ("empty", da.empty((2, 3), chunks=2), np.zeros((2, 3))),
         ("zeros_like", da.zeros_like(np.ones((2, 2), np.int8)), np.zeros((2, 2), np.int8)),
         ("ones_like-shape", da.ones_like(da.ones(3), shape=(2, 5)), np.ones((2, 5))),
         ("full_like", da.full_like(da.ones((4, 3), chunks=2), 2.5, dtype=np.float32),
          np.full((4, 3), 2.5, np.float32)),
         ("empty_like", da.empty_like(np.ones(4)), np.zeros(4)))
    step = da.linspace(0, 1, 5, retstep=True)[1]
    assert step == np.linspace(0, 1, 5, retstep=True)[1]
    assert da.ones_like(da.ones((6, 4), chunks=(5, 3))).chunks == ((5, 1), (3, 1))
    with pytest.raises(ValueError, match="must be a non-negative"):
        da.linspace(0, 1, -1)


# -- random ----------------------------------------------------------------------------------------------


def test_random_keeps_its_original_function_and_stream():
    A = da.random((5, 4), chunks=(3, 2), seed=7)
    got = A.compute()
    for i, (r0, r1) in enumerate([(0, 3), (3, 5)]):          # block (i, j) is default_rng([seed, i, j])
        for j, (c0, c1) in enumerate([(0, 2), (2, 4)]):
            want = np.random.default_rng([7, i, j]).random((r1 - r0, c1 - c0))
            np.testing.assert_array_equal(got[r0:r1, c0:c1], want)
    np.testing.assert_array_equal(da.random.random((5, 4), chunks=(3, 2), seed=7).compute(), got)


def test_default_rng_distributions():
    rng = da.random.default_rng(42)
    n = rng.normal(3.0, 2.0, size=(200, 100), chunks=(64, 30))
    u = rng.uniform(-1, 5, size=20000, chunks=3000)
    i = rng.integers(2, 9, size=(100, 50), chunks=17)
    ie = rng.integers(5, size=1000, endpoint=True, chunks=300, dtype=np.int16)
    p = rng.poisson(4.0, size=(3, 0, 2))
    assert n.dtype == np.float64 and i.dtype == np.int64 and ie.dtype == np.int16 and p.shape == (3, 0, 2)
    stats = da.stack([n.mean(), n.std(), u.min(), u.max(), u.mean(), i.min(), i.max(), ie.min(), ie.max(),
                      rng.standard_normal((100, 100), chunks=40).mean(), rng.exponential(2.0, 5000).mean()]
                     ).compute()
    assert abs(stats[0] - 3) < 0.05 and abs(stats[1] - 2) < 0.05
    assert -1 <= stats[2] and stats[3] < 5 and abs(stats[4] - 2) < 0.05
    assert (stats[5], stats[6]) == (2, 8) and (stats[7], stats[8]) == (0, 5)
    assert abs(stats[9]) < 0.05 and abs(stats[10] - 2) < 0.1


def test_rng_reproducible_and_fresh():
    a1 = da.random.default_rng(3).normal(size=(6, 5), chunks=4)
    b1 = da.random.default_rng(3).normal(size=(6, 5), chunks=4)
    g = da.random.default_rng(3)
    first, second = g.normal(size=(6, 5), chunks=4), g.normal(size=(6, 5), chunks=4)
    got = da.stack([a1, b1, first, second]).compute()
    np.testing.assert_array_equal(got[0], got[1])
    np.testing.assert_array_equal(got[0], got[2])
    assert not np.array_equal(got[2], got[3])
    da.random.seed(11)
    c = da.random.normal(0, 1, (4, 4), chunks=2)
    da.random.seed(11)
    d = da.random.normal(0, 1, (4, 4), chunks=2)
    assert c.name == d.name and da.random.randint(0, 3, size=5).dtype == np.asarray(np.random.randint(0, 3, 5)).dtype


def test_random_bad_parameters_are_named():
    rng = da.random.default_rng(0)
    with pytest.raises(ArrayError, match="random.normal"):
        rng.normal(0, -1.0, size=4)
    with pytest.raises(NotImplementedError, match="scalar"):
        rng.normal(np.zeros(3), 1, size=3)
    with pytest.raises(TypeError, match="missing required argument 'lam'|unexpected"):
        rng.poisson(lamb=2, size=3)
    with pytest.raises(AttributeError, match="no 'dirichlet'"):
        da.random.dirichlet


# -- reductions and scans ----------------------------------------------------------------------------------


def test_argmin_argmax_nan_ties_and_exact_int64(x3):
    x = np.round(x3, 0)                         # many ties, spread over blocks
    xn = x.copy()
    xn[3, 2, 1] = np.nan
    xn[1, 6, 1] = np.nan
    big = np.array([[2**62 + 1, 2**62 + 3, 5], [2**62 + 3, 2**62 + 2, 2**62 + 3]], dtype=np.int64)
    ub = np.array([2**64 - 2, 2**64 - 1, 3], dtype=np.uint64)
    A, N = da.from_array(x, chunks=(2, 3, 3)), da.from_array(xn, chunks=((1, 4), (6, 1), (2, 2)))
    B, U = da.from_array(big, chunks=1), da.from_array(ub, chunks=2)
    pairs = []
    for axis in (None, 0, 1, 2, -1):
        pairs += [(f"argmin {axis}", A.argmin(axis=axis), x.argmin(axis=axis)),
                  (f"argmax {axis}", da.argmax(A, axis=axis), x.argmax(axis=axis)),
                  (f"nan argmin {axis}", N.argmin(axis=axis), xn.argmin(axis=axis)),
                  (f"nan argmax {axis}", N.argmax(axis=axis), xn.argmax(axis=axis))]
    pairs += [("int64 argmax", B.argmax(), big.argmax()), ("int64 argmax 0", B.argmax(axis=0), big.argmax(axis=0)),
              ("int64 argmin 1", B.argmin(axis=1), big.argmin(axis=1)), ("uint64 argmax", U.argmax(), ub.argmax()),
              ("keepdims", A.argmax(axis=1, keepdims=True), x.argmax(axis=1, keepdims=True))]
    same(*pairs)
    with pytest.raises(ValueError, match="zero-size"):
        da.zeros((0, 3)).argmax(axis=0)
    with pytest.raises(TypeError, match="axis must be an int"):
        A.argmax(axis=(0, 1))


def test_any_all_cumulative_and_nan_reductions(x3):
    xi = (x3 * 10).astype(np.int32)
    xn = np.where(x3 > 1.0, np.nan, x3)
    xn[:, :, 3] = np.nan                                       # an all-NaN slice
    A, I, N = (da.from_array(v, chunks=((2, 2, 1), (3, 4), (1, 3))) for v in (x3, xi, xn))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        pairs = [("any", (I > 15).any(axis=1), (xi > 15).any(axis=1)), ("all", I.all(axis=(0, 2)), xi.all(axis=(0, 2))),
                 ("cumsum int32", I.cumsum(axis=1), xi.cumsum(axis=1)),
                 ("cumsum None", A.cumsum(), x3.cumsum()),
                 ("cumprod dtype", I.cumprod(axis=2, dtype=np.float64), xi.cumprod(axis=2, dtype=np.float64)),
                 ("cumsum bool", da.cumsum(A > 0, axis=0), np.cumsum(x3 > 0, axis=0)),
                 ("nancumprod", da.nancumprod(N, axis=0), np.nancumprod(xn, axis=0))]
        for f in ("nansum", "nanprod", "nanmean", "nanvar", "nanstd", "nanmin", "nanmax"):
            for axis in (None, 2, (0, 1)):
                pairs.append((f"{f} {axis}", getattr(da, f)(N, axis=axis), getattr(np, f)(xn, axis=axis)))
        pairs.append(("nanstd ddof", da.nanstd(N, axis=0, ddof=1), np.nanstd(xn, axis=0, ddof=1)))
    same(*pairs)
    plan = planner.plan(A.cumsum(axis=1).expr, config.resolve()).plan
    labels = [s.label for s in plan.stages]
    assert len(labels) == 2 and "sum[chunk" in labels[0] and "cumsum[scan]" in labels[1]  # totals, then the scan


def test_std_var_argument_order_and_out():
    x = np.random.default_rng(1).random((6, 5))
    A = da.from_array(x, chunks=4)
    same(("std(0, None, None, 1)", A.std(0, None, None, 1), x.std(0, None, None, 1)),
         ("sum(0, int64)", A.sum(0, np.int64), x.sum(0, np.int64)), ("mean(None, None, None, True)",
                                                                     A.mean(None, None, None, True),
                                                                     x.mean(None, None, None, True)))
    same(("var(1, float32, None, 0, True)", A.var(1, np.float32, None, 0, True), x.var(1, np.float32, None, 0, True)),
         rtol=1e-6)   # numpy sums float32 in float32; graphwren's moments are float64
    with pytest.raises(TypeError, match="out="):
        A.std(0, None, np.empty(5))
    with pytest.raises(TypeError, match="out="):
        np.sum(A, out=np.empty(()))


def test_min_max_of_empty_axes_as_numpy():
    e = np.zeros((0, 3))
    E = da.from_array(e, chunks=2)
    same(("max axis 1", E.max(axis=1), e.max(axis=1)), ("min axis 1 keepdims", E.min(axis=1, keepdims=True),
                                                        e.min(axis=1, keepdims=True)),
         ("sum axis 0", E.sum(axis=0), e.sum(axis=0)), ("prod", E.prod(), e.prod()))
    for call in (lambda: E.max(axis=0), lambda: E.min(), lambda: da.nanmax(E, axis=0)):
        with pytest.raises(ValueError, match="zero-size array to reduction operation"):
            call()


# -- shapes -------------------------------------------------------------------------------------------------


def _factor_shapes(draw, size_factors):
    """Two shapes with the same product, from a shuffled list of factors grouped at random."""
    def group(fs):
        fs = list(fs)
        dims, cur = [], 1
        for f in fs:
            cur *= f
            if draw(st.booleans()):
                dims.append(cur)
                cur = 1
        dims.append(cur)
        return tuple(dims)
    a = group(draw(st.permutations(size_factors)))
    b = group(draw(st.permutations(size_factors)))
    return a, b


@st.composite
def reshape_cases(draw):
    factors = draw(st.lists(st.sampled_from([1, 2, 2, 3, 5]), min_size=1, max_size=5))
    old, new = _factor_shapes(draw, factors)
    chunks = tuple(draw(st.integers(1, max(1, s))) for s in old)
    return old, new, chunks


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=reshape_cases())
def test_reshape_matches_numpy(case):
    old, new, chunks = case
    x = np.arange(math.prod(old), dtype=np.float64).reshape(old)
    A = da.from_array(x, chunks=chunks)
    R = A.reshape(new)
    same((f"{old} -> {new} in {chunks}", R, x.reshape(new)), (f"back to {old}", R.reshape(old) * 2, x * 2),
         ("ravel", A.ravel(), x.ravel()))


def test_reshape_forms_and_errors(x3):
    A = da.from_array(x3, chunks=(2, 3, 3))
    same(("-1", A.reshape(-1, 4), x3.reshape(-1, 4)), ("tuple", A.reshape((35, 4)), x3.reshape((35, 4))),
         ("split", A.reshape(5, 7, 2, 2), x3.reshape(5, 7, 2, 2)), ("np.reshape", np.reshape(A, (4, 35)),
                                                                     x3.reshape(4, 35)),
         ("0-size", da.zeros((0, 4)).reshape(2, 0, 2), np.zeros((0, 4)).reshape(2, 0, 2)),
         ("0-d", da.ones((1, 1)).reshape(()), np.ones((1, 1)).reshape(())),
         ("squeeze", da.squeeze(A[:, :1, None], axis=(1, 2)), np.squeeze(x3[:, :1, None], axis=(1, 2))),
         ("expand_dims", da.expand_dims(A, (0, 4)), np.expand_dims(x3, (0, 4))),
         ("atleast_2d", da.atleast_2d(da.arange(3)), np.atleast_2d(np.arange(3))))
    with pytest.raises(ValueError, match="cannot reshape array of size 140 into shape"):
        A.reshape(3, -1)
    with pytest.raises(ValueError, match="one unknown dimension"):
        A.reshape(-1, -1)
    with pytest.raises(ValueError, match="size not equal to one"):
        A.squeeze(axis=0)
    with pytest.raises(NotImplementedError, match="order='F'"):
        A.reshape(-1, order="F")


def test_reshape_that_needs_big_blocks_is_refused_at_plan_time():
    A = da.zeros((8192, 8192), chunks=1024)
    text = A.reshape(-1).explain(max_task_memory=1024**3)            # rows made whole: 64 MiB blocks
    assert "reshape" in text
    with pytest.raises(ProjectedMemoryError, match="max_task_memory"):
        A.reshape(-1).explain(max_task_memory=256 * 1024**2)


def test_concatenate_stack_and_mixed_dtypes(x3):
    a = x3
    b = (x3[:2] * 10).astype(np.int16)
    A = da.from_array(a, chunks=(2, 3, 3))
    B = da.from_array(b, chunks=(1, 7, 4))
    Z = da.zeros((0, 7, 4), chunks=2)
    same(("concat 0", da.concatenate([A, B, Z], axis=0), np.concatenate([a, b, np.zeros((0, 7, 4))], axis=0)),
         ("concat -1", np.concatenate([A, A[..., :1]], axis=-1), np.concatenate([a, a[..., :1]], axis=-1)),
         ("stack", da.stack([A[0], B[0], A[1]], axis=1), np.stack([a[0], b[0], a[1]], axis=1)),
         ("hstack", da.hstack([da.arange(3), da.arange(2)]), np.hstack([np.arange(3), np.arange(2)])),
         ("vstack", da.vstack([da.arange(3), da.arange(3, 6)]), np.vstack([np.arange(3), np.arange(3, 6)])),
         ("concat numpy", da.concatenate([A[0], a[1]]), np.concatenate([a[0], a[1]])))
    with pytest.raises(ValueError, match="along dimension 1"):
        da.concatenate([A, da.zeros((5, 6, 4))])
    with pytest.raises(ValueError, match="same number of dimensions"):
        da.concatenate([A, A[0]])
    with pytest.raises(ValueError, match="same shape"):
        da.stack([A, A[1:]])


# -- indexing ---------------------------------------------------------------------------------------------------


def test_fancy_boolean_and_negative_step_indexing(x3):
    A = da.from_array(x3, chunks=((2, 2, 1), (3, 1, 3), (3, 1)))
    m2 = x3[..., 0] > 0
    idx = [
        (np.array([4, 0, -1, 2, 2]),), (slice(None), [6, 0, 3]), (Ellipsis, [3, 3]), (1, [0, 6], slice(1, 3)),
        (slice(None), 2, [0, 3]), ([1, 3], slice(None), 0), (x3[:, 0, 0] > 0,), (m2,), (x3 > 0.5,),
        (slice(None, None, -1),), (slice(4, 0, -2), slice(None, None, -3), slice(None, None, -1)),
        (slice(-2, None, -1), 3), (slice(None), slice(7, 1, -2)), (None, slice(None, None, -2), Ellipsis, 2),
        (np.array([], dtype=int),), (np.zeros(5, bool),), (slice(2, 2, -1),),
    ]
    same(*[(f"x3[{i}]", A[i], x3[i]) for i in idx],
         ("take", da.take(A, [3, -1, 0], axis=1), np.take(x3, [3, -1, 0], axis=1)),
         ("take flat", np.take(A, [0, 139, 70]), np.take(x3, [0, 139, 70])))
    with pytest.raises(IndexError, match="out of bounds for axis 1"):
        A[:, [0, 7]]
    with pytest.raises(IndexError, match="does not match"):
        A[np.ones(4, bool)]
    with pytest.raises(NotImplementedError, match="more than one array"):
        A[[0, 1], [0, 1]]
    with pytest.raises(NotImplementedError, match="lazy graphwren array"):
        A[A > 0]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 12), chunk=st.integers(1, 5), start=st.none() | st.integers(-14, 14),
       stop=st.none() | st.integers(-14, 14), step=st.sampled_from([None, 1, 2, 3, -1, -2, -3, -5]))
def test_slices_with_any_step_match_numpy(n, chunk, start, stop, step):
    v = np.arange(n, dtype=np.float64)
    s = slice(start, stop, step)
    same((f"[{s}] of {n} in {chunk}", da.from_array(v, chunks=chunk)[s], v[s]))


# -- blockwise ---------------------------------------------------------------------------------------------------


def test_map_blocks_forms():
    x = np.arange(30.0).reshape(5, 6)
    A = da.from_array(x, chunks=(2, 4))
    ids = A.map_blocks(lambda b, block_id=None: np.full(b.shape, block_id[0] * 10 + block_id[1]), dtype=int)
    want_ids = np.array([[0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1], [10] * 4 + [11] * 2, [10] * 4 + [11] * 2,
                         [20] * 4 + [21] * 2])
    same(("double", A.map_blocks(lambda b: b * 2), x * 2),
         ("block_id", ids, want_ids),
         ("two arrays", da.map_blocks(np.add, A, A.T.T), x + x),
         ("broadcast", da.map_blocks(np.multiply, A, da.from_array(np.arange(6.0), chunks=4)), x * np.arange(6.0)),
         ("drop_axis", A.map_blocks(lambda b: b.sum(axis=1), drop_axis=1), x.sum(axis=1)),
         ("new_axis", A[:, 0].map_blocks(lambda b: b[:, None] * [1, 2, 3], new_axis=1, chunks=((2, 2, 1), (3,))),
          x[:, :1] * [1, 2, 3]),
         ("chunks", A.map_blocks(lambda b: b[:1], chunks=(1, (4, 2))), x[[0, 2, 4]]))
    with pytest.raises(ArrayError, match="planned chunks"):
        A.map_blocks(lambda b: b[:1]).compute()
    with pytest.raises(ArrayError, match="pass dtype="):
        A.map_blocks(lambda b: b.nope)


def _add_one_in_place(b):
    b += 1
    return b


def test_a_user_function_may_change_its_blocks_in_place_whatever_they_were_read_from(tmp_path):
    # dask hands map_blocks writable blocks; graphwren reads many blocks zero-copy (views of immutable
    # bytes: shipped arrays, persisted results, uncompressed zarr chunks), and copies them for the user
    import zarr
    x = np.arange(48.0).reshape(6, 8)
    keep = x.copy()
    zarr.create_array(str(tmp_path / "raw"), data=x, chunks=(3, 4), compressors=None)
    zarr.create_array(str(tmp_path / "packed"), data=x, chunks=(3, 4))
    A = da.from_array(x, chunks=(3, 4))
    sources = {"from_array": (A, x), "transposed": (A.T, x.T), "persisted": ((A * 2).persist(), x * 2),
               "zarr, one uncompressed chunk a block": (da.from_zarr(f"file://{tmp_path}/raw"), x),
               "zarr, compressed": (da.from_zarr(f"file://{tmp_path}/packed"), x),
               "zarr, blocks across chunks": (da.from_zarr(f"file://{tmp_path}/raw", chunks=(2, 5)), x)}
    same(*[(name, a.map_blocks(_add_one_in_place), want + 1) for name, (a, want) in sources.items()],
         ("blockwise", da.blockwise(_add_one_in_place, "ij", A, "ij"), x + 1),
         ("map_overlap", A.map_overlap(_add_one_in_place, depth=1, boundary="none"), x + 1),
         ("then matmul", A.map_blocks(_add_one_in_place) @ A.T, (x + 1) @ x.T))
    np.testing.assert_array_equal(x, keep)   # the user's own array is not the one changed
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "raw"))[...], keep)   # nor the stored one


def test_blockwise_outer_and_contraction():
    u, v = np.arange(5.0), np.arange(7.0)
    U, V = da.from_array(u, chunks=2), da.from_array(v, chunks=3)
    m = np.arange(35.0).reshape(5, 7)
    M = da.from_array(m, chunks=(2, 3))
    same(("outer", da.blockwise(np.multiply.outer, "ij", U, "i", V, "j"), np.multiply.outer(u, v)),
         ("contract", da.blockwise(lambda a, b: a @ b, "i", M, "ij", V, "j", concatenate=True), m @ v),
         ("scalar", da.blockwise(np.add, "ij", M, "ij", 3, None), m + 3))
    with pytest.raises(NotImplementedError, match="concatenate=True"):
        da.blockwise(lambda a, b: a @ b, "i", M, "ij", V, "j")


def test_einsum_tensordot_batched_matmul(x3):
    y = np.random.default_rng(2).standard_normal((4, 6))
    X, Y = da.from_array(x3, chunks=(2, 3, 3)), da.from_array(y, chunks=(3, 4))
    sq = np.random.default_rng(3).random((6, 6))
    S = da.from_array(sq, chunks=4)
    b = np.random.default_rng(4).random((1, 4, 3))
    same(("ijk,kl", da.einsum("ijk,kl->ijl", X, Y), np.einsum("ijk,kl->ijl", x3, y)),
         ("implicit", da.einsum("ij,jk", S, S), np.einsum("ij,jk", sq, sq)),
         ("diag", da.einsum("ii->i", S), np.einsum("ii->i", sq)), ("trace", da.einsum("ii", S), np.einsum("ii", sq)),
         ("permute", da.einsum("ijk->kji", X), np.einsum("ijk->kji", x3)),
         ("tensordot 1", da.tensordot(X, Y, axes=1), np.tensordot(x3, y, axes=1)),
         ("tensordot pairs", da.tensordot(X, X, axes=([0, 2], [0, 2])), np.tensordot(x3, x3, axes=([0, 2], [0, 2]))),
         ("tensordot 0", da.tensordot(S[:2, :2], S[:3, 0], axes=0), np.tensordot(sq[:2, :2], sq[:3, 0], axes=0)),
         ("batched", X @ Y, x3 @ y), ("broadcast batch", da.from_array(b, chunks=2) @ X.transpose(0, 2, 1)[:, :3],
                                      b @ x3.transpose(0, 2, 1)[:, :3]),
         ("vector @ 3-d", np.ones(7) @ X, np.ones(7) @ x3), ("3-d @ vector", X @ np.ones(4), x3 @ np.ones(4)))
    with pytest.raises(NotImplementedError, match="'...'"):
        da.einsum("...ij->...i", X)
    with pytest.raises(ArrayError, match="shape mismatch"):
        X @ X


def test_einsum_whose_contraction_does_not_fit_is_refused_at_plan_time():
    A = da.zeros((65536, 8192), chunks=(1024, 1024))
    with pytest.raises(ProjectedMemoryError, match="max_task_memory"):
        da.einsum("ij,ij->i", A, A).explain(max_task_memory=256 * 1024**2)   # two 1024 x 8192 blocks per task


# -- running -------------------------------------------------------------------------------------------------


def test_scalars_from_0d_results():
    A = da.from_array(np.arange(6.0).reshape(2, 3), chunks=2)
    assert float(A.sum()) == 15.0 and int(A.argmax()) == 5 and complex(A[0, 1]) == 1 + 0j
    assert A.max().item() == 5.0 and [0, 10, 20][da.arange(3)[1]] == 10
    with pytest.raises(TypeError, match="size-1"):
        float(A)
    with pytest.raises(TypeError, match="integer"):
        [0, 1][A[0, 1]]
    with pytest.raises(TypeError, match="immutable"):
        A[0, 0] = 1


def test_compute_schedulers_and_persist():
    x = np.arange(20.0).reshape(4, 5)
    A = da.from_array(x, chunks=3) * 2
    for name in ("threads", "processes", "sync", "single-threaded", "synchronous", None):
        np.testing.assert_array_equal(A.sum(axis=0).compute(scheduler=name), (x * 2).sum(axis=0))
    with pytest.raises(ValueError, match="scheduler='dask' is not known.*'threads'"):
        A.compute(scheduler="dask")
    a, total, three = da.compute(A, A.sum(), 3, scheduler="sync")
    np.testing.assert_array_equal(a, x * 2)
    assert total == (x * 2).sum() and three == 3
    P = A.persist()
    assert "persisted" in (P + 1).explain()
    same(("persisted + 1", P + 1, x * 2 + 1), ("persisted @", P @ P.T, (x * 2) @ (x * 2).T))
    (Q,) = da.persist(P[1:])
    np.testing.assert_array_equal(Q.compute(), x[1:] * 2)


# -- map_overlap ---------------------------------------------------------------------------------------------------


def _stencil(b):
    return b + np.roll(b, 1, 0) + np.roll(b, -1, 0) + 2 * np.roll(b, 2, -1)


def test_map_overlap_matches_a_padded_numpy_stencil(x3):
    x = np.random.default_rng(0).random((11, 9))
    X = da.from_array(x, chunks=(4, (2, 5, 2)))
    pads = {"reflect": "symmetric", "periodic": "wrap", "nearest": "edge"}
    pairs = []
    for mode in ("reflect", "periodic", "nearest", 0.5):
        padded = np.pad(x, ((1, 1), (2, 2)), mode=pads.get(mode, "constant"),
                        **({} if mode in pads else {"constant_values": mode}))
        pairs.append((f"boundary={mode}", X.map_overlap(_stencil, depth=(1, 2), boundary=mode),
                      _stencil(padded)[1:-1, 2:-2]))
    X3 = da.from_array(x3, chunks=(2, 3, (1, 3)))
    padded3 = np.pad(x3, ((1, 1), (0, 0), (2, 2)), mode="wrap")
    pairs.append(("3-d periodic", da.map_overlap(_stencil, X3, depth={0: 1, 2: 2}, boundary="periodic"),
                  _stencil(padded3)[1:-1, :, 2:-2]))
    pairs.append(("none", X.map_overlap(lambda b: b * 2, depth=1, boundary="none"), x * 2))
    pairs.append(("1 block", da.from_array(x).map_overlap(_stencil, depth=(1, 2), boundary="reflect"),
                  _stencil(np.pad(x, ((1, 1), (2, 2)), mode="symmetric"))[1:-1, 2:-2]))
    same(*pairs)
    untrimmed = X.map_overlap(lambda b: b, depth=1, boundary="nearest", trim=False)
    assert untrimmed.chunks == ((6, 6, 5), (4, 7, 4))
    assert "map_overlap(depth=(1, 2))" in X.map_overlap(_stencil, depth=(1, 2), boundary="reflect").explain()
    with pytest.raises(ValueError, match="boundary 'mirror'"):
        X.map_overlap(_stencil, depth=1, boundary="mirror")
    with pytest.raises(NotImplementedError, match="one array"):
        da.map_overlap(np.add, X, X, depth=1)


def test_block_views_and_size_attributes():
    x = np.arange(30.0).reshape(5, 6)
    X = da.from_array(x, chunks=(2, 4))
    assert (X.chunksize, X.npartitions, X.itemsize) == ((2, 4), 6, 8)
    same(("blocks[1, 1]", X.blocks[1, 1], x[2:4, 4:]), ("blocks[-1]", X.blocks[-1], x[4:]),
         ("blocks[:2, 0]", X.blocks[:2, 0], x[:4, :4]), ("rechunk", da.rechunk(X, 3), x),
         ("rows", da.stack(list(X)), x))
    with pytest.raises(IndexError, match="out of range"):
        X.blocks[3]
    with pytest.raises(TypeError, match="0-d"):
        iter(X.sum())
