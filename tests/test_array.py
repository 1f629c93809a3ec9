"""Blocked arrays checked against numpy on the same data, through the real local backend."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphwren import config, planner
from graphwren.errors import ProjectedMemoryError
from graphwren.collections import array as ga
from graphwren.collections.array import ArrayError
from graphwren.logical import optimize
from graphwren.logical.array import MatMul, MatMulSplit, ReduceLevel
from graphwren.planner.matmul import choose_matmul_strategies


def close(got, want, dtype=np.float64):
    rtol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-9
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    assert np.shape(got) == np.shape(want)


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((7, 9))


# -- constructors ---------------------------------------------------------------------


def test_from_numpy_roundtrip_ragged(x):
    A = ga.from_numpy(x, chunks=(3, 4))
    assert A.chunks == ((3, 3, 1), (4, 4, 1))
    close(A.compute(), x)


def test_chunks_forms():
    assert ga.zeros((5, 6), chunks=(2, -1)).chunks == ((2, 2, 1), (6,))
    assert ga.zeros((5, 6), chunks=((1, 4), (3, 3))).chunks == ((1, 4), (3, 3))
    assert ga.zeros((5,), chunks=10).chunks == ((5,),)
    with pytest.raises(ArrayError, match="do not add up"):
        ga.zeros((5, 6), chunks=((1, 3), (3, 3)))
    with pytest.raises(ArrayError, match="entries"):
        ga.zeros((5, 6), chunks=(2, 2, 2))


def test_constructors():
    close(ga.zeros((5, 3), chunks=2).compute(), np.zeros((5, 3)))
    close(ga.ones((4,), chunks=3, dtype=np.int64).compute(), np.ones(4, np.int64))
    close(ga.full((3, 3), 7.5, chunks=2).compute(), np.full((3, 3), 7.5))
    a = ga.arange(2, 23, 3, chunks=3)
    assert a.compute().dtype == np.arange(2, 23, 3).dtype
    close(a.compute(), np.arange(2, 23, 3))
    close(ga.arange(10, chunks=4, dtype=np.float32).compute(), np.arange(10, dtype=np.float32))


def test_random_reproducible_per_block():
    A = ga.random((10, 6), chunks=(4, 3), seed=3)
    a = A.compute()
    assert a.shape == (10, 6) and 0 <= a.min() and a.max() < 1
    np.testing.assert_array_equal(a, ga.random((10, 6), chunks=(4, 3), seed=3).compute())
    assert not np.array_equal(a, ga.random((10, 6), chunks=(4, 3), seed=4).compute())
    assert ga.random((4, 4), chunks=2, seed=1, dtype=np.float32).compute().dtype == np.float32


# -- blockwise ------------------------------------------------------------------------


def test_elementwise_and_scalars(x):
    A = ga.from_numpy(x, chunks=(3, 4))
    close(((A + 1) * 2 - A / 3).compute(), (x + 1) * 2 - x / 3)
    close((2 ** abs(A) + (-A)).compute(), 2 ** abs(x) + (-x))
    np.testing.assert_array_equal((A > 0).compute(), x > 0)
    np.testing.assert_array_equal((A <= A * 0).compute(), x <= x * 0)
    close(np.exp(A).compute(), np.exp(x))
    close(np.maximum(A, 0.5).compute(), np.maximum(x, 0.5))
    close(A.astype(np.float32).compute(), x.astype(np.float32), np.float32)
    assert A.astype(np.int64).dtype == np.int64


def test_fusion_is_one_stage(x):
    A = ga.from_numpy(x, chunks=(3, 4))
    B = (np.sin(A) + A.T.T * 2)[1:, ::2]
    plan = planner.plan(B.expr, config.resolve()).plan
    plan = plan
    assert len(plan.stages) == 1
    close(B.compute(), (np.sin(x) + x * 2)[1:, ::2])


def test_broadcasting():
    rng = np.random.default_rng(1)
    m, row, col = rng.random((6, 5)), rng.random(5), rng.random((6, 1))
    A = ga.from_numpy(m, chunks=(4, 2))
    close((A + ga.from_numpy(row, chunks=2)).compute(), m + row)
    close((A * ga.from_numpy(col, chunks=(4, 1))).compute(), m * col)
    close((A - row).compute(), m - row)          # a numpy operand is shipped as an array
    close((row - A).compute(), row - m)


def test_mixed_chunkings_are_rechunked():
    rng = np.random.default_rng(2)
    a, b = rng.random((9, 7)), rng.random((9, 7))
    A, B = ga.from_numpy(a, chunks=(4, 3)), ga.from_numpy(b, chunks=(2, 5))
    close((A + B).compute(), a + b)
    assert (A + B).chunks == A.chunks


def test_transpose_and_slicing(x):
    A = ga.from_numpy(x, chunks=(3, 4))
    close(A.T.compute(), x.T)
    close(A.transpose(1, 0).compute(), x.T)
    for idx in [(slice(1, 6), slice(2, None)), (2,), (slice(None), -1), (slice(None, None, 3), slice(1, 8, 2)),
                (Ellipsis, 4), (None, slice(2, 5)), (slice(4, 4),)]:
        close(A[idx].compute(), x[idx])
    with pytest.raises(IndexError):
        A[7]
    close(A[[1, 2]].compute(), x[[1, 2]])        # integer-array indexing (tests/test_array_api.py has more)
    with pytest.raises(NotImplementedError, match="more than one array"):
        A[[1, 2], [0, 1]]


def test_one_by_one_grid_and_1d():
    v = np.arange(5.0)
    V = ga.from_numpy(v, chunks=10)
    assert V.numblocks == (1,)
    close((V * 2).sum().compute(), (v * 2).sum())
    close(ga.from_numpy(v, chunks=2).mean().compute(), v.mean())
    close(ga.from_numpy(np.ones((1, 1)), chunks=1).sum(axis=0).compute(), np.ones(1))


def test_int64_dtype():
    a = np.arange(24, dtype=np.int64).reshape(4, 6)
    A = ga.from_numpy(a, chunks=(3, 4))
    r = (A * 3 + 1).compute()
    assert r.dtype == np.int64
    np.testing.assert_array_equal(r, a * 3 + 1)
    np.testing.assert_array_equal(A.sum(axis=0).compute(), a.sum(axis=0))
    np.testing.assert_array_equal((A // 5 % 3).compute(), a // 5 % 3)
    np.testing.assert_array_equal((A @ A.T).compute(), a @ a.T)


def test_rechunk(x):
    A = ga.from_numpy(x, chunks=(3, 4))
    R = A.rechunk((2, 5))
    assert R.chunks == ((2, 2, 2, 1), (5, 4))
    close(R.compute(), x)
    assert A.rechunk({1: 2}).chunks == ((3, 3, 1), (2, 2, 2, 2, 1))
    close(A.rechunk(-1).compute(), x)
    M = (A @ A.T).rechunk(((1, 6), (4, 3)))   # rechunk of a materialized matmul: CUSTOM edge
    plan = planner.plan(M.expr, config.resolve()).plan
    assert [e.kind for s in plan.stages for e in s.inputs] == ["custom"]
    close(M.compute(), x @ x.T)


# -- reductions -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["sum", "mean", "min", "max", "prod", "std", "var"])
def test_reductions(how):
    x = np.random.default_rng(3).random((9, 11)) + 0.5
    A = ga.from_numpy(x, chunks=(2, 3))
    fn = getattr(np, how)
    for axis in [None, 0, 1, (0, 1), -1]:
        close(getattr(A, how)(axis=axis, split_every=2).compute(), fn(x, axis=axis))
    close(getattr(A, how)(axis=0, keepdims=True).compute(), fn(x, axis=0, keepdims=True))


def test_reduction_tree_levels():
    A = ga.zeros((64, 8), chunks=(2, 4))
    opt = optimize(A.sum(axis=0, split_every=4).expr, config.resolve())
    levels = [n for n in opt.walk() if isinstance(n, ReduceLevel)]
    assert len(levels) == 3       # 32 blocks -> 8 -> 2 -> 1
    close(A.sum(axis=0, split_every=4).compute(), np.zeros(8))


def test_var_ddof_and_numpy_functions(x):
    A = ga.from_numpy(x, chunks=(3, 4))
    close(A.var(axis=1, ddof=1).compute(), x.var(axis=1, ddof=1))
    close(np.std(A, axis=0).compute(), np.std(x, axis=0))
    close(np.sum(A).compute(), np.sum(x))
    close(np.mean(A, axis=1).compute(), np.mean(x, axis=1))


def test_float32_reductions():
    x = np.random.default_rng(4).random((20, 30)).astype(np.float32)
    A = ga.from_numpy(x, chunks=7)
    for how in ["sum", "mean", "std", "max"]:
        got = getattr(A, how)(axis=0).compute()
        assert got.dtype == getattr(np, how)(x, axis=0).dtype
        close(got, getattr(np, how)(x, axis=0), np.float32)


# -- matmul --------------------------------------------------------------------------------


def test_matmul_ragged_and_epilogue():
    rng = np.random.default_rng(5)
    a, b = rng.random((10, 7)), rng.random((9, 7))
    A, B = ga.from_numpy(a, chunks=(4, 3)), ga.from_numpy(b, chunks=(4, 3))
    C = (A @ B.T + 1.0) * 2
    plan = planner.plan(C.expr, config.resolve()).plan
    assert len(plan.stages) == 1    # matmul and its epilogue fused
    close(C.compute(), (a @ b.T + 1) * 2)
    close(A.dot(B.T).compute(), a.dot(b.T))
    close(np.dot(A, B.T).compute(), a @ b.T)


def test_matmul_operand_chunks_mismatch_rechunks():
    rng = np.random.default_rng(6)
    a, b = rng.random((6, 8)), rng.random((8, 5))
    close((ga.from_numpy(a, chunks=(3, 3)) @ ga.from_numpy(b, chunks=(4, 2))).compute(), a @ b)


def test_matmul_vectors_and_tensordot():
    rng = np.random.default_rng(7)
    a, v = rng.random((6, 8)), rng.random(8)
    A, V = ga.from_numpy(a, chunks=3), ga.from_numpy(v, chunks=3)
    close((A @ V).compute(), a @ v)
    close((V @ A.T).compute(), v @ a.T)
    b = rng.random((6, 8))
    B = ga.from_numpy(b, chunks=3)
    for axes in [1, ([1], [1]), ([0], [0]), (0, 1), 2]:
        bb = b.T if axes in [1, (0, 1)] else b
        BB = B.T if axes in [1, (0, 1)] else B
        close(ga.tensordot(A, BB, axes=axes).compute(), np.tensordot(a, bb, axes=axes))


def test_matmul_k_split_when_grid_smaller_than_workers():
    rng = np.random.default_rng(8)
    a, b = rng.random((4, 16)), rng.random((16, 4))
    A, B = ga.from_numpy(a, chunks=4), ga.from_numpy(b, chunks=4)
    C = A @ B
    two = config.resolve({"workers": 2})
    opt = choose_matmul_strategies(optimize(C.expr, two), two)
    assert any(isinstance(n, MatMulSplit) for n in opt.walk())
    plan = planner.plan(C.expr, config.resolve({"workers": 2})).plan
    assert len(plan.stages) == 2
    close(C.compute(workers=2), a @ b)
    wide = choose_matmul_strategies(
        optimize((ga.from_numpy(np.ones((8, 8)), chunks=4) @ ga.ones((8, 8), chunks=4)).expr, two), two)
    assert isinstance(wide, MatMul) and wide.strategy == "stream"


def test_chained_matmul_materializes_inner(x):
    A = ga.from_numpy(x, chunks=(3, 4))
    C = (A @ A.T) @ A
    plan = planner.plan(C.expr, config.resolve()).plan
    assert len(plan.stages) == 2
    close(C.compute(), (x @ x.T) @ x)
    M = A @ A.T
    close((M + M.T).compute(), x @ x.T + (x @ x.T).T)


def test_matmul_memory_bound_error_suggests_chunks():
    A = ga.random((4096, 4096), chunks=4096, seed=0)
    with pytest.raises(ArrayError, match=r"max_task_memory.*rechunk\(\(\d+, \d+\)\)"):
        (A @ A).explain(max_task_memory=256 * 1024**2)
    B = ga.random((4096, 4096), chunks=1024, seed=0)
    text = (B @ B).explain(max_task_memory=256 * 1024**2)
    assert "peak memory/task" in text


def test_chunks_larger_than_bound():
    A = ga.zeros((8192, 8192), chunks=8192)
    with pytest.raises(ProjectedMemoryError, match="max_task_memory"):
        (A + 1).explain(max_task_memory=128 * 1024**2)


# -- explain ----------------------------------------------------------------------------------


def test_explain_shows_stages_memory_and_bytes():
    A = ga.random((64, 64), chunks=16, seed=0)
    B = ga.from_numpy(np.eye(64), chunks=16)
    text = ((A @ B.T + 1.0) * 2).sum(axis=0).explain()
    for part in ["== Logical plan ==", "== Optimized plan ==", "MatMul(strategy=stream)", "peak memory/task",
                 "reads ~", "writes ~", "matmul[stream over 4 k-blocks]", "sum["]:
        assert part in text, part


# -- bad input ---------------------------------------------------------------------------------


def test_bad_input_errors():
    A = ga.zeros((4, 5), chunks=2)
    with pytest.raises(ArrayError, match=r"matmul: shape mismatch, \(4, 5\) @ \(4, 5\)"):
        A @ A
    with pytest.raises(ArrayError, match="could not be broadcast"):
        A + ga.zeros((4, 4), chunks=2)
    with pytest.raises(ArrayError, match="not numeric"):
        ga.from_numpy(np.array(["a", "b"]))
    with pytest.raises(ArrayError, match="not numeric"):
        ga.from_numpy(np.array([object(), 1], dtype=object))
    with pytest.raises(ArrayError, match="not a number"):
        A + "x"
    with pytest.raises(ArrayError, match="0-d"):
        ga.zeros(()) @ ga.zeros((2, 2))
    with pytest.raises(ArrayError, match="axis 2 is out of bounds"):
        A.sum(axis=2)


# -- hypothesis ---------------------------------------------------------------------------------


@st.composite
def shape_and_chunks(draw):
    ndim = draw(st.integers(1, 2))
    shape = tuple(draw(st.integers(1, 9)) for _ in range(ndim))
    chunks = tuple(draw(st.integers(1, s)) for s in shape)
    return shape, chunks


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sc=shape_and_chunks(), axis=st.sampled_from([None, 0, -1]), how=st.sampled_from(["sum", "mean", "max", "var"]))
def test_hypothesis_elementwise_and_reductions(sc, axis, how):
    shape, chunks = sc
    x = np.random.default_rng(sum(shape)).random(shape)
    A = ga.from_numpy(x, chunks=chunks)
    close(getattr(A * 2 + 1, how)(axis=axis, split_every=2).compute(), getattr(np, how)(x * 2 + 1, axis=axis))


@settings(max_examples=6, deadline=None)
@given(m=st.integers(1, 9), k=st.integers(1, 9), n=st.integers(1, 9), cm=st.integers(1, 4), ck=st.integers(1, 4),
       cn=st.integers(1, 4))
def test_hypothesis_matmul(m, k, n, cm, ck, cn):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a, b = rng.random((m, k)), rng.random((k, n))
    close((ga.from_numpy(a, chunks=(cm, ck)) @ ga.from_numpy(b, chunks=(ck, cn))).compute(), a @ b)
