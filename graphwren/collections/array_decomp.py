"""``gw.array.linalg``: blocked linear algebra planned as BSP stages (numpywren's DAGs on graphwren's stages).

* ``qr`` is TSQR (tall-skinny: one block of columns, each row block at least
  as tall as the array is wide): a stage of per-block QRs (one task per row
  block), a tree of stages that QR the stacked R factors (``split_every``
  per task, down to one task at the root), and a stage multiplying
  each block's Q by its pieces of the tree's Qs (``mode='r'``: R alone, no
  Q stage). Much parallelism early, few tasks late, as numpywren observed.
* ``svd`` is TSQR then the SVD of the small R (one task); ``svd_compressed``
  is the randomized range finder over TSQR.
* ``cholesky`` is right-looking and blocked, its kernels LAPACK/BLAS
  (``tasks/array_lapack.py``): one task factors diagonal block 0; then for
  each block column k a panel stage (one trsm task per block below the
  diagonal) and a trailing update stage with one task per lower block
  (syrk on the diagonal, gemm off it), whose first task also factors the
  next diagonal block; the last stage computes the last panel block and
  diagonal factor and copies the other blocks: it is L. The task counts
  shrink stage by stage, and ``explain()`` shows them.
* ``solve_triangular`` is blocked substitution: one stage per block row,
  one task per block column of the right-hand side.
* ``solve``/``inv`` use Cholesky for ``assume_a='pos'``; a general matrix is
  solved in one task (the memory bound refuses one that does not fit).
  ``lstsq`` goes through TSQR; ``norm`` through the reductions (and the SVD
  for ord 2/-2/'nuc').

Every stage's task holds a known number of blocks, so the memory bound is
checked for all of them at plan time.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..logical.array_blockgraph import BlockGraph
from ..tasks import array_lapack as lapack
from .array_base import Array, ArrayError, from_numpy
from .array_blockwise import blockwise, map_blocks, reads_only
from .array_linalg import matmul
from .array_shape import concatenate


def _as2d(a, what):
    a = a if isinstance(a, Array) else from_numpy(np.asarray(a))
    if a.ndim != 2:
        raise ArrayError(f"{what}: expected a 2-d array, got shape {a.shape}")
    return a


def _float_dtype(dtype):
    return np.linalg.qr(np.ones((1, 1), dtype=dtype))[0].dtype


def _graph(func, args, table, shape, chunks, dtype, held=2, label=""):
    return Array(BlockGraph(func, tuple(a.expr for a in args), tuple(table), tuple(shape),
                            tuple(tuple(c) for c in chunks), np.dtype(dtype), held, label))


# ----------------------------------------------------------------------------- TSQR


@reads_only
def _qr_stack(b):
    return lapack.qr_stack(b)


def _stack_r(n, idx, blocks):
    rs = [np.array(b[-n:], copy=True) for b in blocks]   # keep only each block's R: the Q part is dropped
    return lapack.qr_stack(np.concatenate(rs))


def _q_times(n, rows, split, idx, blocks):
    """Q of row block i: its own Q times its n x n piece of each level's Q, leaf to root."""
    it = iter(blocks)
    q = next(it)[:rows[idx[0]]]
    piece, pos = None, idx[0]
    for level in it:
        p = pos % split
        part = level[p * n:(p + 1) * n]
        piece = part if piece is None else piece @ part
        pos //= split
    return q @ piece


