"""What a worker runs for bag ops over several inputs or a task's place: zip, map over aligned bags,
product, concat, accumulate, random_sample, from_url.

Readers here take the task context (``reader(ctx) -> records``); ops with a
``for_task(i)`` method are bound to their partition's index by ``BagTask``.
"""
from __future__ import annotations

import itertools
import random
from typing import Iterator

from .bag_ops import no_default

#: Positional or keyword argument kinds of an aligned map: a bag's partition, an item's value, a constant.
BAG, ITEM, CONST = "bag", "item", "const"


class ReadAligned:
    """Reader: partition i of ``nbags`` bags (inputs 0..nbags-1) and the values of the items after them."""

    def __init__(self, nbags: int, nitems: int, combine):
        self.nbags, self.nitems, self.combine = nbags, nitems, combine

    def __call__(self, ctx) -> Iterator:
        parts = [itertools.chain.from_iterable(ctx.input(k)) for k in range(self.nbags)]
        values = [_item_value(ctx.input(self.nbags + k)) for k in range(self.nitems)]
        return self.combine(parts, values)


def _item_value(parts):
    """An Item's one value: the single record of its single partition."""
    for part in parts:
        for record in part:
            return record
    raise ValueError("an Item argument has no value")


class ZipRecords:
    """Combine: tuples of the bags' records, as ``zip`` (dask's bag.zip drops a longer partition's extra)."""

    def __call__(self, parts, values):
        return zip(*parts)


def _resolve(spec, parts, values, partitions: bool):
    """Each argument of ``spec`` as its bag partition, item value or constant.

    A bag used twice (``b.map(f, b)``) gets its own pass each time: its records are held once as a list.
    """
    uses = [sum(1 for kind, what in spec if kind == BAG and what == k) for k in range(len(parts))]
    held = {k: list(parts[k]) for k, n in enumerate(uses) if n > 1 and not isinstance(parts[k], list)}
    out = []
    for kind, what in spec:
        if kind == BAG:
            part = held.get(what, parts[what])
            out.append(iter(part) if not partitions and isinstance(part, list) else part)
        elif kind == ITEM:
            out.append(itertools.repeat(values[what]) if not partitions else values[what])
        else:
            out.append(itertools.repeat(what) if not partitions else what)
    return out


class AlignedMap:
    """Combine: ``fn(*args, **kwargs)`` per record position, arguments drawn from aligned bags, items, constants.

    As dask's ``map_chunk``: partitions of different lengths are an error.
    """

    def __init__(self, fn, args: list, kwargs: dict):
        self.fn, self.args, self.kwargs = fn, list(args), dict(kwargs)

    def __call__(self, parts, values):
        keys = list(self.kwargs)
        every = _resolve(self.args + [self.kwargs[k] for k in keys], parts, values, partitions=False)
        return self._run(every[:len(self.args)], keys, every[len(self.args):])

    def _run(self, iters, keys, kw_iters):
        fn, n = self.fn, len(iters)
        everything = [iter(i) for i in iters + kw_iters]
        while True:
            try:
                vals = [next(i) for i in everything]
            except StopIteration:
                _check_consumed(everything)
                return
            yield fn(*vals[:n], **dict(zip(keys, vals[n:])))


def _check_consumed(iters) -> None:
    for i in iters:
        if isinstance(i, itertools.repeat):
            continue
        for _ in i:
            raise ValueError("map called with bags whose partitions differ in length: every bag argument "
                             "must have the same number of records in each partition (dask's rule)")


class AlignedPartitions:
    """Combine: ``fn(partition, *args, **kwargs)`` once per partition index; bag arguments are lists."""

    def __init__(self, fn, args: list, kwargs: dict):
        self.fn, self.args, self.kwargs = fn, list(args), dict(kwargs)

    def __call__(self, parts, values):
        lists = [list(p) for p in parts]
        every = _resolve(self.args + list(self.kwargs.values()), lists, values, partitions=True)
        args, kwargs = every[:len(self.args)], dict(zip(self.kwargs, every[len(self.args):]))
        out = self.fn(*args, **kwargs)
        return iter(out) if out is not None else iter(())


