"""What a bag stage runs inside a worker: a reader, a chain of ops, a sink.

A fused stage is ``sink(ctx, opN(...op1(read(ctx))))``: records stream
through iterators, so a chain of narrow operations costs one pass and no
intermediate lists. Every piece is a small picklable class; the stage
function is uploaded once and cached by warm workers.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import zlib
from typing import Callable, Iterable, Iterator

from .hashing import check_hashable, portable_hash


class no_default:  # noqa: N801 - a class, so identity survives pickling to workers
    """Marks an argument the caller did not give (``initial=``, ``default=``)."""


# -- readers: where a stage's records come from ---------------------------------------
class ReadInputs:
    """Concatenate the pieces of input edge ``k`` (one-to-one, shuffle or gather)."""

    def __init__(self, k: int = 0):
        self.k = k

    def __call__(self, ctx) -> Iterator:
        from .pair_tables import records    # a traced combine's buckets may be pair tables
        return itertools.chain.from_iterable(records(part) for part in ctx.input(self.k))


class ReadRange:
    """Partition i of range(n), generated in the task."""

    def __init__(self, n: int, npartitions: int):
        self.n, self.npartitions = n, npartitions

    def __call__(self, ctx) -> Iterator:
        step = -(-self.n // self.npartitions) if self.n else 0
        return iter(range(min(ctx.task * step, self.n), min((ctx.task + 1) * step, self.n)))


# -- ops: narrow, record-at-a-time transformations --------------------------------------
class Map:
    """Op: fn(record, *args, **kwargs) for each record."""

    def __init__(self, fn, args=(), kwargs=None):
        self.fn, self.args, self.kwargs = fn, tuple(args), dict(kwargs or {})

    def __call__(self, it):
        if self.args or self.kwargs:
            fn, args, kwargs = self.fn, self.args, self.kwargs
            return (fn(x, *args, **kwargs) for x in it)
        return map(self.fn, it)


class Starmap(Map):
    """Op: fn(*record, *args, **kwargs) for each record (a tuple)."""

    def __call__(self, it):
        if self.args or self.kwargs:
            fn, args, kwargs = self.fn, self.args, self.kwargs
            return (fn(*x, *args, **kwargs) for x in it)
        return itertools.starmap(self.fn, it)


class Filter:
    """Op: the records for which predicate(record) is true."""

    def __init__(self, predicate):
        self.predicate = predicate

    def __call__(self, it):
        return filter(self.predicate, it)


class Remove(Filter):
    """Op: the records for which predicate(record) is false."""

    def __call__(self, it):
        return itertools.filterfalse(self.predicate, it)


class FlatMap:
    """Op: every item of fn(record), for each record."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, it):
        return itertools.chain.from_iterable(map(self.fn, it))


class Flatten:
    """Op: every item of each record (records are iterables)."""

    def __call__(self, it):
        return itertools.chain.from_iterable(it)


class Pluck:
    """Op: record[key] (or a tuple of fields), with an optional default."""

    def __init__(self, key, default=no_default):
        self.key, self.default = key, default

    def __call__(self, it):
        key, default = self.key, self.default
        if isinstance(key, list):
            if default is no_default:
                return (tuple(x[k] for k in key) for x in it)
            return (tuple(_get(x, k, default) for k in key) for x in it)
        if default is no_default:
            return (x[key] for x in it)
        return (_get(x, key, default) for x in it)


def _get(x, k, default):
    try:
        return x[k]
    except (KeyError, IndexError):
        return default


class MapPartitions:
    """The user's function over a whole partition (it gets a list, as in dask)."""

    def __init__(self, fn, args=(), kwargs=None):
        self.fn, self.args, self.kwargs = fn, tuple(args), dict(kwargs or {})

    def __call__(self, it):
        out = self.fn(list(it), *self.args, **self.kwargs)
        return iter(out)


