"""Lowering an optimized bag expression to a physical plan of stages.

Walking the expression yields a ``Pending`` per node: where its records
come from (a source, or edges from materialized stages) plus the narrow ops
still to apply. Narrow ops only extend a Pending, which is how a chain fuses
into one stage; a shuffle, gather or repartition *materializes* it into a
stage and starts a new Pending on the far side of the boundary.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

from ..logical import columnar_plan, offline
from ..logical.bag import (FromArrow, FromData, FromSequence, Fused, HashJoin, Narrow, Persisted, Range, ReadParquet,
                           ReadText, Repartition, Shuffle, Sort, TreeReduce, describe_op)
from ..logical.bag_multi import MULTI_NODES
from ..logical.expr import Expr
from ..runtime import codec
from ..runtime.plan import BROADCAST, GATHER, HASH_SHUFFLE, ONE_TO_ONE, RANGE_SHUFFLE, Adaptive, Edge, Stage
from ..tasks import bag_ops as t
from ..tasks import sort as srt
from ..tasks import tables as tb
from ..tasks.text_io import ReadTextBlock, text_reader
from . import adaptive, bag_multi, edges, exchange, memory, parquet_splits, shuffle_medium, sizing
from .build import PlanBuilder
from .explain import human_bytes

DEFAULT_SPLIT_EVERY = 16
SMALLER_TASKS = ("use more, smaller partitions (a smaller read_text blocksize=, npartitions= on "
                 "read_parquet, from_sequence or the shuffle, or more files)")


@dataclasses.dataclass
class Pending:
    """A node's partitions not yet materialized: where they come from and the ops still to run."""

    inputs: list[Edge]
    read: object
    ops: list
    npartitions: int
    label: list[str]
    table: str | None = None        # "dict"/"tuple": read() returns a pyarrow Table of such records
    schema: Callable | None = None  # () -> that table's schema, read only if asked
    task_bytes: int | None = None   # the most bytes one task reads, where known (for the memory model)
    source_bytes: int | None = None  # bytes all tasks read from sources (files, shipped data)
    source_gets: dict | None = None  # {store: GETs} its tasks make reading source files, where known
    adaptive: bool = False          # reads hash shuffles whose bucket count the planner chose (not the user)
    split_inputs: tuple = ()        # of those, the inputs a skewed bucket may be split over (a join's sides)

    def records(self) -> "Pending":
        """The same partitions as Python records (a table turns into dicts or tuples)."""
        if self.table is None:
            return self
        return dataclasses.replace(self, ops=[tb.TableToRecords(self.table == "tuple")], table=None, schema=None)

    def then(self, ops) -> "Pending":
        base = self.records()
        return dataclasses.replace(base, ops=base.ops + list(ops), label=self.label + [describe_op(op) for op in ops])


def _after(edge: Edge | None, npartitions: int, task_bytes: int | None = None, ops=(), label=()) -> Pending:
    """The Pending on the far side of a boundary: reads edge's pieces."""
    return Pending([edge] if edge else [], t.ReadInputs(0), list(ops), npartitions, list(label),
                   task_bytes=task_bytes)


