"""LAPACK and BLAS block kernels (through scipy) for Cholesky and TSQR: the flops numpy.linalg does, no more.

Blocks arrive in C order; each kernel hands LAPACK the Fortran-order view of
the transposed block (no copy) and reads the answer back the same way:

* ``potrf`` of the view's upper triangle gives U with U^H U = A^T, and U^T
  (C order) is L with L L^H = A;
* a panel block L_ik = A_ik L_kk^-H is, transposed, a left ``trsm`` with
  U_kk (``L_kk``'s Fortran view) conjugate-transposed;
* diagonal updates are ``syrk``/``herk`` (half a gemm's flops, one triangle
  written), off-diagonal ones a ``gemm`` into a copy of the block.

An input block may be a read-only buffer decoded from storage, which f2py
would write into anyway: every kernel copies what it overwrites first.

TSQR's per-block QR is ``geqrt`` (compact-WY blocked Householder, level 3
in the panel) and its Q from ``gemqrt`` applied to [I; 0]: measured 4-5x
faster than numpy.linalg.qr's ``geqrf``/``orgqr`` on 65536 x 128 blocks on
one core (the panel of ``geqrf`` is level 2 over the whole height).
"""
from __future__ import annotations

import numpy as np

#: the column block size geqrt factors at (64 measured fastest on 128-wide blocks; 32 and 128 slower)
QR_BLOCK = 64


def _blas(names, x):
    from scipy.linalg import get_blas_funcs
    return get_blas_funcs(names, (x,))


def _lapack(names, x):
    from scipy.linalg import get_lapack_funcs
    return get_lapack_funcs(names, (x,))


def _potrf_lower(a, where, own=False):
    """L (C order, zeros above the diagonal) of the block whose lower triangle holds a Hermitian positive
    definite matrix; ``own``: ``a`` is this kernel's copy and may be overwritten."""
    (potrf,) = _lapack(("potrf",), a)
    u, info = potrf(a.T, lower=0, clean=1, overwrite_a=1 if own else 0)
    if info > 0:
        raise np.linalg.LinAlgError(f"cholesky: the matrix is not positive definite (the leading minor of order "
                                    f"{info} of {where} is not positive)")
    if info < 0:
        raise ValueError(f"cholesky: potrf rejected argument {-info} factoring {where}")
    return u.T


def potrf(idx, blocks):
    """Block kernel: the Cholesky factor of the one (diagonal) block read."""
    (a,) = blocks
    return _potrf_lower(a, f"diagonal block {tuple(idx)}")


def _trsm(lkk, t):
    """A_ik L_kk^-H for the panel block ``t``: L_ik^T = conj(L_kk)^-1 A_ik^T, a left trsm with U_kk = L_kk^T."""
    (trsm,) = _blas(("trsm",), t)
    return trsm(1.0, lkk.T, t.T, side=0, lower=0, trans_a=2).T


def _herk_update(t, p):
    """A_ii - P P^H into a copy of ``t``, lower triangle only (syrk/herk: half a gemm)."""
    c = np.array(t.T, order="F", copy=True)           # our copy: BLAS writes it in place
    if np.iscomplexobj(c):
        (herk,) = _blas(("herk",), c)
        return herk(-1.0, p.T, beta=1.0, c=c, trans=2, lower=0, overwrite_c=1).T
    (syrk,) = _blas(("syrk",), c)
    return syrk(-1.0, p.T, beta=1.0, c=c, trans=1, lower=0, overwrite_c=1).T


def _gemm_update(t, pi, pj):
    """A_ij - P_i P_j^H into a copy of ``t`` (transposed: A_ij^T - conj(P_j) P_i^T)."""
    c = np.array(t.T, order="F", copy=True)
    (gemm,) = _blas(("gemm",), c)
    return gemm(-1.0, pj.T, pi.T, beta=1.0, c=c, trans_a=2, overwrite_c=1).T


def _trim(x, rows, cols):
    """The true rows x cols of a block that a packed stage padded on the right (a view; no-op if unpadded)."""
    return x if x.shape == (rows, cols) else x[:rows, :cols]