class ReadProduct:
    """Reader: every (left, right) pair of one left partition and one right partition (inputs 0 and 1)."""

    def __call__(self, ctx) -> Iterator:
        left = list(itertools.chain.from_iterable(ctx.input(0)))
        right = list(itertools.chain.from_iterable(ctx.input(1)))
        return itertools.product(left, right)


class ReadAll:
    """Reader: the records of every input edge, edge after edge (concat: each task reads from one)."""

    def __init__(self, nedges: int):
        self.nedges = nedges

    def __call__(self, ctx) -> Iterator:
        return itertools.chain.from_iterable(itertools.chain.from_iterable(ctx.input(k))
                                             for k in range(self.nedges))


class AccumulateTask:
    """One task over every partition in order: itertools.accumulate, carried across partitions.

    Returns one bucket per input partition, so partition i of the result is
    partition i of the input accumulated (dask's layout). ``initial`` opens
    the first partition, as in dask.
    """

    def __init__(self, binop, initial=no_default):
        self.binop, self.initial = binop, initial

    def __call__(self, ctx) -> list[list]:
        out: list[list] = []
        carry = self.initial
        first = True
        for part in ctx.input(0):
            records = list(part)
            if first and carry is not no_default:
                acc = list(itertools.accumulate(records, self.binop, initial=carry))
            elif carry is not no_default:
                acc = list(itertools.accumulate(records, self.binop, initial=carry))[1:]
            else:
                acc = list(itertools.accumulate(records, self.binop))
            first = False
            if acc:
                carry = acc[-1]
            out.append(acc)
        return out + [[] for _ in range(ctx.nbuckets - len(out))]


class RandomSample:
    """Op: each record kept with probability ``prob``, partition i drawing from its own generator.

    The generators are dask's (``random_state_data_python``): numpy's
    ``default_rng(seed)`` gives 624 words of Mersenne Twister state per
    partition, block i for partition i, so the same ``random_state`` keeps
    the same records as dask on the same partitions.
    """

    def __init__(self, prob: float, seed: int):
        self.prob, self.seed = prob, seed
        self.task = 0

    def for_task(self, task: int) -> "RandomSample":
        bound = RandomSample(self.prob, self.seed)
        bound.task = task
        return bound

    def __call__(self, it):
        import numpy as np
        words = np.frombuffer(np.random.default_rng(self.seed).bytes(624 * 4 * (self.task + 1)), dtype=np.uint32)
        part = random.Random()
        part.setstate((3, tuple(words[-624:].tolist()) + (624,), None))
        prob, draw = self.prob, part.random
        return (x for x in it if draw() < prob)


class ReadURL:
    """Reader: the lines (bytes, with their newline) of URL i, as dask's from_url (urllib.request.urlopen)."""

    def __init__(self, urls: list[str]):
        self.urls = list(urls)

    def __call__(self, ctx) -> Iterator:
        import urllib.request
        url = self.urls[ctx.task]
        ctx.where = url
        with urllib.request.urlopen(url) as response:
            return iter(list(response))


class StarCall:
    """fn(*record, *args, **kwargs): starmap's call, as a function of the record (for aligned starmap)."""

    def __init__(self, fn, nargs: int = 0):
        self.fn, self.nargs = fn, nargs

    def __call__(self, record, *args, **kwargs):
        return self.fn(*record, *args, **kwargs)


def partition_nbytes(records) -> list[int]:
    """One partition's size in memory, as a one-record partition (what repartition(partition_size=) measures).

    dask's sizeof for a list: the list's own size plus each record's (sys.getsizeof, one level deep).
    """
    import sys
    records = list(records)
    return [sys.getsizeof(records) + sum(map(sys.getsizeof, records))]


class CollectTable:
    """Sink: the partition as one pyarrow Table (to_arrow), tables as they are, records via table_of_records."""

    takes_tables = True

    def __call__(self, ctx, data) -> list:
        import pyarrow as pa

        from .tables import table_of_records
        return [data if isinstance(data, pa.Table) else table_of_records(list(data), "to_arrow")]
