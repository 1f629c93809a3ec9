"""Lowering the bag nodes of logical/bag_multi.py: ops over several bags, accumulate, a lazy take, sources.

Each function takes the running ``BagLowering`` and returns the node's
``Pending`` (the class is passed in, so this module need not import
planner/bag.py). Every input bag is materialized into its own stage (a
Collect), unless it is one already, and the node's tasks read the pieces
they need through one-to-one, broadcast, gather or custom edges.
"""
from __future__ import annotations

from ..errors import PlanError
from ..logical import offline
from ..logical.bag_multi import Accumulate, Aligned, Concat, FromURL, Product, ReadAvro, Take
from ..runtime.plan import BROADCAST, CUSTOM, GATHER, ONE_TO_ONE, Edge, Stage
from ..tasks import bag_multi as tm
from ..tasks import bag_ops as t
from ..tasks.avro import ReadAvroFile
from . import edges, memory
from .explain import human_bytes


def lower(lw, expr, Pending):  # noqa: N803 - the class, handed in by planner/bag.py
    """The Pending of one node of logical/bag_multi.py."""
    if isinstance(expr, Aligned):
        return _aligned(lw, expr, Pending)
    if isinstance(expr, Concat):
        return _concat(lw, expr, Pending)
    if isinstance(expr, Product):
        return _product(lw, expr, Pending)
    if isinstance(expr, Accumulate):
        return _accumulate(lw, expr, Pending)
    if isinstance(expr, Take):
        return _take(lw, expr, Pending)
    if isinstance(expr, FromURL):
        return Pending([], tm.ReadURL(list(expr.urls)), [], len(expr.urls), [f"from_url({len(expr.urls)} urls)"])
    if isinstance(expr, ReadAvro):
        sizes = [f[2] for f in expr.files]
        return Pending([], ReadAvroFile(list(expr.files)), [], len(expr.files),
                       [f"read_avro({len(sizes)} files, {human_bytes(sum(sizes))})"],
                       task_bytes=max(sizes, default=0), source_bytes=sum(sizes))
    raise TypeError(f"bag_multi cannot lower {type(expr).__name__}")


def _stage_of(lw, up) -> str:
    """The stage holding ``up``'s partitions as they are: itself if already one, else a new Collect stage."""
    if (not up.ops and up.table is None and len(up.inputs) == 1 and up.inputs[0].kind == ONE_TO_ONE
            and type(up.read) is t.ReadInputs and up.read.k == 0):
        return up.inputs[0].source
    return lw.materialize(up, t.Collect())


def _known(n) -> bool:
    return not offline.is_unknown(n)


def _sum_bytes(ups) -> int | None:
    sizes = [up.task_bytes for up in ups]
    return None if any(s is None for s in sizes) else sum(sizes)


def _aligned(lw, expr: Aligned, Pending):  # noqa: N803
    ups = [lw.pending(f) for f in expr.frames]
    n = ups[0].npartitions
    for i, up in enumerate(ups[1:], 1):
        if _known(n) and _known(up.npartitions) and up.npartitions != n:
            raise PlanError(f"{_what(expr)}: all bags must have the same number of partitions "
                            f"(dask's rule); bag 0 has {n}, bag {i} has {up.npartitions}; "
                            f"repartition() one of them")
    inputs = [Edge(_stage_of(lw, up), ONE_TO_ONE) for up in ups]
    items = [lw.pending(item) for item in expr.items]
    inputs += [Edge(_stage_of(lw, up), BROADCAST) for up in items]
    return Pending(inputs, tm.ReadAligned(len(ups), len(items), expr.combine), [], n, [_what(expr)],
                   task_bytes=_sum_bytes(ups))


def _what(expr: Aligned) -> str:
    combine = expr.combine
    if isinstance(combine, tm.ZipRecords):
        return f"zip({len(expr.frames)} bags)"
    kind = "map_partitions" if isinstance(combine, tm.AlignedPartitions) else "map"
    from ..tasks.describe import funcname
    return f"{kind}({funcname(combine.fn)}, {len(expr.frames)} bags, {len(expr.items)} items)"


def _concat(lw, expr: Concat, Pending):  # noqa: N803
    ups = [lw.pending(f) for f in expr.frames]
    counts = [up.npartitions for up in ups]
    if not all(map(_known, counts)):   # explain() without a listing: the offsets are not known yet
        total = offline.UNKNOWN
        inputs = [Edge(_stage_of(lw, up), GATHER) for up in ups]
    else:
        total = sum(counts)
        inputs, offset = [], 0
        for up, count in zip(ups, counts):
            table = [[(j - offset, None)] if offset <= j < offset + count else [] for j in range(total)]
            inputs.append(Edge(_stage_of(lw, up), CUSTOM, table))
            offset += count
    largest = [up.task_bytes for up in ups]
    return Pending(inputs, tm.ReadAll(len(ups)), [], total, [f"concat({len(ups)} bags)"],
                   task_bytes=None if None in largest else max(largest, default=0))


def _product(lw, expr: Product, Pending):  # noqa: N803
    left, right = lw.pending(expr.left), lw.pending(expr.right)
    n, m = left.npartitions, right.npartitions
    a, b = _stage_of(lw, left), _stage_of(lw, right)
    if _known(n) and _known(m):
        inputs = [Edge(a, CUSTOM, [[(k // m, None)] for k in range(n * m)]),
                  Edge(b, CUSTOM, [[(k % m, None)] for k in range(n * m)])]
    else:
        inputs = [Edge(a, GATHER), Edge(b, GATHER)]
    return Pending(inputs, tm.ReadProduct(), [], n * m, ["product"], task_bytes=_sum_bytes([left, right]))


def _accumulate(lw, expr: Accumulate, Pending):  # noqa: N803
    up = lw.pending(expr.frame)
    n = up.npartitions
    source = _stage_of(lw, up)
    total = None if up.task_bytes is None or not _known(n) else up.task_bytes * n
    from ..tasks.describe import funcname
    name = lw.add(Stage(lw.name("shuffle"), 1, tm.AccumulateTask(expr.binop, expr.initial), [Edge(source, GATHER)],
                        nbuckets=n, label=f"accumulate({funcname(expr.binop)}) over all {n} partitions in order",
                        peak_memory=memory.bag_task(total)),
                  "accumulate runs in one task: give it less data, or use a reduction if the op is associative")
    owner = [0] * n if _known(n) else [0]
    return Pending([edges.split(name, owner)], t.ReadInputs(0), [], n, ["accumulated"],
                   task_bytes=None if total is None else -(-total // max(n, 1)))


def _take(lw, expr: Take, Pending):  # noqa: N803
    up = lw.pending(expr.frame).then([t.Slice(expr.k)])
    n = up.npartitions if expr.nparts is None else expr.nparts
    if _known(up.npartitions) and expr.nparts is not None:
        n = min(expr.nparts, up.npartitions)
    name = lw.materialize(up, t.Collect(), ntasks=n)
    return Pending([Edge(name, GATHER)], t.ReadInputs(0), [t.Slice(expr.k)], 1, [f"take({expr.k})"])