def panel(idx, blocks):
    """Block kernel: L_ik from A_ik and L_kk (read in that order; A_ik may be padded)."""
    t, lkk = blocks
    n = lkk.shape[0]
    return _trsm(_trim(lkk, n, n), _trim(t, t.shape[0], n))


def _pad(x, width):
    if x.shape[1] == width:
        return x
    out = np.zeros((x.shape[0], width), dtype=x.dtype)
    out[:, :x.shape[1]] = x
    return out


class CholUpdate:
    """Block kernel of trailing update k: A_ij - L_ik L_jk^H (syrk on the diagonal, gemm off it), lower blocks only.

    The stage is *packed*: its task t computes block ``pairs[t]`` = (i, j)
    of the lower triangle, as a block ``width`` wide (zero-padded where
    c[j] is narrower), so no task exists for a zero block above the
    diagonal. Its first pair is the next diagonal block, which that task
    also factors (potrf), so the next panel reads L_kk directly instead of
    waiting on a one-task stage.
    """

    __qualname__ = "cholesky_update"

    def __init__(self, pairs, sizes, width):
        self.pairs, self.sizes, self.width = tuple(pairs), tuple(sizes), width

    def __call__(self, idx, blocks):
        i, j = self.pairs[idx[0]]
        ci, cj = self.sizes[i], self.sizes[j]
        got = list(blocks)
        if i == j:
            t, p = got
            c = _herk_update(_trim(t, ci, cj), p)
            if idx[0] == 0:
                c = _potrf_lower(c, f"diagonal block {(i, i)}", own=True)
            return _pad(c, self.width)
        t, pi, pj = got
        return _pad(_gemm_update(_trim(t, ci, cj), pi, pj), self.width)


class CholLast:
    """Block kernel of Cholesky's last stage, which is also the output: it computes the last panel block and
    the last diagonal factor, and copies every other block of L from the stage that made it.

    Reads per block: nothing (above the diagonal: zeros); one block (a copy);
    (A_ik, L_kk) for the last panel block; (A_ii, A_ik, L_kk) for the last
    diagonal block, whose task solves its own panel block again (a trsm on
    one core while the other worker copies blocks) rather than waiting for
    a stage of its own.
    """

    __qualname__ = "cholesky_last"

    def __init__(self, sizes):
        self.sizes = tuple(sizes)

    def __call__(self, idx, blocks):
        got = list(blocks)
        if not got:
            return None
        i, j = idx
        c = self.sizes
        last = len(c) - 1
        if len(got) == 1:
            return _trim(got[0], c[i], c[j])
        if (i, j) == (last, last - 1):
            t, lkk = got
            return _trsm(_trim(lkk, c[j], c[j]), _trim(t, c[i], c[j]))
        t, a_ik, lkk = got
        p = _trsm(_trim(lkk, c[last - 1], c[last - 1]), _trim(a_ik, c[last], c[last - 1]))
        return _potrf_lower(_herk_update(_trim(t, c[i], c[i]), p), f"diagonal block {(last, last)}", own=True)


# ----------------------------------------------------------------------------- TSQR


def qr_block(b, want_q: bool = True):
    """(Q, R) of one tall block (or R alone), through geqrt and gemqrt."""
    m, n = b.shape
    geqrt, gemqrt = _lapack(("geqrt", "gemqrt"), b)
    v, t, info = geqrt(max(1, min(QR_BLOCK, m, n)), b, overwrite_a=0)
    if info != 0:
        raise ValueError(f"qr: geqrt rejected argument {-info} of a {m} x {n} block")
    r = np.triu(v[:n])
    if not want_q:
        return None, r
    eye = np.zeros((m, n), dtype=v.dtype, order="F")
    eye[np.arange(n), np.arange(n)] = 1
    q, info = gemqrt(v, t, eye, overwrite_c=1)
    if info != 0:
        raise ValueError(f"qr: gemqrt rejected argument {-info} of a {m} x {n} block")
    return q, r


def qr_stack(b):
    """[Q; R] of one block, stacked (the layout TSQR's stages pass on)."""
    q, r = qr_block(b)
    return np.concatenate([q, r])
