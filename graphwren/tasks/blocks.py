"""Block arithmetic shared by the array planner and the kernels: offsets, indices, store keys."""
from __future__ import annotations


HEADER_KEY = "_array.json"


def block_key(idx) -> str:
    return "block/" + (".".join(map(str, idx)) if len(idx) else "0")


def ravel(idx, numblocks) -> int:
    t = 0
    for i, n in zip(idx, numblocks):
        t = t * n + i
    return t


def unravel(t: int, numblocks) -> tuple:
    out = []
    for n in reversed(numblocks):
        t, i = divmod(t, n)
        out.append(i)
    return tuple(reversed(out))


def chunk_offsets(dim_chunks: tuple[int, ...]) -> list[int]:
    out = [0]
    for c in dim_chunks:
        out.append(out[-1] + c)
    return out


def block_shape(chunks, idx) -> tuple[int, ...]:
    return tuple(c[i] for c, i in zip(chunks, idx))
