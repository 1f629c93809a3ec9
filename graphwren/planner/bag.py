"""Lowering an optimized bag plan to a physical plan of stages.

Walking the plan yields a ``Pending`` per node: where its records come from
(a source, or edges from materialized stages) plus the narrow ops still to
apply. Narrow ops only extend a Pending, which is how a chain fuses into
one stage; a shuffle, gather or repartition *materializes* it into a stage
and starts a new Pending on the far side of the boundary.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Callable

from ..runtime import codec
from ..runtime.plan import ALL_TO_ALL, BROADCAST, CUSTOM, GATHER, ONE_TO_ONE, RANGE, Edge, Plan, Stage
from ..tasks import text_io as bag_io
from ..tasks import sort as srt
from ..tasks import tables as tb
from ..tasks import bag_ops as t
from ..logical import offline
from . import shuffle_medium
from ..tasks.columnar import ColumnarTextBlock, columnar_prefix
from ..logical.bag import FromArrow, FromData, Fused, HashJoin, Narrow, Persisted, Range, ReadParquet, ReadText, Repartition, Shuffle, Sort, TreeReduce, describe_op
from ..logical.expr import Expr
from .explain import human_bytes

DEFAULT_SPLIT_EVERY = 16


@dataclasses.dataclass
class Pending:
    inputs: list[Edge]
    read: object
    ops: list
    npartitions: int
    label: list[str]
    table: str | None = None    # "dict"/"tuple": read() returns a pyarrow Table of such records
    schema: Callable | None = None  # () -> that table's schema, read only if asked

    def records(self) -> "Pending":
        """The same partitions as Python records (a table turns into dicts or tuples)."""
        if self.table is None:
            return self
        return Pending(self.inputs, self.read, [tb.TableToRecords(self.table == "tuple")], self.npartitions,
                       self.label)

    def then(self, ops) -> "Pending":
        base = self.records()
        return Pending(base.inputs, base.read, base.ops + list(ops), self.npartitions,
                       self.label + [describe_op(op) for op in ops])


class GroupDeps:
    """CUSTOM edge: downstream task j reads upstream tasks [lo(j), lo(j+1)) whole."""

    def __init__(self, n_up: int, n_down: int):
        self.n_up, self.n_down = n_up, n_down

    def __call__(self, j: int):
        lo, hi = j * self.n_up // self.n_down, (j + 1) * self.n_up // self.n_down
        return [(i, None) for i in range(lo, hi)]


class SplitDeps:
    """CUSTOM edge: downstream task j reads bucket j of the one upstream task that feeds it."""

    def __init__(self, owner: list[int]):
        self.owner = owner

    def __call__(self, j: int):
        return [(self.owner[j], j)]


class Lowering:
    def __init__(self, root: Expr, settings: dict):
        self.settings = settings
        self.stages: list[Stage] = []
        self.data: dict[str, bytes] = {}
        self.memo: dict[str, Pending] = {}
        self.refs = _reference_counts(root)
        self.notes: list[str] = []   # what explain() should say it did not look at

    def note_unlisted(self, urlpath) -> None:
        paths = ", ".join(offline.paths_of(urlpath))
        note = (f"? and 'size unknown': explain() reads no remote storage; compute() lists {paths} "
                f"and reads the sizes it needs before any task runs")
        if note not in self.notes:
            self.notes.append(note)

    # -- the walk ------------------------------------------------------------------
    def pending(self, expr: Expr) -> Pending:
        hit = self.memo.get(expr.name)
        if hit is not None:
            return hit
        out = self._pending(expr)
        if self.refs.get(expr.name, 0) > 1 and (out.ops or not out.inputs):
            # Used twice: compute it once, as its own stage, and let both consumers read it.
            name = self.materialize(out, t.Collect())
            out = Pending([Edge(name, ONE_TO_ONE)], t.ReadInputs(0), [], out.npartitions, [])
        self.memo[expr.name] = out
        return out

    def _pending(self, expr: Expr) -> Pending:
        if isinstance(expr, FromData):
            offsets = self._ship(expr.name, [list(p) for p in expr.partitions])
            return Pending([], t.ReadDataPartitions(expr.name, offsets), [], expr.npartitions,
                           [f"from_sequence({human_bytes(offsets[-1])})"])
        if isinstance(expr, Range):
            return Pending([], t.ReadRange(expr.n, expr.nparts), [], expr.nparts, [f"range({expr.n})"])
        if isinstance(expr, ReadText):
            if expr.unlisted:  # explain(): the blocks are cut when compute() lists the files
                self.note_unlisted(expr.urlpath)
                return Pending([], bag_io.ReadTextBlock([], expr.encoding, expr.errors), [], expr.npartitions,
                               [f"read_text({expr.npartitions} blocks, size unknown)"])
            size = sum(s[3] - s[2] for s in expr.splits)
            return Pending([], bag_io.ReadTextBlock(expr.splits, expr.encoding, expr.errors), [],
                           len(expr.splits), [f"read_text({len(expr.splits)} blocks, {human_bytes(size)})"])
        if isinstance(expr, ReadParquet):
            if expr.size_unread:
                self.note_unlisted(expr.urlpath)
            files = [] if expr.unlisted else expr.files
            return Pending([], tb.ReadParquetTable(files, expr.columns), [], expr.npartitions,
                           [f"read_parquet({expr.npartitions} files{', size unknown' if expr.size_unread else ''})"],
                           "tuple" if expr.as_tuples else "dict", lambda: expr.schema)
        if isinstance(expr, FromArrow):
            offsets = self._ship(expr.name, expr.tables)
            return Pending([], tb.ReadDataTable(expr.name, offsets), [], len(expr.tables),
                           [f"from_arrow({human_bytes(offsets[-1])})"], "tuple" if expr.as_tuples else "dict",
                           lambda: expr.schema)
        if isinstance(expr, Persisted):
            self.stages.append(Stage(expr.stage, expr.nparts, t.Collect(), label="persisted",
                                     external={"store": expr.store, "job": expr.job}))
            return Pending([Edge(expr.stage, ONE_TO_ONE)], t.ReadInputs(0), [], expr.nparts, [])
        if isinstance(expr, (Fused, Narrow)):
            ops = expr.ops if isinstance(expr, Fused) else (expr.op,)
            return self.pending(expr.frame).then(ops)
        if isinstance(expr, Shuffle):
            up = self.pending(expr.frame)
            return self._shuffle(expr, up, expr.nparts or up.npartitions)
        if isinstance(expr, Sort):
            return self._sort(expr)
        if isinstance(expr, TreeReduce):
            return self._tree(self.pending(expr.frame), expr.combine, expr.split_every)
        if isinstance(expr, Repartition):
            return self._repartition(self.pending(expr.frame), expr.nparts)
        if isinstance(expr, HashJoin):
            sides = (expr.left, expr.right)
            if all(isinstance(side, Shuffle) and side.nparts is None for side in sides):
                # No nparts given: both sides shuffle into as many buckets as the larger input has.
                ups = [self.pending(side.frame) for side in sides]
                n = max(up.npartitions for up in ups)
                left, right = (self._shuffle(side, up, n) for side, up in zip(sides, ups))
            else:
                left, right = self.pending(expr.left), self.pending(expr.right)
            return Pending(left.inputs + right.inputs, t.JoinBuckets(expr.on_self, expr.on_other), [],
                           left.npartitions, ["hash join"])
        raise TypeError(f"cannot lower {type(expr).__name__}: optimize() the plan first")

    def _shuffle(self, expr: Shuffle, up: Pending, n: int) -> Pending:
        """``up`` hash-shuffled by ``expr.key`` into ``n`` buckets."""
        name = self.materialize(up, t.HashBuckets(expr.key, expr.first, expr.opname), nbuckets=n,
                                boundary=f"hash shuffle({n})", shuffled=expr.frame)
        return Pending([Edge(name, ALL_TO_ALL)], t.ReadInputs(0), [], n, [])

    def _ship(self, name: str, partitions: list) -> list[int]:
        """Encode partitions the driver holds into one data object; their byte offsets in it."""
        blobs = [codec.encode(p) for p in partitions]
        self.data[name] = b"".join(blobs)
        return list(itertools.accumulate(map(len, blobs), initial=0))

    def _tree(self, up: Pending, combine, split_every) -> Pending:
        every = DEFAULT_SPLIT_EVERY if split_every is None else split_every
        name = self.materialize(up, t.Collect())
        n = up.npartitions
        while every and every > 1 and n > every:
            m = math.ceil(n / every)
            stage = Stage(f"{len(self.stages)}-tree", m, t.BagTask(t.ReadInputs(0), [combine], t.Collect()),
                          [Edge(name, CUSTOM, GroupDeps(n, m))], label=f"tree reduce | {describe_op(combine)}")
            self.stages.append(stage)
            name, n = stage.name, m
        label = describe_op(combine)
        if offline.is_unknown(n):  # explain() without a listing: the tree's depth is not known yet
            label += f" (after {every}-way tree combines if over {every} partitions)"
        return Pending([Edge(name, GATHER)], t.ReadInputs(0), [combine], 1, [label])

    def _repartition(self, up: Pending, n: int) -> Pending:
        m = up.npartitions
        if n <= m:
            name = self.materialize(up, t.Collect())
            return Pending([Edge(name, CUSTOM, GroupDeps(m, n))], t.ReadInputs(0), [], n, ["concat"])
        targets = [list(range(i * n // m, (i + 1) * n // m)) for i in range(m)]
        owner = [i for i, ts in enumerate(targets) for _ in ts]
        name = self.materialize(up, t.SliceBuckets(targets), nbuckets=n, boundary=f"split into {n}")
        return Pending([Edge(name, CUSTOM, SplitDeps(owner))], t.ReadInputs(0), [], n, [])

    def _sort(self, expr: Sort) -> Pending:
        """sample -> boundaries -> range-partition map -> sorted reduce (see bag_sort)."""
        up = self.pending(expr.frame)
        n_in, n_out, key, reverse = up.npartitions, expr.npartitions, expr.key, expr.reverse
        size = srt.sample_size(n_in, n_out)
        by = f"by {srt.describe_key(key)}{' reversed' if reverse else ''}"
        column = self._sort_column(up, expr)
        if column is None:
            up, path = up.records(), "python records"
            sample = self.materialize(up, srt.SampleKeys(key, size), boundary=f"sample keys [{path}]")
            pick = srt.PickBoundaries(n_out, reverse, key)
            sink = srt.RangeBuckets(key, reverse, len(up.inputs))
            reduce = Pending([], t.ReadInputs(0), [srt.SortRecords(key, reverse)], n_out, [])
        else:
            path = "columnar"
            keys_only = Pending(up.inputs, tb.project(up.read, [column]), [], n_in, up.label, up.table)
            sample = self.materialize(keys_only, srt.SampleColumn(column, size),
                                      boundary=f"sample keys [columnar: column {column!r} only]")
            pick = srt.PickColumnBoundaries(column, n_out, reverse)
            sink = srt.RangeColumnBuckets(column, reverse, len(up.inputs))
            reduce = Pending([], srt.SortTables(column, reverse), [], n_out, [], up.table, up.schema)
        bounds = Stage(f"{len(self.stages)}-stage", 1, pick, [Edge(sample, GATHER)],
                       label=f"pick {n_out - 1} range boundaries [{path}]")
        self.stages.append(bounds)
        mapper = dataclasses.replace(up, inputs=up.inputs + [Edge(bounds.name, BROADCAST)])
        name = self.materialize(mapper, sink, nbuckets=n_out, shuffled=expr.frame, size_always=True,
                                boundary=f"range partition {by} into {n_out} [{path}]")
        return dataclasses.replace(reduce, inputs=[Edge(name, RANGE)], label=[f"sort {by} [{path}]"])

    def _sort_column(self, up: Pending, expr: Sort) -> str | None:
        """The key's column when the sort can run on Arrow tables, else None (Python records)."""
        if up.table is None or expr.key is None or callable(expr.key):
            return None
        schema = up.schema()
        if schema is offline.UNREAD:  # explain() read no footers: show the path a sort by field takes
            if up.table == "tuple" and isinstance(expr.key, int) and not isinstance(expr.key, bool):
                column = f"field {expr.key}"
            elif up.table == "dict" and isinstance(expr.key, str):
                column = expr.key
            else:
                return None
            self.notes.append(f"the sort runs columnar if the files agree on one sortable type for "
                              f"{column!r}; compute() reads their footers to check")
            return column
        if schema is None:  # partitions disagree on types: Python compares across them
            return None
        column = tb.column_for(expr.key, schema, up.table == "tuple", up.label[0] if up.label else "the input")
        return column if tb.sortable(schema.field(column).type) else None

    # -- stages --------------------------------------------------------------------
    def materialize(self, p: Pending, sink, nbuckets: int | None = None, boundary: str = "",
                    ntasks: int | None = None, shuffled: Expr | None = None, size_always: bool = False) -> str:
        """A stage running ``p`` into ``sink``; ``shuffled`` is the bag a shuffle sink moves.

        Its size is projected when the shuffle medium depends on it, or always
        with ``size_always`` (a sort, which reads the parquet footers anyway).
        """
        if p.table is not None and not getattr(sink, "takes_tables", False):
            p = p.records()
        read, ops, labels = p.read, p.ops, list(p.label)
        if isinstance(read, bag_io.ReadTextBlock):
            k = columnar_prefix(ops)
            if k:
                read, ops = ColumnarTextBlock(read, ops[:k]), ops[k:]
                labels[0] += " [columnar: " + " | ".join(labels[1:k + 1]) + " as Arrow kernels]"
        label = " | ".join(labels) or "read"
        if boundary:
            label += f" -> {boundary}"
        name = f"{len(self.stages)}-{'shuffle' if nbuckets else 'stage'}"
        stage = Stage(name, ntasks or p.npartitions, t.BagTask(read, ops, sink), list(p.inputs),
                      nbuckets=nbuckets, label=label)
        if shuffled is not None:
            projected = functools.cache(lambda: shuffled.projected_bytes)
            unread = any(getattr(node, "size_unread", False) for node in shuffled.walk())
            stage.storage, stage.storage_note = shuffle_medium.choose(self.settings, projected, unread)
            if size_always or projected.cache_info().currsize:
                stage.estimated_bytes = projected()
        self.stages.append(stage)
        return name


def _reference_counts(root: Expr) -> dict[str, int]:
    refs: dict[str, int] = {}
    for node in root.walk():
        for dep in node.dependencies:
            refs[dep.name] = refs.get(dep.name, 0) + 1
    return refs


def lower(root: Expr, settings: dict, sink=None, ntasks: int | None = None, notes: list | None = None) -> Plan:
    """The physical plan computing ``root`` (already optimized); its last stage is the output.

    ``notes`` collects what explain() should add (sources it did not list, see planner.offline).
    """
    lowering = Lowering(root, settings)
    if notes is not None:
        lowering.notes = notes
    final = lowering.pending(root)
    if ntasks is not None:
        ntasks = min(ntasks, final.npartitions)  # only the first partitions are needed (take)
    out = lowering.materialize(final, sink or t.Collect(), ntasks=ntasks)
    return Plan(lowering.stages, [out], lowering.data)