class Slice:
    """The first ``n`` records (take)."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, it):
        return itertools.islice(it, self.n)


# -- aggregating ops: a partition in, a few records out ------------------------------
class PartialReduceBy:
    """Map-side combine: one (key, accumulator) per key in the partition (toolz.reduceby)."""

    def __init__(self, key, binop, initial=no_default, op="reduceby"):
        self.key, self.binop, self.initial, self.op = key, binop, initial, op

    def __call__(self, it):
        acc: dict = {}
        key, binop, initial = self.key, self.binop, self.initial
        if not callable(key):
            getter = key
            key = lambda x: x[getter]  # noqa: E731
        for record in it:
            k = key(record)
            try:
                if k in acc:
                    acc[k] = binop(acc[k], record)
                elif initial is no_default:
                    acc[k] = record
                else:
                    acc[k] = binop(initial() if callable(initial) else initial, record)
            except TypeError:
                check_hashable(k, record, self.op)
                raise
        return iter(acc.items())


class CombineByKey:
    """Reduce-side combine of (key, accumulator) pairs coming from many map tasks."""

    def __init__(self, combine, initial=no_default):
        self.combine, self.initial = combine, initial

    def __call__(self, it):
        acc: dict = {}
        combine, initial = self.combine, self.initial
        for k, v in it:
            if k in acc:
                acc[k] = combine(acc[k], v)
            elif initial is no_default:
                acc[k] = v
            else:
                acc[k] = combine(initial() if callable(initial) else initial, v)
        return iter(acc.items())


class CountValues:
    """Map-side frequencies: Counter runs its loop in C."""

    def __call__(self, it):
        counts: collections.Counter = collections.Counter()
        for x in it:
            try:
                counts[x] += 1
            except TypeError:
                check_hashable(x, x, "frequencies")
                raise
        return iter(counts.items())


class SumCounts:
    """Combiner: (value, count) pairs summed per value (the reduce side of frequencies)."""

    def __call__(self, it):
        total: collections.Counter = collections.Counter()
        for k, v in it:
            total[k] += v
        return iter(total.items())


class SortByCount:
    """Op: (value, count) pairs, most frequent first (frequencies(sort=True))."""

    def __call__(self, it):
        return iter(sorted(it, key=lambda kv: kv[1], reverse=True))


class UniqueRecords:
    """The first record of each key (the record itself when key is None): distinct()."""

    def __init__(self, key=None):
        self.key = key

    def __call__(self, it):
        seen: dict = {}
        key = self.key
        for x in it:
            k = x if key is None else key(x)
            try:
                if k not in seen:
                    seen[k] = x
            except TypeError:
                check_hashable(k, x, "distinct")
                raise
        return iter(seen.values())


def first(kv):
    """The key of a (key, value) record: how combiners' output is shuffled."""
    return kv[0]


def identity(x):
    """A record is its own key (distinct() without a key)."""
    return x


class GroupValues:
    """Reduce-side groupby: (key, [records]) per key, records in arrival order."""

    def __init__(self, key):
        self.key = key

    def __call__(self, it):
        groups: dict = collections.defaultdict(list)
        key = self.key
        for x in it:
            k = key(x)
            try:
                groups[k].append(x)
            except TypeError:
                check_hashable(k, x, "groupby")
                raise
        return iter(groups.items())


class PerPartition:
    """``perpartition(records)`` as one record (the first half of a reduction).

    ``as_list``: the function gets the partition as a list, as dask's
    ``reduction`` hands it a partition (so ``reduction(len, sum)`` works);
    graphwren's own halves take an iterator and hold no list.
    """

    def __init__(self, fn, as_list: bool = False):
        self.fn, self.as_list = fn, as_list

    def __call__(self, it):
        return iter([self.fn(list(it) if self.as_list else it)])


