"""gw.array.linalg against numpy.linalg: TSQR, SVD, Cholesky, triangular and general solves, lstsq, norm."""
from __future__ import annotations

import numpy as np
import pytest

import graphwren.array as da
from graphwren import config, planner
from graphwren.errors import ArrayError, ProjectedMemoryError

la = da.linalg


def _stages(arr):
    """(label, tasks) of every stage of arr's plan."""
    plan = planner.plan(arr.expr, config.resolve()).plan
    return [(s.label, s.ntasks) for s in plan.stages]


def _one_job(*arrays):
    """Compute several lazy results in one job (raveled and joined), split back into numpy arrays."""
    parts = da.concatenate([np.ravel(a).astype(np.float64) for a in arrays]).compute()
    out, at = [], 0
    for a in arrays:
        out.append(parts[at:at + a.size].reshape(a.shape))
        at += a.size
    return out


@pytest.mark.parametrize("shape,chunks", [((50, 6), (12, 6)), ((50, 6), (12, 4)), ((7, 7), -1), ((40, 3), (5, 1)),
                                          ((33, 5), ((10, 10, 10, 3), (5,)))])
def test_qr_is_tsqr_and_matches_numpy(shape, chunks):
    x = np.random.default_rng(sum(shape)).standard_normal(shape)
    X = da.from_array(x, chunks=chunks)
    q, r = la.qr(X)
    assert q.shape == (shape[0], shape[1]) and r.shape == (shape[1], shape[1])
    Q, R = _one_job(q, r)
    np.testing.assert_allclose(Q @ R, x, atol=1e-10)
    np.testing.assert_allclose(Q.T @ Q, np.eye(shape[1]), atol=1e-10)
    np.testing.assert_array_equal(R, np.triu(R))
    np.testing.assert_allclose(abs(R), abs(np.linalg.qr(x)[1]), atol=1e-10)   # numpy's R up to row signs


def test_tsqr_stages_have_much_parallelism_early_and_one_task_late():
    X = da.random((4000, 16), chunks=(500, 16), seed=0)
    q, r = la.qr(X)
    stages = _stages(q)
    assert [n for _, n in stages] == [8, 1, 8]
    assert "tsqr: QR of each of 8 row blocks" in stages[0][0]
    assert "tsqr: QR of 8 stacked R factors in 1 tasks" in stages[1][0]
    assert "tsqr: QR of 8 stacked R factors" in q.explain()


def test_tsqr_tree_matches_numpy():
    x = np.random.default_rng(9).standard_normal((230, 4))
    X = da.from_array(x, chunks=(10, 4))                    # 23 blocks: levels of 3 -> 8 -> 3 -> 1 tasks
    q, r = la.qr(X, split_every=3)
    assert [n for _, n in _stages(q)] == [23, 8, 3, 1, 23]
    Q, R = _one_job(q, r)
    np.testing.assert_allclose(Q @ R, x, atol=1e-10)
    np.testing.assert_allclose(Q.T @ Q, np.eye(4), atol=1e-10)
    np.testing.assert_allclose(abs(R), abs(np.linalg.qr(x)[1]), atol=1e-10)
    with pytest.raises(ArrayError, match="split_every"):
        la.qr(X, split_every=1)


def test_svd_and_svd_compressed():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 5))
    low = rng.standard_normal((40, 3)) @ rng.standard_normal((3, 30))     # rank 3
    X = da.from_array(x, chunks=(16, 5))
    u, s, vt = la.svd(X)
    uw, sw, vtw = la.svd(X.T)                                           # short and fat: through its transpose
    uc, sc, vc = la.svd_compressed(da.from_array(low, chunks=(10, 15)), 3, n_power_iter=1, seed=0)
    U, S, VT, SW, SC, UC, VC = _one_job(u, s, vt, sw, sc, uc, vc)
    np.testing.assert_allclose(S, np.linalg.svd(x, compute_uv=False), rtol=1e-10)
    np.testing.assert_allclose((U * S) @ VT, x, atol=1e-10)
    np.testing.assert_allclose(SW, S, rtol=1e-10)
    np.testing.assert_allclose(SC, np.linalg.svd(low, compute_uv=False)[:3], rtol=1e-8)
    np.testing.assert_allclose((UC * SC) @ VC, low, atol=1e-8)
    np.testing.assert_allclose(np.linalg.svd(X, full_matrices=False, compute_uv=False).compute(), S, rtol=1e-10)
    with pytest.raises(NotImplementedError, match="full_matrices=False"):
        np.linalg.svd(X)


