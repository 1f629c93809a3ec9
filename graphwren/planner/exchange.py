"""A two-level exchange for a shuffle whose M x R pieces would cost too many object-store GETs.

A shuffle of M map tasks into R reducers reads M x R ranged pieces; on S3,
which serves about 5,500 GETs per second per prefix, 1,000 x 1,000 pieces
are three minutes of requests. Lambada's and dask's ``max_branch`` answer
is to exchange in two levels: G groups of map tasks and H runs of adjacent
buckets make G x H merge tasks; merge (g, h) reads run h of every map task
in group g, one ranged GET each (the run's buckets lie back to back in the
map task's object), and writes them as one object; reducer r then reads its
bucket from the G merges of its run. The GETs fall from M x R to
M x H + R x G (about 2 M sqrt(M) for M = R) for one more pass over the
bytes, so it is chosen only where requests, not bytes, are the bottleneck:
an S3 exchange whose direct GETs would take over ``TWO_LEVEL_SECONDS`` at
S3's rate even spread over as many prefixes as there are map outputs (up to
256, ``requests.spread``), and that the second level cuts at least
``MIN_SAVING`` times. Spread, a direct 1,000 x 1,000 shuffle's million GETs
take under a second of S3's rate: ``bench/sort_model.py`` predicts it 54 s
faster than the two levels' extra pass over a terabyte.
"""
from __future__ import annotations

import dataclasses
import math

from ..logical import offline
from ..runtime.plan import CUSTOM, Edge, Stage
from ..tasks.exchange import MergeRuns
from . import memory
from ..runtime.records import MAX_PREFIXES
from .requests import S3_GET_PER_S

#: Seconds of direct GETs at S3's per-prefix rate over which a shuffle on S3 goes two-level.
TWO_LEVEL_SECONDS = 10.0
#: The two levels must cut the GETs at least this many times to be worth a second pass over the bytes.
MIN_SAVING = 4


@dataclasses.dataclass(frozen=True)
class Layout:
    """G groups of map tasks times H runs of buckets: the merge tasks of a two-level exchange."""

    maps: int
    reducers: int
    groups: int
    runs: int

    @property
    def direct_gets(self) -> int:
        return self.maps * self.reducers

    @property
    def gets(self) -> int:
        return self.maps * self.runs + self.reducers * self.groups

    def map_group(self, g: int) -> range:
        return range(g * self.maps // self.groups, (g + 1) * self.maps // self.groups)

    def run(self, h: int) -> tuple[int, int]:
        return h * self.reducers // self.runs, (h + 1) * self.reducers // self.runs

    @property
    def width(self) -> int:
        return max(hi - lo for lo, hi in map(self.run, range(self.runs)))


def choose(maps, reducers, store_url: str, levels: str = "auto") -> Layout | None:
    """The two-level layout for this shuffle, or None when a direct exchange is the better one.

    ``levels`` is the ``exchange_levels`` setting: "1" never, "2" whenever
    both sides have several tasks, "auto" as the module docstring says.
    """
    if levels == "1" or offline.is_unknown(maps) or offline.is_unknown(reducers) or min(maps, reducers) < 2:
        return None
    layout = Layout(maps, reducers, math.isqrt(maps - 1) + 1, math.isqrt(reducers - 1) + 1)
    if levels == "2":
        return layout
    spread = min(maps, MAX_PREFIXES)   # the prefixes the direct exchange's outputs may spread over
    if not store_url.startswith("s3://") or maps * reducers / (S3_GET_PER_S * spread) <= TWO_LEVEL_SECONDS:
        return None
    return layout if layout.gets * MIN_SAVING <= layout.direct_gets else None


def merge_stage(name: str, source: str, layout: Layout, storage: str | None, shuffled_bytes: int | None) -> Stage:
    """The merge tasks: task g * H + h reads run h of every map task in group g."""
    table = [[(j, layout.run(h)) for j in layout.map_group(g)]
             for g in range(layout.groups) for h in range(layout.runs)]
    ntasks = layout.groups * layout.runs
    share = None if shuffled_bytes is None else -(-shuffled_bytes // ntasks)
    return Stage(name, ntasks, MergeRuns(layout.width), [Edge(source, CUSTOM, table)], nbuckets=layout.width,
                 storage=storage, label=(f"two-level exchange: {layout.groups} groups of map tasks x "
                                         f"{layout.runs} runs of buckets ({layout.direct_gets:,} direct GETs "
                                         f"-> {layout.gets:,})"),
                 peak_memory=memory.bag_task(share), estimated_bytes=shuffled_bytes)


def reducer_edge(merge: str, layout: Layout) -> Edge:
    """Reducer r reads its bucket of the G merges of the run holding it, in group order."""
    table = []
    for h in range(layout.runs):
        lo, hi = layout.run(h)
        table += [[(g * layout.runs + h, r - lo) for g in range(layout.groups)] for r in range(lo, hi)]
    return Edge(merge, CUSTOM, table)
