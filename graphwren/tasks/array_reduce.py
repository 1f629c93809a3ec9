"""One level of an array reduction tree: fold a group of blocks into a partial, and finalize on the last level.

Partials of mean/var/std (and their nan forms) carry a leading axis of
moments (sum and count; count, mean and M2 merged by Chan et al.'s rule);
those of argmin/argmax carry (value, global index), ties going to the
smaller index as numpy's first-occurrence rule does, NaN winning as numpy's
argmin/argmax let it.
"""
from __future__ import annotations

import itertools
import math
import warnings

import numpy as np

from .array_kernels import Kernel, prefetched
from .blocks import chunk_offsets

_PLAIN = {"sum": np.sum, "prod": np.prod, "min": np.min, "max": np.max, "any": np.any, "all": np.all,
          "nansum": np.nansum, "nanprod": np.nanprod, "nanmin": np.nanmin, "nanmax": np.nanmax}
_WITH_DTYPE = ("sum", "prod", "nansum", "nanprod")
_COMBINE = {"sum": np.add, "prod": np.multiply, "nansum": np.add, "nanprod": np.multiply, "min": np.minimum,
            "max": np.maximum, "nanmin": np.fmin, "nanmax": np.fmax, "any": np.logical_or, "all": np.logical_and}


class KReduce(Kernel):
    """One reduction level: fold the group of input blocks, then finalize on the last level."""

    def __init__(self, k, how, axes, split, first, last, keepdims, ddof, dtype, in_numblocks, in_dtype,
                 in_chunks=None, partial_dtype=None):
        self.k, self.how, self.axes, self.split = k, how, tuple(axes), split
        self.first, self.last, self.keepdims, self.ddof = first, last, keepdims, ddof
        self.dtype, self.in_numblocks, self.in_dtype = np.dtype(dtype), in_numblocks, np.dtype(in_dtype)
        self.in_chunks = in_chunks            # first level of argmin/argmax: where each block starts
        self.partial_dtype = None if partial_dtype is None else np.dtype(partial_dtype)

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

    def _chunk(self, b, where):
        """A raw block (at block index ``where``) -> its partial."""
        ax, how = self.axes, self.how
        if how in _PLAIN:
            kw = {"dtype": self.dtype} if how in _WITH_DTYPE else {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN slices: NaN, as numpy gives
                out = _PLAIN[how](b, axis=ax, keepdims=True, **kw)
            return np.asarray(out).astype(self.dtype, copy=False)
        if how in ("argmin", "argmax"):
            return self._arg_chunk(b, where)
        nan = how.startswith("nan")
        wide = np.complex128 if b.dtype.kind == "c" else np.float64
        if nan:
            valid = ~np.isnan(b)
            n = np.sum(valid, axis=ax, keepdims=True).astype(wide)
            s = np.nansum(b, axis=ax, keepdims=True, dtype=wide)
        else:
            n = math.prod(b.shape[a] for a in ax)
            s = np.sum(b, axis=ax, keepdims=True, dtype=wide)
        if how in ("mean", "nanmean"):
            return np.stack([s, np.broadcast_to(n, s.shape).astype(wide)])
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(n == 0, 0, s / np.where(n == 0, 1, n))
        dev = np.abs(b - mean) ** 2
        m2 = (np.nansum(dev, axis=ax, keepdims=True, dtype=np.float64) if nan
              else np.sum(dev, axis=ax, keepdims=True, dtype=np.float64)).astype(wide)
        return np.stack([np.broadcast_to(n, s.shape).astype(wide), mean, m2])

    def _arg_chunk(self, b, where):
        """(value, global index) of the block's min/max along the reduced axes (flat C order over them)."""
        ax = self.axes
        keep = [d for d in range(b.ndim) if d not in ax]
        moved = np.transpose(b, keep + list(ax))
        flat = moved.reshape(moved.shape[:len(keep)] + (-1,))
        local = (np.argmin if self.how == "argmin" else np.argmax)(flat, axis=-1)
        value = np.take_along_axis(flat, local[..., None], axis=-1)[..., 0]
        sub = np.unravel_index(local, tuple(b.shape[a] for a in ax))
        offs = [chunk_offsets(self.in_chunks[a])[where[a]] for a in ax]
        full = tuple(self.in_chunks[a] for a in ax)
        gidx = np.ravel_multi_index(tuple(s + o for s, o in zip(sub, offs)), tuple(sum(c) for c in full))
        shape = list(b.shape)
        for a in ax:
            shape[a] = 1
        pd = self.partial_dtype
        return np.stack([value.astype(pd).reshape(shape), gidx.astype(pd).reshape(shape)])

    def _combine(self, acc, p):
        how = self.how
        if how in _COMBINE:
            _COMBINE[how](acc, p, out=acc)
        elif how in ("mean", "nanmean"):
            acc += p
        elif how in ("argmin", "argmax"):
            (va, ia), (vb, ib) = acc, p
            better = vb < va if how == "argmin" else vb > va
            nan_a, nan_b = np.isnan(va), np.isnan(vb)
            tie = ((vb == va) | (nan_a & nan_b)) & (ib < ia)
            take = np.where(nan_a, nan_b & (ib < ia), (better | nan_b | tie))
            acc = np.where(take[None], p, acc)
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
        with np.errstate(divide="ignore", invalid="ignore"):
            if how in ("mean", "nanmean"):
                out = acc[0] / acc[1]
            elif how in ("argmin", "argmax"):
                out = np.real(acc[1])
            elif how in ("var", "std", "nanvar", "nanstd"):
                n, _, m2 = acc
                out = np.real(m2) / np.maximum(np.real(n) - self.ddof, 0)
                if how.endswith("std"):
                    out = np.sqrt(out)
            else:
                out = acc
        out = np.asarray(out).astype(self.dtype, copy=False)
        if not self.keepdims:
            out = out.reshape(tuple(s for d, s in enumerate(out.shape) if d not in self.axes))
        return out

    def compute(self, env, idx):
        group = self._group(idx)
        thunks = [(lambda g=g: (g, self.k.compute(env, g))) for g in group]
        acc = None
        for g, blk in prefetched(thunks):
            p = self._chunk(blk, g) if self.first else blk
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
