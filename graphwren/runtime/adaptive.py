"""Adaptive execution at a stage boundary: a shuffle's reducers re-planned from its measured buckets.

Spark's adaptive query execution is the model. The planner sizes a hash
shuffle's reducers from projected bytes, an upper bound made before
anything ran; once the map stage has committed, its commit records say how
big each bucket really is. Before a stage the planner marked adaptive
(``Stage.adaptive``) starts, the driver sums each bucket over the map tasks
and coalesces ADJACENT buckets into one reducer up to the target size
(``coalesce``); a shuffle smaller than the target becomes one reducer, a
gather. The stage's hash-shuffle edges become CUSTOM edges whose task i
reads, bucket after bucket, each bucket of its group from every map task,
so its output is the planned reducers' outputs concatenated in order.

Splitting a skewed bucket over several reducers is not done: every reducer
a bag lowers to today (a combine, a group, a distinct, a join) needs all of
one key's records in one task, and a bucket holds whole keys.
"""
from __future__ import annotations

import dataclasses
import statistics

from .plan import CUSTOM, HASH_SHUFFLE, Edge, Stage

#: A bucket this many times the median (and over the target) is skewed: reported, not split.
SKEW_FACTOR = 5


@dataclasses.dataclass
class Decision:
    """What the driver did to one adaptive stage before starting it, from the buckets it measured."""

    stage: str
    planned: int                      # tasks the planner gave the stage
    bucket_bytes: list[int]           # measured bytes of each planned bucket, summed over map tasks
    groups: list[list[int]]           # the buckets each task reads now, in order
    target_bytes: int

    @property
    def ran(self) -> int:
        return len(self.groups)

    @property
    def skewed(self) -> list[int]:
        """Buckets over the target and SKEW_FACTOR times the median: one task each, not split (see above)."""
        median = statistics.median(self.bucket_bytes) if self.bucket_bytes else 0
        return [b for b, s in enumerate(self.bucket_bytes) if s > self.target_bytes and s > SKEW_FACTOR * median]

    def describe(self) -> str:
        """``planned 16 tasks, ran 2 (16 buckets of ~40 KiB coalesced to 2 of ~320 KiB, target 64.0 MiB)``."""
        text = self._what()
        skewed = self.skewed
        if skewed:
            big = max(self.bucket_bytes[b] for b in skewed)
            text += (f"; skewed bucket{'s' if len(skewed) > 1 else ''} {', '.join(map(str, skewed[:5]))}"
                     f"{' ...' if len(skewed) > 5 else ''} (up to {_human(big)}) kept whole: "
                     f"a bucket holds whole keys and its reducer needs them together")
        return text

    def _what(self) -> str:
        total = sum(self.bucket_bytes)
        head = f"planned {self.planned} task{'s' if self.planned != 1 else ''}, ran {self.ran}"
        target = _human(self.target_bytes)
        if self.ran == self.planned:
            return f"{head} (no two adjacent buckets fit in the {target} target: kept as planned)"
        if self.ran == 1:
            return f"{head}: a gather (the whole shuffle is {_human(total)}, under the {target} target)"
        return (f"{head} ({self.planned} buckets of ~{_human(total / self.planned)} coalesced to {self.ran} "
                f"of ~{_human(total / self.ran)}, target {target})")


def coalesce(sizes: list[int], target: int) -> list[list[int]]:
    """Adjacent buckets grouped greedily, in order, each group under ``target`` bytes unless one bucket is.

    Every bucket lands in exactly one group and groups keep bucket order, so
    reading the groups one after another reads the buckets in order.
    """
    if target < 1:
        raise ValueError(f"coalescing needs a positive target, got {target}")
    groups: list[list[int]] = []
    filled = 0
    for b, size in enumerate(sizes):
        if size < 0:
            raise ValueError(f"bucket {b} has a negative size {size}")
        if groups and filled + size <= target:
            groups[-1].append(b)
            filled += size
        else:
            groups.append([b])
            filled = size
    return groups


def bucket_sizes(offsets_per_task: list[list[int]]) -> list[int]:
    """Each bucket's bytes summed over the map tasks, from the offsets in their commit records."""
    if not offsets_per_task:
        return []
    n = len(offsets_per_task[0]) - 1
    sizes = [0] * n
    for offsets in offsets_per_task:
        if len(offsets) != n + 1:
            raise ValueError(f"map tasks disagree on their bucket count: {n} and {len(offsets) - 1}")
        for b in range(n):
            sizes[b] += offsets[b + 1] - offsets[b]
    return sizes


def replan(stage: Stage, sizes: dict[str, list[int]], upstream_tasks: dict[str, int]) -> Decision:
    """Coalesce ``stage``'s buckets in place (ntasks and its hash-shuffle edges); what was done.

    ``sizes[source]`` are the measured buckets of each hash-shuffled input;
    several inputs (a join's two sides) are summed bucket by bucket and
    grouped alike, so bucket i of every side still meets in one task.
    """
    hashed = [e for e in stage.inputs if e.kind == HASH_SHUFFLE]
    measured = [sizes[e.source] for e in hashed]
    for e, m in zip(hashed, measured):
        if len(m) != stage.ntasks:
            raise ValueError(f"adaptive stage {stage.name!r} has {stage.ntasks} tasks but its input "
                             f"{e.source!r} wrote {len(m)} buckets")
    total = [sum(col) for col in zip(*measured)]
    groups = coalesce(total, stage.adaptive.target_bytes)
    decision = Decision(stage.name, stage.ntasks, total, groups, stage.adaptive.target_bytes)
    if len(groups) < stage.ntasks:
        stage.inputs = [_regrouped(e, groups, upstream_tasks[e.source]) if e.kind == HASH_SHUFFLE else e
                        for e in stage.inputs]
        stage.ntasks = len(groups)
    return decision


def _regrouped(edge: Edge, groups: list[list[int]], n_up: int) -> Edge:
    # bucket-major: bucket b of every map task, then bucket b+1..., as the planned reducers read them
    return Edge(edge.source, CUSTOM, [[(j, b) for b in group for j in range(n_up)] for group in groups])


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n}"
