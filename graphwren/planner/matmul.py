"""Blocked matmul planning: C[i,j] = sum_k A[i,k] B[k,j].

Two physical strategies:

``stream``
    One task per output block. It streams over k, multiplying A[i,k] @ B[k,j]
    while the next pair is being read, and accumulates in place. No
    intermediate writes; the right choice whenever the output grid has at
    least as many blocks as there are workers.
``k-split``
    When the output grid is smaller than the worker count (I*J < workers),
    the k range is cut into ``s`` splits: a stage of s*I*J tasks computes
    partial products, and a reduction stage sums the s partials of each block.

The projected per-task peak memory (blocks held at once, the accumulator, the
product temporary, the prefetched pair and the encoded output) must fit in
``max_task_memory``; if even one block product cannot, planning fails with a
suggested chunking.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ArrayError
from ..logical.array import MatMul, MatMulSplit, ReduceLevel
from ..logical.rewrite import rewrite
from ..runtime.backends import planned_workers
from . import memory

def suggest_chunk(bound: int, itemsize: int) -> int:
    """The largest square block edge (a multiple of 256 where possible) whose matmul task fits."""
    c = int(math.sqrt(max(bound - memory.RUNTIME_OVERHEAD, 1) / (6 * itemsize)))
    return max(1, c - c % 256) if c >= 256 else max(1, c)


def matmul_peak(a, b) -> int:
    """Bytes one streaming task of a @ b holds at its peak (the memory model's matmul term)."""
    bm, bk, bn = max(a.chunks[0]), max(a.chunks[1]), max(b.chunks[1])
    out = bm * bn * np.result_type(a.dtype, b.dtype).itemsize
    return memory.array_task(memory.matmul_blocks(out, bm * bk * a.dtype.itemsize, bk * bn * b.dtype.itemsize))


def plan_matmul(a, b, workers: int, bound: int, where: str = "matmul"):
    """The physical expression for a @ b: MatMul(stream) or ReduceLevel(MatMulSplit)."""
    from .explain import human_bytes
    I, K, J = a.numblocks[0], a.numblocks[1], b.numblocks[1]
    peak = matmul_peak(a, b)
    if peak > bound:
        dtype = np.result_type(a.dtype, b.dtype)
        c = suggest_chunk(bound, max(dtype.itemsize, a.dtype.itemsize, b.dtype.itemsize))
        raise ArrayError(
            f"{where}: one task multiplying a {max(a.chunks[0])}x{max(a.chunks[1])} block of A by a "
            f"{max(b.chunks[0])}x{max(b.chunks[1])} block of B would need ~{human_bytes(peak)}, over "
            f"max_task_memory={human_bytes(bound)}; rechunk the operands to smaller blocks, e.g. "
            f".rechunk(({c}, {c})), or raise max_task_memory")
    if I * J >= workers or K == 1:
        return MatMul(a, b, "stream")
    nsplit = min(K, -(-workers // (I * J)))
    base, extra = divmod(K, nsplit)
    ranges, k0 = [], 0
    for s in range(nsplit):
        k1 = k0 + base + (1 if s < extra else 0)
        ranges.append((k0, k1))
        k0 = k1
    partial = MatMulSplit(a, b, tuple(ranges))
    dtype = np.result_type(a.dtype, b.dtype)
    return ReduceLevel(partial, "sum", (0,), (nsplit,), True, True, False, 0, dtype)


def choose_matmul_strategy(node, settings: dict):
    """A logical MatMul gets its strategy from the grid, the workers and the memory bound."""
    if not isinstance(node, MatMul) or node.strategy is not None:
        return node
    return plan_matmul(node.a, node.b, planned_workers(settings), memory.bound(settings),
                       f"matmul of {node.a.shape} @ {node.b.shape}")


def choose_matmul_strategies(expr, settings: dict):
    """Every logical MatMul in ``expr`` given its physical strategy (physical planning, after optimize)."""
    return rewrite(expr, [choose_matmul_strategy], settings)