@pytest.mark.parametrize("n,chunks", [(11, 4), (9, -1), (12, 3), (14, ((3, 5, 2, 4), (3, 5, 2, 4))), (7, 5)])
def test_cholesky_matches_numpy(n, chunks):
    m = np.random.default_rng(n).standard_normal((n, n))
    spd = m @ m.T + n * np.eye(n)
    S = da.from_array(spd, chunks=chunks)
    L, U, NL = _one_job(la.cholesky(S, lower=True), la.cholesky(S), np.linalg.cholesky(S))
    np.testing.assert_allclose(L, np.linalg.cholesky(spd), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(U, np.linalg.cholesky(spd).T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(NL, L, rtol=0, atol=0)


def test_cholesky_stages_shrink_as_numpywren_describes():
    S = da.eye(40, chunks=8) * 2.0                                       # 5 x 5 blocks
    stages = [(label.split("cholesky: ", 1)[-1], n) for label, n in _stages(la.cholesky(S, lower=True))
              if "cholesky" in label]
    names = [what.rsplit(" ", 1)[0] if what.startswith("panel") else what for what, _ in stages]
    # one task factors block 0; after that every diagonal block is factored by the update stage before
    # its panel (no one-task stage); updates have a task per lower block only (packed: no zero blocks);
    # the last stage computes the last panel block and diagonal factor while copying the others: L is
    # its output, not a stage of its own
    assert names == ["factor diagonal block 0", "panel", "trailing update 0 + factor diagonal block 1", "panel",
                     "trailing update 1 + factor diagonal block 2", "panel",
                     "trailing update 2 + factor diagonal block 3", "last panel and diagonal block 4, L assembled"]
    assert [n for _, n in stages] == [1, 4, 10, 3, 6, 2, 3, 25]


def test_cholesky_of_a_matrix_that_is_not_positive_definite_names_the_block():
    m = np.eye(12)
    m[9, 9] = -1.0                                                     # block (2, 2) of 3 x 3 blocks
    with pytest.raises(np.linalg.LinAlgError, match=r"not positive definite .*diagonal block \(2, 2\)"):
        la.cholesky(da.from_array(m, chunks=4), lower=True).compute()


def test_cholesky_of_complex_hermitian_and_float32_matches_numpy():
    rng = np.random.default_rng(5)
    m = rng.standard_normal((10, 10)) + 1j * rng.standard_normal((10, 10))
    h = m @ m.conj().T + 10 * np.eye(10)
    np.testing.assert_allclose(la.cholesky(da.from_array(h, chunks=3), lower=True).compute(),
                               np.linalg.cholesky(h), rtol=1e-10, atol=1e-12)
    f = (np.real(h)).astype(np.float32)
    got = la.cholesky(da.from_array(f, chunks=4), lower=True).compute()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.linalg.cholesky(f), rtol=1e-4, atol=1e-5)


def test_triangular_and_general_solves():
    rng = np.random.default_rng(3)
    m = rng.standard_normal((10, 10))
    lo = np.tril(m) + 5 * np.eye(10)
    b = rng.standard_normal((10, 4))
    spd = m @ m.T + 10 * np.eye(10)
    L, B, S, M = (da.from_array(v, chunks=c) for v, c in ((lo, 4), (b, (3, 3)), (spd, 3), (m, 4)))
    got = _one_job(la.solve_triangular(L, B, lower=True), la.solve_triangular(L.T, b[:, 0]),
                   la.solve(S, B, assume_a="pos"), la.solve(M, B), np.linalg.solve(M, b[:, 1]), la.inv(M),
                   np.linalg.inv(S))
    want = [np.linalg.solve(lo, b), np.linalg.solve(lo.T, b[:, 0]), np.linalg.solve(spd, b), np.linalg.solve(m, b),
            np.linalg.solve(m, b[:, 1]), np.linalg.inv(m), np.linalg.inv(spd)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-10)
    stages = _stages(la.solve_triangular(L, B, lower=True))
    assert sum("solve_triangular: block row" in label for label, _ in stages) == 3   # one stage per block row
    with pytest.raises(ArrayError, match="rows differ"):
        la.solve_triangular(L, da.ones((9, 2)))
    with pytest.raises(ArrayError, match="square"):
        la.cholesky(da.ones((4, 3)))


def test_lstsq_and_norm():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((40, 4))
    y = rng.standard_normal(40)
    X = da.from_array(x, chunks=(9, 2))
    sol, res, rank, s = la.lstsq(X, da.from_array(y, chunks=9))
    want = np.linalg.lstsq(x, y, rcond=None)
    norms = [(o, ax) for o in (None, "fro", 1, -1, np.inf, -np.inf, 2, "nuc") for ax in (None,)]
    vec = [(o, 0) for o in (None, 1, 2, np.inf, -np.inf, 0, 3)]
    lazy = [la.norm(X, o, axis=ax) for o, ax in norms + vec] + [np.linalg.norm(X, keepdims=True)]
    got = _one_job(sol, res, rank, s, *lazy)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-9)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-9)
    assert int(got[2]) == want[2]
    np.testing.assert_allclose(got[3], want[3], rtol=1e-9)
    for (o, ax), g in zip(norms + vec, got[4:]):
        np.testing.assert_allclose(g, np.linalg.norm(x, o, axis=ax), rtol=1e-9, err_msg=f"ord={o}, axis={ax}")
    np.testing.assert_allclose(got[-1], np.linalg.norm(x, keepdims=True), rtol=1e-12)


