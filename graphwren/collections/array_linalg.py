"""matmul, dot and tensordot: 2-d products through the streaming blocked matmul, others as blockwise einsums."""
from __future__ import annotations

import numbers
import operator

import numpy as np

from ..logical.array import MatMul, check_numeric
from .array_base import Array, ArrayError, elemwise, from_numpy
from .array_blockwise import batched_matmul, tensordot_nd


def matmul(a, b) -> Array:
    a = a if isinstance(a, Array) else from_numpy(np.asarray(a), chunks=-1)
    b = b if isinstance(b, Array) else from_numpy(np.asarray(b), chunks=-1)
    for x, side in ((a, "left"), (b, "right")):
        check_numeric(x.dtype, f"matmul ({side} operand {x.name})")
        if x.ndim == 0:
            raise ArrayError(f"matmul: the {side} operand {x.name} is 0-d; matmul needs at least 1-d operands "
                             "(use * for scalars)")
    if a.ndim > 2 or b.ndim > 2:
        return batched_matmul(a, b)
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
    if a_nd <= 2 and b_nd <= 2:
        return matmul(a, b)
    # numpy: the last axis of a against the second-to-last of b (its only one when 1-d), no broadcasting
    return tensordot_nd(a, b, ([a_nd - 1], [max(b_nd - 2, 0)]))


def tensordot(a, b, axes=2) -> Array:
    """numpy.tensordot: 2-d pairs through the streaming matmul, any other dimensions as an einsum."""
    if not isinstance(a, Array):
        a = from_numpy(np.asarray(a), chunks=-1)
    if not isinstance(b, Array):
        b = from_numpy(np.asarray(b), chunks=-1)
    if a.ndim != 2 or b.ndim != 2 or axes == 0 or axes == ([], []):
        return tensordot_nd(a, b, axes)
    if isinstance(axes, numbers.Integral):
        ax_a, ax_b = list(range(2 - axes, 2)), list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, numbers.Integral) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, numbers.Integral) else list(ax_b)
    ax_a, ax_b = [x % 2 for x in ax_a], [x % 2 for x in ax_b]
    if len(ax_a) != len(ax_b):
        raise ArrayError(f"tensordot: axes {axes} pair up unequal numbers of dimensions")
    if len(ax_a) == 2:
        bb = b if ax_b == [0, 1] and ax_a == [0, 1] or ax_b == [1, 0] and ax_a == [1, 0] else b.T
        return (a * bb).sum()
    left = a if ax_a[0] == 1 else a.T
    right = b if ax_b[0] == 0 else b.T
    return matmul(left, right)


__all__ = ["matmul", "dot", "tensordot"]
