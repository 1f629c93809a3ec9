"""Edges whose pieces are neither one-to-one nor all-to-all: their per-task tables (runtime CUSTOM edges)."""
from __future__ import annotations

from ..runtime.plan import BROADCAST, CUSTOM, ONE_TO_ONE, Edge


def grouped(source: str, n_up: int, n_down: int) -> Edge:
    """Downstream task j reads upstream tasks [j*n_up//n_down, (j+1)*n_up//n_down) whole."""
    return Edge(source, CUSTOM, [[(i, None) for i in range(j * n_up // n_down, (j + 1) * n_up // n_down)]
                                 for j in range(n_down)])


def split(source: str, owner: list[int]) -> Edge:
    """Downstream task j reads bucket j of upstream task owner[j], the one that cut it."""
    return Edge(source, CUSTOM, [[(owner[j], j)] for j in range(len(owner))])


def from_table(source: str, table: list[list[tuple]], n_up: int) -> Edge:
    """The simplest edge that reads ``table[j]`` (whole upstream outputs) in task j."""
    n_down = len(table)
    if n_up == n_down and all(row == [(t, None)] for t, row in enumerate(table)):
        return Edge(source, ONE_TO_ONE)
    if n_down > 1 and all(len(row) == n_up for row in table):
        return Edge(source, BROADCAST)
    return Edge(source, CUSTOM, table)