def tsqr(a, compute_svd=False, split_every=16, _want_q=True):
    """Q, R of a tall-skinny array (dask's tsqr): per-block QRs, a tree of stacked-R QRs (``split_every``
    factors per task, one task at the root), then each block's Q. ``_want_q=False``: (None, R), the
    per-block QRs computing R alone."""
    a = _as2d(a, "qr")
    m, n = a.shape
    if m < n or m == 0 or n == 0:
        raise ArrayError(f"qr: graphwren plans TSQR for tall-skinny arrays (rows >= columns > 0); got {a.shape}")
    dtype = _float_dtype(a.dtype)
    if a.numblocks[1] != 1:
        a = a.rechunk({1: -1})
    if min(a.chunks[0]) < n and a.numblocks[0] > 1:      # every block as tall as the array is wide
        edge = max(n, max(a.chunks[0]))
        rows = [edge] * (m // edge)
        if m % edge:
            if m % edge >= n:
                rows.append(m % edge)
            else:
                rows[-1] += m % edge
        a = a.rechunk((tuple(rows), (n,)))
    rows = a.chunks[0]
    nb = len(rows)
    if nb == 1:
        if not _want_q:
            return None, map_blocks(_r_only, a.astype(dtype), chunks=((n,), (n,)), dtype=dtype)
        s = map_blocks(_qr_stack, a.astype(dtype), chunks=((m + n,), (n,)), dtype=dtype)
        q, r = s[:m], s[m:]
    else:
        if not isinstance(split_every, numbers.Integral) or split_every < 2:
            raise ArrayError(f"qr: split_every must be an int >= 2, got {split_every!r}")
        q, r = _tsqr_stages(a, dtype, rows, n, m, nb, int(split_every), _want_q)
    if compute_svd:
        u, s, vt = _small_svd(r)
        return matmul(q, u), s, vt
    return q, r


def _qr_block(idx, blocks):
    return _qr_stack(next(iter(blocks)))


@reads_only
def _r_only(b):
    return lapack.qr_block(b, want_q=False)[1]


def _r_block(idx, blocks):
    return _r_only(next(iter(blocks)))


def _tsqr_stages(a, dtype, rows, n, m, nb, split, want_q=True):
    # block graphs, not blockwise ops: a stage's readers share its QRs instead of each redoing them
    if want_q:
        s1 = _graph(_qr_block, [a.astype(dtype)], [((0, (i, 0)),) for i in range(nb)], (sum(rows) + nb * n, n),
                    (tuple(r + n for r in rows), (n,)), dtype, held=1, label=f"tsqr: QR of each of {nb} row blocks")
    else:   # mode='r': each task keeps only its block's R (n x n), and the Q stage is never planned
        s1 = _graph(_r_block, [a.astype(dtype)], [((0, (i, 0)),) for i in range(nb)], (nb * n, n),
                    ((n,) * nb, (n,)), dtype, held=1, label=f"tsqr: R of each of {nb} row blocks")
    levels, cur, count = [], s1, nb
    while count > 1:   # a tree: each task QRs the stacked R factors of up to ``split`` blocks below it
        groups = [range(g * split, min(count, (g + 1) * split)) for g in range(-(-count // split))]
        sizes = tuple(len(g) * n + n for g in groups)
        cur = _graph(_Partial(_stack_r, n), [cur], [tuple((0, (i, 0)) for i in g) for g in groups],
                     (sum(sizes), n), (sizes, (n,)), dtype, held=1,
                     label=f"tsqr: QR of {count} stacked R factors in {len(groups)} tasks")
        levels.append(cur)
        count = len(groups)
    top = levels[-1]
    if not want_q:
        return None, top[top.shape[0] - n:]
    table = []
    for i in range(nb):
        reads, pos = [(0, (i, 0))], i
        for k in range(len(levels)):
            pos //= split
            reads.append((k + 1, (pos, 0)))
        table.append(tuple(reads))
    q = _graph(_Partial(_q_times, n, rows, split), [s1, *levels], table, (m, n), (rows, (n,)), dtype,
               held=len(levels) + 1, label=f"tsqr: Q_i times its pieces of {len(levels)} levels")
    return q, top[top.shape[0] - n:]


class _Partial:
    """A picklable partial whose name shows in stage labels."""

    def __init__(self, func, *args):
        self.func, self.args = func, args
        self.__qualname__ = func.__name__.strip("_")
        self.gw_reads_only = getattr(func, "gw_reads_only", False)

    def __call__(self, *more):
        return self.func(*self.args, *more)

    def __reduce__(self):
        return (_Partial, (self.func, *self.args))


def qr(a, mode="reduced", split_every=16):
    """numpy.linalg.qr (mode='reduced') through TSQR."""
    if mode not in ("reduced", "r"):
        raise NotImplementedError(f"qr: mode={mode!r} is not supported (use 'reduced' or 'r')")
    q, r = tsqr(a, split_every=split_every, _want_q=mode != "r")
    return r if mode == "r" else (q, r)


@reads_only
def _svd_part(k, b):
    return np.linalg.svd(b, full_matrices=False)[k]


def _small_svd(r):
    """u, s, vt of a one-block array (the R of a TSQR), each a one-task stage."""
    n = r.shape[1]
    r = r.rechunk(-1)
    dtype = r.dtype
    sdt = np.linalg.svd(np.ones((1, 1), dtype))[1].dtype
    u = map_blocks(_Partial(_svd_part, 0), r, chunks=((r.shape[0],), (min(r.shape),)), dtype=dtype)
    s = map_blocks(_Partial(_svd_part, 1), r, chunks=((min(r.shape),),), drop_axis=1, dtype=sdt)
    vt = map_blocks(_Partial(_svd_part, 2), r, chunks=((min(r.shape),), (n,)), dtype=dtype)
    return u, s, vt


def svd(a, coerce_signs=True):
    """Reduced SVD (u, s, vt) of a tall-skinny (or, transposed, short-fat) array, through TSQR."""
    a = _as2d(a, "svd")
    if a.shape[0] < a.shape[1]:
        u, s, vt = svd(a.T, coerce_signs)
        return vt.T, s, u.T
    return tsqr(a, compute_svd=True)


def svd_compressed(a, k, iterator="power", n_power_iter=0, n_oversamples=10, seed=None, compute=False,
                   coerce_signs=True):
    """dask's randomized SVD: the top k singular triplets from a range found by TSQR."""
    from .array_random import default_rng
    a = _as2d(a, "svd_compressed")
    m, n = a.shape
    width = min(k + n_oversamples, m, n)
    omega = default_rng(seed).standard_normal((n, width), chunks=(a.chunks[1], (width,)))
    y = matmul(a, omega)
    for _ in range(n_power_iter):
        q, _ = tsqr(y)
        y = matmul(a, matmul(a.T, q))
    q, _ = tsqr(y)
    b = matmul(q.T, a)                     # width x n: short and fat
    ub, s, vt = svd(b)
    u = matmul(q, ub.rechunk(-1))
    return u[:, :k], s[:k], vt[:k]


# ----------------------------------------------------------------------------- Cholesky


def _square(a, what):
    a = _as2d(a, what)
    if a.shape[0] != a.shape[1]:
        raise ArrayError(f"{what}: expected a square matrix, got shape {a.shape}")
    if a.chunks[0] != a.chunks[1]:
        a = a.rechunk((a.chunks[0], a.chunks[0]))
    return a


def cholesky(a, lower=False):
    """dask.array.linalg.cholesky: upper R with R^T R = a (``lower=True``: L with L L^T = a)."""
    a = _square(a, "cholesky")
    dtype = _float_dtype(a.dtype)
    c = a.chunks[0]
    nb = len(c)
    trail = a.astype(dtype)
    diag = _graph(lapack.potrf, [trail], [((0, (0, 0)),)], (c[0], c[0]), ((c[0],), (c[0],)), dtype, held=1,
                  label="cholesky: factor diagonal block 0")
    if nb == 1:
        return diag if lower else diag.T
    # Where each block lives: ``cur[i, j]`` is block (i, j) of the trailing matrix A^(k) and ``done[i, j]``
    # a finished block of L, each as (array, its block index).
    args: list = [trail, diag]
    cur = {(i, j): (0, (i, j)) for i in range(nb) for j in range(i + 1)}
    done = {(0, 0): (1, (0, 0))}

    def arg(x):
        args.append(x)
        return len(args) - 1

    for k in range(nb - 2):
        # panel k: L_ik = A_ik L_kk^-H, one task per block below the diagonal
        pan = _stage_of(lapack.panel, args, [(cur[i, k], done[k, k]) for i in range(k + 1, nb)],
                        (sum(c[k + 1:]), c[k]), (c[k + 1:], (c[k],)), dtype, 2, f"cholesky: panel {k}")
        p = arg(pan)
        for r, i in enumerate(range(k + 1, nb)):
            done[i, k] = (p, (r, 0))
        # trailing update k, packed (one task per lower block, none for the zeros above the diagonal);
        # its first task's block is the next diagonal block, which it also factors (the next panel's L_kk)
        pairs = [(k + 1, k + 1)] + [(i, j) for i in range(k + 1, nb) for j in range(k + 1, i + 1)
                                    if (i, j) != (k + 1, k + 1)]
        table = [(cur[i, j], done[i, k]) if i == j else (cur[i, j], done[i, k], done[j, k]) for i, j in pairs]
        width = max(c[k + 1:])
        upd = _stage_of(lapack.CholUpdate(pairs, c, width), args, table, (sum(c[i] for i, _ in pairs), width),
                        (tuple(c[i] for i, _ in pairs), (width,)), dtype, 3,
                        f"cholesky: trailing update {k} + factor diagonal block {k + 1}")
        u = arg(upd)
        for t, (i, j) in enumerate(pairs):
            cur[i, j] = (u, (t, 0))
        done[k + 1, k + 1] = (u, (0, 0))
    # the last stage is L itself: the last panel block and diagonal factor computed, the rest copied
    last = nb - 1
    table = []
    for i in range(nb):
        for j in range(nb):
            if j > i:
                table.append(())
            elif (i, j) == (last, last - 1):
                table.append((cur[i, j], done[last - 1, last - 1]))
            elif (i, j) == (last, last):
                table.append((cur[i, j], cur[last, last - 1], done[last - 1, last - 1]))
            else:
                table.append((done[i, j],))
    low = _stage_of(lapack.CholLast(c), args, table, a.shape, a.chunks, dtype, 3,
                    f"cholesky: last panel and diagonal block {last}, L assembled")
    return low if lower else low.T


def _stage_of(func, args, table, shape, chunks, dtype, held, label):
    """A block graph over only the arrays ``table`` reads (its entries renumbered), so no stage waits on
    an input it does not read."""
    used = sorted({a for row in table for a, _ in row})
    renum = {a: n for n, a in enumerate(used)}
    table = [tuple((renum[a], j) for a, j in row) for row in table]
    return _graph(func, [args[a] for a in used], table, shape, chunks, dtype, held=held, label=label)


# ----------------------------------------------------------------------------- triangular and general solves


class _Substitute:
    """One block of a blocked substitution: (B_ij - sum_k T_ik X_kj) solved by the diagonal block T_ii."""

    __qualname__ = "solve_triangular_block"

    def __call__(self, idx, blocks):
        it = iter(blocks)
        acc = np.array(next(it), copy=True)
        pending = None
        for blk in it:
            if pending is None:
                pending = blk
            else:
                acc -= pending @ blk
                pending = None
        return np.linalg.solve(pending, acc)   # the last block read is the diagonal one


def solve_triangular(a, b, lower=False):
    """dask.array.linalg.solve_triangular: one stage per block row of ``a``, one task per block column of ``b``."""
    a = _square(a, "solve_triangular")
    b = b if isinstance(b, Array) else from_numpy(np.asarray(b))
    vector = b.ndim == 1
    if vector:
        b = b[:, None]
    if b.ndim != 2 or b.shape[0] != a.shape[0]:
        raise ArrayError(f"solve_triangular: a is {a.shape} and b is {b.shape}: their rows differ")
    dtype = np.result_type(_float_dtype(a.dtype), b.dtype)
    b = b.rechunk((a.chunks[0], b.chunks[1]))
    c, nb, ncb = a.chunks[0], a.numblocks[0], b.numblocks[1]
    order = range(nb) if lower else reversed(range(nb))
    rows = {}
    for i in order:
        done = [k for k in rows]                       # block rows already solved
        args = [b, a] + [rows[k] for k in done]
        table = []
        for j in range(ncb):
            reads = [(0, (i, j))]
            for n, k in enumerate(done):
                reads += [(1, (i, k)), (2 + n, (0, j))]
            reads.append((1, (i, i)))
            table.append(tuple(reads))
        rows[i] = _graph(_Substitute(), args, table, (c[i], b.shape[1]), ((c[i],), b.chunks[1]), dtype, held=3,
                         label=f"solve_triangular: block row {i}")
    x = concatenate([rows[i] for i in range(nb)], axis=0)
    return x[:, 0] if vector else x


@reads_only
def _solve_one(a, b):
    return np.linalg.solve(a, b)


def solve(a, b, sym_pos=None, assume_a="gen"):
    """x with a x = b. ``assume_a='pos'``: Cholesky and two blocked triangular solves; 'gen': one task."""
    a = _square(a, "solve")
    b = b if isinstance(b, Array) else from_numpy(np.asarray(b))
    if sym_pos:
        assume_a = "pos"
    if assume_a == "pos":
        low = cholesky(a, lower=True)
        return solve_triangular(low.T, solve_triangular(low, b, lower=True), lower=False)
    if assume_a != "gen":
        raise NotImplementedError(f"solve: assume_a={assume_a!r} is not supported ('gen' or 'pos')")
    if b.ndim not in (1, 2) or b.shape[0] != a.shape[0]:
        raise ArrayError(f"solve: a is {a.shape} and b is {b.shape}: their rows differ")
    dtype = np.result_type(_float_dtype(a.dtype), b.dtype)
    one_a = a.rechunk(-1)                 # one task holds all of a: the memory bound says whether it fits
    bb = (b if b.ndim == 2 else b[:, None]).rechunk({0: -1})
    x = blockwise(_solve_one, "ik", one_a, "ij", bb, "jk", concatenate=True, dtype=dtype)
    return x if b.ndim == 2 else x[:, 0]


def inv(a):
    """numpy.linalg.inv (solve against the identity)."""
    from .array_create import eye
    a = _square(a, "inv")
    return solve(a, eye(a.shape[0], chunks=(a.chunks[0], a.chunks[0]), dtype=_float_dtype(a.dtype)))


def lstsq(a, b, rcond=None):
    """numpy.linalg.lstsq for tall-skinny a through TSQR: (x, residuals, rank, s), each lazy."""
    a = _as2d(a, "lstsq")
    b = b if isinstance(b, Array) else from_numpy(np.asarray(b))
    if b.shape[0] != a.shape[0]:
        raise ArrayError(f"lstsq: a is {a.shape} and b is {b.shape}: their rows differ")
    q, r = tsqr(a)
    qtb = matmul(q.T, b)
    x = solve_triangular(r.rechunk(-1), qtb.rechunk({0: -1}), lower=False)
    resid = ((b - matmul(a, x)) ** 2).sum(axis=0)
    s = _small_svd(r)[1]
    tol = s.max() * max(a.shape) * np.finfo(s.dtype).eps if rcond is None else s.max() * rcond
    rank = (s > tol).sum()
    return x, resid, rank, s


def norm(x, ord=None, axis=None, keepdims=False):
    """numpy.linalg.norm: vector norms and the matrix norms 'fro', 1, -1, inf, -inf (2, -2, 'nuc' via svd)."""
    x = x if isinstance(x, Array) else from_numpy(np.asarray(x))
    if axis is None and ord is None:
        out = abs(x) ** 2 if x.dtype.kind == "c" else x * x
        out = out.sum() ** 0.5
        return out.reshape((1,) * x.ndim) if keepdims else out
    if axis is None:
        axis = tuple(range(x.ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    ax = abs(x)
    if len(axes) == 1:
        if ord is None or ord == 2:
            return ((ax * ax).sum(axis=axes, keepdims=keepdims)) ** 0.5
        if ord == np.inf:
            return ax.max(axis=axes, keepdims=keepdims)
        if ord == -np.inf:
            return ax.min(axis=axes, keepdims=keepdims)
        if ord == 0:
            return (x != 0).astype(x.real.dtype if x.dtype.kind == "c" else np.float64).sum(
                axis=axes, keepdims=keepdims)
        if isinstance(ord, str):
            raise ValueError(f"norm: invalid norm order {ord!r} for vectors")
        return ((ax ** ord).sum(axis=axes, keepdims=keepdims)) ** (1.0 / ord)
    if len(axes) != 2:
        raise ValueError("norm: improper number of dimensions to norm")
    r0, r1 = (a % x.ndim for a in axes)
    if ord in (None, "fro"):
        return ((ax * ax).sum(axis=axes, keepdims=keepdims)) ** 0.5
    if ord in (1, -1):
        col = ax.sum(axis=r0, keepdims=True)
        out = col.max(axis=r1, keepdims=True) if ord == 1 else col.min(axis=r1, keepdims=True)
    elif ord in (np.inf, -np.inf):
        row = ax.sum(axis=r1, keepdims=True)
        out = row.max(axis=r0, keepdims=True) if ord == np.inf else row.min(axis=r0, keepdims=True)
    elif ord in (2, -2, "nuc"):
        if x.ndim != 2:
            raise NotImplementedError("norm: ord 2, -2 and 'nuc' are supported for 2-d arrays")
        s = svd(x)[1]
        val = s.max() if ord == 2 else s.min() if ord == -2 else s.sum()
        return val.reshape((1, 1)) if keepdims else val
    else:
        raise ValueError(f"norm: invalid norm order {ord!r} for matrices")
    if keepdims:
        return out
    return out.reshape(tuple(s for d, s in enumerate(out.shape) if d not in (r0, r1)))


__all__ = ["tsqr", "qr", "svd", "svd_compressed", "cholesky", "solve_triangular", "solve", "inv", "lstsq",
           "norm"]
