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

A skewed bucket (over the target and ``SKEW_FACTOR`` times the median) is
split over several tasks where the stage allows it (``Adaptive.split_inputs``):
a hash join's bucket is the union of the joins of any division of ONE side's
pieces with the other side's whole bucket, so the big side's map outputs
are cut into runs of about the target and each task reads one run plus the
other side whole (Spark's skew-join handling). Other reducers (a combine, a
group, a distinct) need all of one key's records in one task, and a bucket
holds whole keys: their skewed buckets are kept whole and reported.
"""
from __future__ import annotations

import dataclasses
import statistics

import numpy as np

from .plan import CUSTOM, HASH_SHUFFLE, Edge, Stage
from .units import human_bytes

#: A bucket this many times the median (and over the target) is skewed: split where allowed, else reported.
SKEW_FACTOR = 5


@dataclasses.dataclass
class Decision:
    """What the driver did to one adaptive stage before starting it, from the buckets it measured."""

    stage: str
    planned: int                      # tasks the planner gave the stage
    bucket_bytes: list[int]           # measured bytes of each planned bucket, summed over map tasks
    groups: list[list[int]]           # the buckets each task reads now, in order (a split bucket: once per task)
    target_bytes: int
    splits: dict[int, int] = dataclasses.field(default_factory=dict)   # split bucket -> tasks it ran on

    @property
    def ran(self) -> int:
        return len(self.groups)

    @property
    def skewed(self) -> list[int]:
        """Buckets over the target and SKEW_FACTOR times the median, split or not."""
        return skewed_buckets(self.bucket_bytes, self.target_bytes)

    def describe(self) -> str:
        """``planned 16 tasks, ran 2 (16 buckets of ~40 KiB coalesced to 2 of ~320 KiB, target 64.0 MiB)``."""
        text = self._what()
        for b, k in list(self.splits.items())[:5]:
            text += (f"; skewed bucket {b} ({human_bytes(self.bucket_bytes[b])}) split over {k} tasks, "
                     f"each reading a share of one side and the other side whole")
        whole = [b for b in self.skewed if b not in self.splits]
        if whole:
            big = max(self.bucket_bytes[b] for b in whole)
            text += (f"; skewed bucket{'s' if len(whole) > 1 else ''} {', '.join(map(str, whole[:5]))}"
                     f"{' ...' if len(whole) > 5 else ''} (up to {human_bytes(big)}) kept whole: "
                     f"a bucket holds whole keys and its reducer needs them together")
        return text

    def _what(self) -> str:
        total = sum(self.bucket_bytes)
        head = f"planned {self.planned} task{'s' if self.planned != 1 else ''}, ran {self.ran}"
        target = human_bytes(self.target_bytes)
        nbuckets = self.ran - sum(self.splits.values()) + len(self.splits)   # tasks before splitting
        if nbuckets == self.planned:
            return f"{head} (no two adjacent buckets fit in the {target} target: kept as planned)"
        if nbuckets == 1 and not self.splits:
            return f"{head}: a gather (the whole shuffle is {human_bytes(total)}, under the {target} target)"
        return (f"{head} ({self.planned} buckets of ~{human_bytes(total / self.planned)} coalesced to {nbuckets} "
                f"of ~{human_bytes(total / nbuckets)}, target {target})")


def skewed_buckets(sizes: list[int], target: int) -> list[int]:
    """The buckets over ``target`` and over SKEW_FACTOR times the median bucket."""
    median = statistics.median(sizes) if sizes else 0
    return [b for b, s in enumerate(sizes) if s > target and s > SKEW_FACTOR * median]


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


def task_bucket_sizes(offsets_per_task: list) -> np.ndarray:
    """Each map task's bytes per bucket, an (M, R) array, from the offsets in their commit records."""
    widths = [len(offsets) for offsets in offsets_per_task]
    for width in widths:
        if width != widths[0]:
            raise ValueError(f"map tasks disagree on their bucket count: {widths[0] - 1} and {width - 1}")
    if not widths:
        return np.zeros((0, 0), dtype=np.int64)
    return np.diff(np.asarray(offsets_per_task, dtype=np.int64), axis=1)


def bucket_sizes(offsets_per_task: list) -> list[int]:
    """Each bucket's bytes summed over the map tasks, from the offsets in their commit records."""
    return task_bucket_sizes(offsets_per_task).sum(axis=0).tolist()


def replan(stage: Stage, sizes: dict[str, list[list[int]]]) -> Decision:
    """Coalesce (and where allowed split) ``stage``'s buckets in place; what was done.

    ``sizes[source][j][b]`` is map task j's bucket b of each hash-shuffled
    input; several inputs (a join's two sides) are summed bucket by bucket
    and grouped alike, so bucket i of every side still meets in one task.
    """
    hashed = [i for i, e in enumerate(stage.inputs) if e.kind == HASH_SHUFFLE]
    per_task = {i: np.asarray(sizes[stage.inputs[i].source]).tolist() for i in hashed}
    per_input = {}
    for i, rows in per_task.items():
        per_input[i] = [sum(col) for col in zip(*rows)] if rows else []
        if len(per_input[i]) != stage.ntasks:
            raise ValueError(f"adaptive stage {stage.name!r} has {stage.ntasks} tasks but its input "
                             f"{stage.inputs[i].source!r} wrote {len(per_input[i])} buckets")
    total = [sum(col) for col in zip(*per_input.values())]
    target = stage.adaptive.target_bytes
    skewed = set(skewed_buckets(total, target))
    tables = {i: [] for i in hashed}
    groups, splits = [], {}
    for group in coalesce(total, target):
        b = group[0]
        runs = _split(b, per_task, per_input, stage.adaptive.split_inputs, target) if b in skewed else None
        if runs is None:
            groups.append(group)
            for i in hashed:
                tables[i].append([(j, c) for c in group for j in range(len(per_task[i]))])
            continue
        side, pieces = runs
        splits[b] = len(pieces)
        for run in pieces:
            groups.append([b])
            for i in hashed:
                tables[i].append([(j, b) for j in (run if i == side else range(len(per_task[i])))])
    decision = Decision(stage.name, stage.ntasks, total, groups, target, splits)
    if len(groups) != stage.ntasks or splits:
        stage.inputs = [Edge(e.source, CUSTOM, tables[i]) if i in tables else e for i, e in enumerate(stage.inputs)]
        stage.ntasks = len(groups)
    return decision


def _split(b: int, per_task: dict, per_input: dict, allowed: tuple, target: int):
    """(input, runs of its map tasks) to split bucket ``b`` over, or None when it stays whole.

    The input split is the allowed one with the most bytes in the bucket;
    its map tasks are cut, in order, into runs of about ``target`` bytes.
    """
    candidates = [i for i in allowed if i in per_task]
    if not candidates:
        return None
    side = max(candidates, key=lambda i: per_input[i][b])
    runs = coalesce([row[b] for row in per_task[side]], target)
    return (side, runs) if len(runs) > 1 else None