def _share(total: int | None, n: int) -> int | None:
    return None if total is None or offline.is_unknown(n) else -(-total // max(n, 1))


class BagLowering(PlanBuilder):
    """Lowers one optimized bag expression: a Pending per node, a stage at every boundary."""

    def __init__(self, root: Expr, settings: dict, explaining: bool = False):
        super().__init__(settings, explaining)
        self.memo: dict[str, Pending] = {}
        self.refs = _reference_counts(root)

    def note_unlisted(self, urlpath) -> None:
        paths = ", ".join(offline.paths_of(urlpath))
        self.note(f"? and 'size unknown': explain() reads no remote storage; compute() lists {paths} "
                  f"and reads the sizes it needs before any task runs")

    # -- the walk ------------------------------------------------------------------
    def pending(self, expr: Expr) -> Pending:
        hit = self.memo.get(expr.name)
        if hit is not None:
            return hit
        out = self._pending(expr)
        if self.refs.get(expr.name, 0) > 1 and (out.ops or not out.inputs):
            # Used twice: compute it once, as its own stage, and let both consumers read it.
            name = self.materialize(out, t.Collect())
            out = _after(Edge(name, ONE_TO_ONE), out.npartitions, out.task_bytes)
        self.memo[expr.name] = out
        return out

    def _pending(self, expr: Expr) -> Pending:
        if isinstance(expr, FromData):
            data = self.ship(expr.name, [list(p) for p in expr.partitions], codec.nbytes_estimate)
            return self._source(data, len(data), f"from_sequence({human_bytes(data.offsets[-1])})",
                                max(map(data.nbytes, range(len(data)))), data.offsets[-1])
        if isinstance(expr, FromSequence):
            return self._from_sequence(expr)
        if isinstance(expr, FromArrow):
            data = self.ship(expr.name, expr.tables, lambda table: table.nbytes)
            return dataclasses.replace(
                self._source(data, len(data), f"from_arrow({human_bytes(data.offsets[-1])})",
                             max(map(data.nbytes, range(len(data)))), data.offsets[-1]),
                table="tuple" if expr.as_tuples else "dict", schema=lambda: expr.schema)
        if isinstance(expr, Range):
            return self._source(t.ReadRange(expr.n, expr.nparts), expr.nparts, f"range({expr.n})",
                                8 * -(-expr.n // expr.nparts), 8 * expr.n)
        if isinstance(expr, ReadText):
            if expr.unlisted:  # explain(): the splits are cut when compute() lists the files
                self.note_unlisted(expr.urlpath)
                n, label = sizing.unlisted_text(expr.urlpath, expr.blocksize, expr.files_per_partition,
                                                expr.compression)
                return self._source(text_reader([], expr.encoding, expr.errors, expr.linedelimiter,
                                                expr.include_path), n, label, None, None)
            splits = sizing.text_splits(expr.files, expr.blocksize, expr.files_per_partition, self.settings)
            sizes = [sum(p[3] - p[2] for p in split) for split in splits]
            return dataclasses.replace(
                self._source(text_reader(splits, expr.encoding, expr.errors, expr.linedelimiter,
                                         expr.include_path), len(splits),
                             sizing.describe(expr.files, splits), max(sizes, default=0), sum(sizes)),
                source_gets=sizing.source_gets(expr.files, splits))
        if isinstance(expr, ReadParquet):
            return self._read_parquet(expr)
        if isinstance(expr, Persisted):
            self.add(Stage(expr.stage, expr.nparts, t.Collect(), label="persisted",
                           external={"store": expr.store, "job": expr.job}))
            return _after(Edge(expr.stage, ONE_TO_ONE), expr.nparts)
        if isinstance(expr, (Fused, Narrow)):
            ops = expr.ops if isinstance(expr, Fused) else (expr.op,)
            return self.pending(expr.frame).then(ops)
        if isinstance(expr, Shuffle):
            return self._shuffle(expr, expr.nparts)
        if isinstance(expr, Sort):
            return self._sort(expr)
        if isinstance(expr, TreeReduce):
            return self._tree(self.pending(expr.frame), expr.combine, expr.split_every)
        if isinstance(expr, Repartition):
            return self._repartition(self.pending(expr.frame), expr.nparts)
        if isinstance(expr, HashJoin):
            return self._hash_join(expr)
        if isinstance(expr, MULTI_NODES):   # zip, aligned map, concat, product, accumulate, lazy take, ...
            return bag_multi.lower(self, expr, Pending)
        raise TypeError(f"cannot lower {type(expr).__name__}: optimize() the expression first")

    def _from_sequence(self, expr: FromSequence) -> Pending:
        """The records cut into as many partitions as sizing.sequence_partitions says, sizes within one."""
        items = expr.items
        nbytes = expr.projected_bytes
        n, why = sizing.sequence_partitions(nbytes, len(items), self.settings)
        q, r = divmod(len(items), n)
        cuts = [i * q + min(i, r) for i in range(n + 1)]
        data = self.ship(expr.name, [list(items[a:b]) for a, b in zip(cuts, cuts[1:])], codec.nbytes_estimate)
        label = f"from_sequence({len(items):,} records, {human_bytes(data.offsets[-1])}, in {n:,} partitions: {why})"
        return self._source(data, len(data), label, max(map(data.nbytes, range(len(data)))), data.offsets[-1])

    def _read_parquet(self, expr: ReadParquet) -> Pending:
        """Row groups packed into splits by their decoded bytes (planner/parquet_splits.py)."""
        planned = parquet_splits.plan(expr, self.settings)
        if planned is None:  # explain(): the splits are cut when compute() lists the files and reads footers
            self.note_unlisted(expr.urlpath)
            n, label = parquet_splits.unlisted(expr)
            out = self._source(tb.ReadParquetSplit([], expr.columns), n, label, None, None)
        else:
            out = dataclasses.replace(
                self._source(tb.ReadParquetSplit(planned.splits, expr.columns), len(planned.splits),
                             planned.label, planned.task_bytes, planned.total_bytes),
                source_gets=planned.source_gets(whole_file=expr.columns is None))
        return dataclasses.replace(out, table="tuple" if expr.as_tuples else "dict", schema=lambda: expr.schema)

    @staticmethod
    def _source(read, n: int, label: str, task_bytes: int | None, source_bytes: int | None) -> Pending:
        return Pending([], read, [], n, [label], task_bytes=task_bytes, source_bytes=source_bytes)

    def _shuffle(self, expr: Shuffle, n: int | None) -> Pending:
        """Hash-partition the frame into ``n`` buckets (None: as many as its bytes need, see sizing.py)."""
        up = self.pending(expr.frame)
        why = "npartitions given"
        if n is None:
            n, why = sizing.reducers(_read(up), up.npartitions, self.settings)
        name = self.materialize(up, t.HashBuckets(expr.key, expr.first, expr.opname), nbuckets=n,
                                boundary=f"hash shuffle into {n} ({why})", shuffled=expr.frame, resizable=True)
        merged = self._two_level(name, up.npartitions, n, _read(up))
        if merged is not None:   # too many pieces for the store's request rate: merged first
            return _after(merged, n, _share(_total(up), n))
        after = _after(Edge(name, HASH_SHUFFLE), n, _share(_total(up), n))
        after.adaptive = expr.nparts is None   # npartitions= given: the user's count is kept
        return after

    def _hash_join(self, expr: HashJoin) -> Pending:
        """Bucket i of both shuffled sides joined in one task; both sides cut into the same count."""
        sides = (expr.left, expr.right)
        shuffled = all(isinstance(side, Shuffle) for side in sides)
        if shuffled:
            n = sides[0].nparts or sides[1].nparts or self._join_reducers([self.pending(side.frame) for side in sides])
            left, right = (self._shuffle(side, n) for side in sides)
        else:
            left, right = self.pending(expr.left), self.pending(expr.right)
        both = None if left.task_bytes is None or right.task_bytes is None else left.task_bytes + right.task_bytes
        # Adaptive only when both sides are shuffles of the planner's count: the driver then sums bucket i
        # of both sides and coalesces them alike, so a key's records from each side still meet in one task.
        return Pending(left.inputs + right.inputs, t.JoinBuckets(expr.on_self, expr.on_other), [],
                       left.npartitions, ["hash join"], task_bytes=both,
                       adaptive=shuffled and left.adaptive and right.adaptive,
                       # a bucket's join is the union of the joins of any division of one side's pieces
                       # with the other side's whole bucket: the driver may split a skewed one
                       split_inputs=(0, 1) if shuffled else ())

    def _join_reducers(self, sides: list[Pending]) -> int:
        # a join task reads bucket i of both sides at once: size the count from their sum
        read = [_read(p) for p in sides]
        total = None if None in read else sum(read)
        counts = [p.npartitions for p in sides]
        n_in = next((c for c in counts if offline.is_unknown(c)), None) or max(counts)
        return sizing.reducers(total, n_in, self.settings)[0]

    def _tree(self, up: Pending, combine, split_every) -> Pending:
        every = DEFAULT_SPLIT_EVERY if split_every is None else split_every
        n = up.npartitions
        # read by a gather (any task count), unless a first tree level groups its tasks by index
        gathered = not offline.is_unknown(n) and not (every and every > 1 and n > every)
        name = self.materialize(up, t.Collect(), resizable=gathered)
        while every and every > 1 and n > every:
            m = math.ceil(n / every)
            stage = Stage(self.name("tree"), m, t.BagTask(t.ReadInputs(0), [combine], t.Collect()),
                          [edges.grouped(name, n, m)], label=f"tree reduce | {describe_op(combine)}")
            name, n = self.add(stage), m
        label = describe_op(combine)
        if offline.is_unknown(n):  # explain() without a listing: the tree's depth is not known yet
            label += f" (after {every}-way tree combines if over {every} partitions)"
        # What a combiner leaves (one value, a table of counts) is not known before it runs: no size.
        return _after(Edge(name, GATHER), 1, None, [combine], [label])

    def _repartition(self, up: Pending, n: int) -> Pending:
        m = up.npartitions
        if n <= m:
            name = self.materialize(up, t.Collect())
            return _after(edges.grouped(name, m, n), n, _share(_total(up), n), label=["concat"])
        targets = [list(range(i * n // m, (i + 1) * n // m)) for i in range(m)]
        owner = [i for i, ts in enumerate(targets) for _ in ts]
        name = self.materialize(up, t.SliceBuckets(targets), nbuckets=n, boundary=f"split into {n}")
        return _after(edges.split(name, owner), n, _share(_total(up), n))

    def _sort(self, expr: Sort) -> Pending:
        """sample -> boundaries -> range-partition map -> sorted reduce (see tasks/sort.py)."""
        up = self.pending(expr.frame)
        n_in, key, reverse = up.npartitions, expr.key, expr.reverse
        n_out = expr.nparts or n_in
        size = srt.sample_size(n_in, n_out)
        by = f"by {srt.describe_key(key)}{' reversed' if reverse else ''}"
        column = self._sort_column(up, expr)
        if column is None:
            up, path = up.records(), "python records"
            # Both the sample and the range map may be coalesced: the same sizes and target give them
            # the same groups, and (group, position) orders records as (bucket, position) did.
            sample = self.materialize(up, srt.SampleKeys(key, size), boundary=f"sample keys [{path}]",
                                      resizable=True)
            pick = srt.PickBoundaries(n_out, reverse, key)
            sink = srt.RangeBuckets(key, reverse, len(up.inputs))
            reduce = _after(None, n_out, ops=[srt.SortRecords(key, reverse)])
        else:
            path = "columnar"
            keys_only = Pending(up.inputs, tb.project(up.read, [column]), [], n_in, up.label, up.table)
            sample = self.materialize(keys_only, srt.SampleColumn(column, size),
                                      boundary=f"sample keys [columnar: column {column!r} only]")
            pick = srt.PickColumnBoundaries(column, n_out, reverse)
            sink = srt.RangeColumnBuckets(column, reverse, len(up.inputs))
            reduce = Pending([], srt.SortTables(column, reverse), [], n_out, [], up.table, up.schema)
        bounds = self.add(Stage(self.name("stage"), 1, pick, [Edge(sample, GATHER)],
                                label=f"pick {n_out - 1} range boundaries [{path}]"))
        mapper = dataclasses.replace(up, inputs=up.inputs + [Edge(bounds, BROADCAST)])
        name = self.materialize(mapper, sink, nbuckets=n_out, shuffled=expr.frame, size_always=True,
                                boundary=f"range partition {by} into {n_out} [{path}]", resizable=True)
        edge = self._two_level(name, n_in, n_out, _read(up)) or Edge(name, RANGE_SHUFFLE)
        return dataclasses.replace(reduce, inputs=[edge], label=[f"sort {by} [{path}]"],
                                   task_bytes=_share(_total(up), n_out))

    def _two_level(self, name: str, maps, reducers, shuffled_bytes) -> Edge | None:
        """The reducers' edge through a merge stage when stage ``name``'s M x R pieces are too many GETs
        (planner/exchange.py), else None."""
        shuffle = self.stages[-1]
        layout = exchange.choose(maps, reducers, shuffle.storage or self.settings["storage"],
                                 self.settings.get("exchange_levels", "auto"))
        if layout is None:
            return None
        merge = self.add(exchange.merge_stage(self.name("merge"), name, layout, shuffle.storage, shuffled_bytes))
        shuffle.adaptive = None   # the merges name its tasks one by one: their count must stay
        return exchange.reducer_edge(merge, layout)

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
            self.note(f"the sort runs columnar if the files agree on one sortable type for "
                              f"{column!r}; compute() reads their footers to check")
            return column
        if schema is None:  # partitions disagree on types: Python compares across them
            return None
        column = tb.column_for(expr.key, schema, up.table == "tuple", up.label[0] if up.label else "the input")
        return column if tb.sortable(schema.field(column).type) else None

    # -- stages --------------------------------------------------------------------
    def materialize(self, p: Pending, sink, nbuckets: int | None = None, boundary: str = "",
                    ntasks: int | None = None, shuffled: Expr | None = None, size_always: bool = False,
                    resizable: bool = False) -> str:
        """A stage running ``p`` into ``sink``; ``shuffled`` is the bag a shuffle sink moves.

        Its size is projected when the shuffle medium depends on it, or always
        with ``size_always`` (a sort, which reads the parquet footers anyway).
        ``resizable``: every reader of the stage takes whole buckets or whole
        outputs, whatever its task count; with a Pending that reads the
        planner's hash shuffles, the stage is adaptive (the driver may
        coalesce its buckets once it has measured them).
        """
        if p.table is not None and not getattr(sink, "takes_tables", False):
            p = p.records()
        read, ops, labels = p.read, p.ops, list(p.label)
        if isinstance(read, ReadTextBlock) and self.settings.get("columnar", True):
            chosen = columnar_plan.plan(read, ops, labels[1:])
            if chosen is not None:
                if chosen.k:
                    read, ops = chosen.reader, ops[chosen.k:]
                    if isinstance(sink, t.HashBuckets) and sink.first and not ops:
                        columnar_plan.hand_pairs_as_table(read)
                labels = [labels[0] + chosen.note] + labels[1 + chosen.k:]
        elif isinstance(read, t.ReadInputs) and ops and self.settings.get("columnar", True):
            chosen = columnar_plan.plan_combine(read, ops[0])
            if chosen is not None and chosen.k:
                read, ops = chosen.reader, ops[1:]
                labels = [labels[0] + chosen.note if labels else chosen.note.strip()] + labels[1:]
            elif chosen is not None and labels:
                labels[0] += chosen.note
        label = " | ".join(labels) or "read"
        if boundary:
            label += f" -> {boundary}"
        ntasks = ntasks or p.npartitions
        stage = Stage(self.name("shuffle" if nbuckets else "stage"), ntasks, t.BagTask(read, ops, sink),
                      list(p.inputs), nbuckets=nbuckets, label=label, peak_memory=memory.bag_task(p.task_bytes),
                      read_bytes=p.source_bytes, source_gets=p.source_gets)
        if p.adaptive and resizable and ntasks == p.npartitions and not offline.is_unknown(ntasks):
            stage.adaptive = Adaptive(adaptive.reducer_target(self.settings), split_inputs=p.split_inputs)
        if shuffled is not None:
            projected = functools.cache(lambda: shuffled.projected_bytes)
            unread = any(getattr(node, "size_unread", False) for node in shuffled.walk())
            stage.storage, stage.storage_note = shuffle_medium.choose(self.settings, projected, unread)
            if size_always or projected.cache_info().currsize:
                stage.estimated_bytes = projected()
        return self.add(stage, self._smaller(p, ntasks))

    def _smaller(self, p: Pending, ntasks) -> str:
        """The advice for a stage over the memory bound, with the task count that would fit where known."""
        if p.task_bytes is None or offline.is_unknown(ntasks):
            return SMALLER_TASKS
        fits = memory.largest_bag_read(memory.bound(self.settings))
        need = -(-ntasks * p.task_bytes // fits)
        if need <= ntasks:
            return SMALLER_TASKS
        return f"the same data in {need:,} tasks of ~{human_bytes(p.task_bytes * ntasks / need)} would fit; " + SMALLER_TASKS


def _read(p: Pending) -> int | None:
    """Bytes a Pending's tasks read in all: exact at a source, else the projection from its largest task."""
    return p.source_bytes if p.source_bytes is not None else _total(p)


def _total(p: Pending) -> int | None:
    """About how many bytes all of a Pending's tasks read (its largest task's, times their count)."""
    if p.task_bytes is None or offline.is_unknown(p.npartitions):
        return None
    return p.task_bytes * p.npartitions


def _reference_counts(root: Expr) -> dict[str, int]:
    refs: dict[str, int] = {}
    for node in root.walk():
        for dep in node.dependencies:
            refs[dep.name] = refs.get(dep.name, 0) + 1
    return refs


def lower(root: Expr, settings: dict, sink=None, ntasks: int | None = None,
          explaining: bool = False) -> BagLowering:
    """The lowering of ``root`` (already optimized) into stages; its last stage is the output.

    ``ntasks`` runs only the first partitions of the output (take); while
    ``explaining``, driver-held data is sized but not encoded.
    """
    lowering = BagLowering(root, settings, explaining)
    final = lowering.pending(root)
    if ntasks is not None:
        ntasks = min(ntasks, final.npartitions)  # only the first partitions are needed (take)
    # The output may be coalesced when its partitions are only collected (compute, persist): a writer's
    # targets and take's first partitions are counted before the run.
    lowering.output = lowering.materialize(final, sink or t.Collect(), ntasks=ntasks,
                                           resizable=sink is None and ntasks is None)
    return lowering
