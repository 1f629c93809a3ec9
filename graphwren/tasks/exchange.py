"""The merge step of a two-level exchange: runs of buckets from a group of map tasks, merged into one object."""
from __future__ import annotations


class MergeRuns:
    """Stage function: read a run of adjacent buckets from each map task of a group; one bucket per run position.

    Task t's input pieces are ``(map task, (lo, hi))`` with the same run for
    every map task of its group, each fetched with one ranged read; bucket
    i of its output is bucket lo + i of every map task, in map-task order
    (so a reducer reading the merges in group order sees the map tasks'
    records in their planned order). Runs narrower than ``width`` leave the
    last buckets empty.
    """

    def __init__(self, width: int):
        self.width = width

    def __call__(self, ctx) -> list:
        slots: list[list] = [[] for _ in range(self.width)]
        for parts in ctx.input(0):   # one run of partitions per map task of the group
            for i, part in enumerate(parts):
                slots[i].append(part)
        return [_concat(parts) for parts in slots]


def _concat(parts: list):
    """Partitions of one bucket as one: Arrow tables (a columnar sort's buckets) stay a table."""
    if parts and all(type(p).__name__ == "Table" and hasattr(p, "schema") for p in parts):
        import pyarrow as pa   # only the columnar path gets here: its stages already import pyarrow
        return pa.concat_tables(parts, promote_options="permissive")
    from .pair_tables import records   # pair tables beside Python pairs: all as pairs
    out: list = []
    for part in parts:
        out.extend(records(part))
    return out