def test_linalg_stages_are_checked_against_the_memory_bound():
    X = da.zeros((2**20, 2048), chunks=(4096, 2048))      # per-block QRs fit; stacking 256 R factors does not
    with pytest.raises(ProjectedMemoryError, match="tsqr: QR of 256 stacked R factors in 1 tasks"):
        la.qr(X, split_every=256)[1].explain(max_task_memory=1024**3)
    la.qr(X, split_every=4)[1].explain(max_task_memory=1024**3)   # a tree of 4 per task fits
    big = da.eye(16384, chunks=8192)                       # 512 MiB blocks: a trailing update holds four
    with pytest.raises(ProjectedMemoryError, match="cholesky"):
        la.cholesky(big).explain(max_task_memory=2 * 1024**3)
    with pytest.raises(ArrayError, match="tall-skinny"):
        la.qr(da.ones((3, 5)))


@pytest.mark.parametrize("chunks", [(16, 6), (16, 2), (7, 4)])
def test_gram_product_reads_each_block_of_x_once_and_matches_numpy(chunks):
    x = np.random.default_rng(6).standard_normal((60, 6))
    X = da.from_array(x, chunks=chunks)
    gram, other = X.T @ X, X.T @ (X + 0)
    got = _one_job(gram, other)
    np.testing.assert_allclose(got[0], x.T @ x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1], x.T @ x, rtol=1e-12, atol=1e-12)

    def read_bytes(arr):
        return sum(s.read_bytes for s in planner.plan(arr.expr, config.resolve()).plan.stages
                   if "matmul" in (s.label or ""))
    if X.numblocks[1] == 1:   # one output block, on the diagonal: X.T's reads are X's own
        assert read_bytes(gram) * 2 == read_bytes(X.T @ da.from_array(x + 1, chunks=chunks))
    assert "gram" in gram.explain() and "gram" not in other.explain()


def test_qr_mode_r_plans_no_q():
    x = np.random.default_rng(7).standard_normal((64, 5))
    X = da.from_array(x, chunks=(16, 5))
    r = la.qr(X, mode="r")
    labels = [label for label, _ in _stages(r)]
    assert any("tsqr: R of each of 4 row blocks" in lab for lab in labels)
    assert not any("Q_i" in lab for lab in labels)
    np.testing.assert_allclose(abs(r.compute()), abs(np.linalg.qr(x, mode="r")), rtol=1e-10, atol=1e-12)