class Aggregate:
    """``aggregate(list of partials)`` as one record (the second half)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, it):
        return iter([self.fn(list(it))])


class TopKRecords:
    """The k largest records (by key, if given): topk()."""

    def __init__(self, k: int, key=None):
        self.k, self.key = k, key

    def __call__(self, it):
        if self.key is None:
            return iter(heapq.nlargest(self.k, it))
        key = self.key if callable(self.key) else (lambda x, k=self.key: x[k])
        return iter(heapq.nlargest(self.k, it, key=key))


class JoinBuckets:
    """Hash join of bucket i of two shuffled bags: yields (other, self) like dask."""

    def __init__(self, on_self, on_other):
        self.on_self, self.on_other = on_self, on_other

    def read(self, ctx):
        table = _join_table(ctx_records(ctx.input(1)), self.on_other)
        for part in ctx.input(0):
            for x in part:
                k = self.on_self(x)
                try:
                    matches = table.get(k, ())
                except TypeError:
                    check_hashable(k, x, "join")
                    raise
                yield from ((y, x) for y in matches)

    def __call__(self, ctx):
        return self.read(ctx)


class JoinBroadcast:
    """Join with a small in-memory collection shipped to every task."""

    def __init__(self, other: list, on_self, on_other):
        self.other, self.on_self, self.on_other = other, on_self, on_other

    def __call__(self, it):
        table = _join_table(self.other, self.on_other)
        on_self = self.on_self
        for x in it:
            k = on_self(x)
            try:
                matches = table.get(k, ())
            except TypeError:
                check_hashable(k, x, "join")
                raise
            yield from ((y, x) for y in matches)


def ctx_records(parts):
    return itertools.chain.from_iterable(parts)


def _join_table(records, key) -> dict:
    table: dict = collections.defaultdict(list)
    for y in records:
        k = key(y)
        try:
            table[k].append(y)
        except TypeError:
            check_hashable(k, y, "join")
            raise
    return table


# -- sinks: what a stage returns ---------------------------------------------------
class Collect:
    """The partition as a list."""

    def __call__(self, ctx, it) -> list:
        return list(it)


class HashBuckets:
    """Split records into ``ctx.nbuckets`` lists by a portable hash of their key."""

    def __init__(self, key: Callable | None = None, first: bool = False, op: str = "shuffle"):
        self.key, self.first, self.op = key, first, op

    def __call__(self, ctx, it) -> list[list]:
        n = ctx.nbuckets
        if self.first and type(it).__name__ == "Table":   # a traced combine's pair table
            from .pair_tables import split
            return split(it, n)
        buckets: list[list] = [[] for _ in range(n)]
        if n == 1:
            buckets[0].extend(it)
            return buckets
        if self.first:
            crc32 = zlib.crc32
            for kv in it:
                k = kv[0]
                h = crc32(k.encode("utf-8", "surrogatepass")) if type(k) is str else portable_hash(k)
                buckets[h % n].append(kv)
        else:
            key = self.key
            for x in it:
                k = key(x)
                try:
                    buckets[portable_hash(k) % n].append(x)
                except TypeError:
                    check_hashable(k, x, self.op)
                    raise
        return buckets


class SliceBuckets:
    """Cut a partition into contiguous slices, one per output partition (repartition)."""

    def __init__(self, targets: list[list[int]]):
        self.targets = targets  # input task -> the output partitions it feeds

    def __call__(self, ctx, it) -> list[list]:
        records = list(it)
        out = [[] for _ in range(ctx.nbuckets)]
        mine = self.targets[ctx.task]
        n = len(mine)
        for j, target in enumerate(mine):
            out[target] = records[len(records) * j // n: len(records) * (j + 1) // n]
        return out


class BagTask:
    """A fused bag stage: read, then every op in order, then the sink."""

    def __init__(self, read, ops: list, sink):
        self.read, self.ops, self.sink = read, list(ops), sink

    def __call__(self, ctx):
        it = self.read(ctx)
        for op in self.ops:
            bind = getattr(op, "for_task", None)   # ops that depend on their partition's index
            it = (bind(ctx.task) if bind is not None else op)(it)
        return self.sink(ctx, it)


def chain_ops(ops: Iterable[Callable]) -> Callable[[Iterable], Iterable]:
    """Compose ops into one function (used where a whole chain runs in one place)."""
    ops = list(ops)

    def run(it):
        for op in ops:
            it = op(it)
        return it
    return run
