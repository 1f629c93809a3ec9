"""Sorting a bag, TeraSort style: sample, pick boundaries, range-partition, sort.

Records are ordered by ``(key, input partition, position)``. That order has
no ties, so boundaries may fall inside a run of equal keys (all-equal keys
still spread over every output partition) and the sort stays stable: equal
keys leave in the order they came in.

Four stages: every input partition draws a sample of keys (with its record
count as weight); one task picks the ``npartitions - 1`` weighted quantiles
as boundaries; every input partition sends each record to the bucket its
boundaries say (one object per map task); reduce task i sorts bucket i.

Each step has two implementations: over Python records (any comparable
keys, callables), and over Arrow tables when the key is a column, where
partitioning and sorting are Arrow sort kernels with no object per record.
"""
from __future__ import annotations

import bisect
import math
import operator
import random
import reprlib

import numpy as np

from ..errors import FieldError
from .describe import funcname

SAMPLES_PER_OUTPUT = 100       # samples drawn in all per output partition
MIN_SAMPLES, MAX_SAMPLES = 16, 10_000   # per input partition
_POSITION_BITS = 40            # columnar ties broken by partition << 40 | position
_NUMBERS = (int, float, bool)
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 80


def sample_size(n_in: int, n_out: int) -> int:
    return max(MIN_SAMPLES, min(MAX_SAMPLES, math.ceil(SAMPLES_PER_OUTPUT * n_out / n_in)))


def quantile_picks(weights: np.ndarray, n_out: int) -> np.ndarray:
    """Indices of the sorted samples that start output partitions 1..n_out-1."""
    if len(weights) == 0 or n_out == 1:
        return np.zeros(0, dtype=np.int64)
    cum = np.cumsum(weights)
    targets = cum[-1] * np.arange(1, n_out) / n_out
    return np.minimum(np.searchsorted(cum, targets, side="right"), len(weights) - 1)


def describe_key(key) -> str:
    if key is None:
        return "record"
    if callable(key):
        return funcname(key)
    return repr(key)


# -- Python records -----------------------------------------------------------------------
def keys_of(records: list, key) -> list:
    """key(record) for every record; a missing field names the record that lacks it."""
    if key is None:
        return records
    if callable(key):
        return list(map(key, records))
    try:
        return list(map(operator.itemgetter(key), records))
    except (KeyError, IndexError, TypeError):
        for record in records:
            try:
                record[key]
            except (KeyError, IndexError, TypeError):
                raise FieldError(f"sort: record {_short.repr(record)} has no field {key!r}") from None
        raise


class _Clash(Exception):
    """Two keys that cannot be compared (raised inside a sort to find which pair)."""

    def __init__(self, pair, exc):
        super().__init__(pair, exc)
        self.pair, self.exc = pair, exc


class _Probe:
    """A key that names itself when a comparison with it fails."""

    __slots__ = ("key", "index")

    def __init__(self, key, index: int):
        self.key, self.index = key, index

    def __lt__(self, other):
        try:
            return self.key < other.key
        except TypeError as exc:
            raise _Clash((self.index, other.index), exc) from None


def clashing_pair(keys: list, reverse: bool = False):
    """((i, j), error) for the two keys whose comparison fails when sorting ``keys``, or None."""
    try:
        sorted((_Probe(k, i) for i, k in enumerate(keys)), reverse=reverse)
    except _Clash as clash:
        return clash.pair, clash.exc
    return None


def incomparable_error(exc: TypeError, what_a: str, what_b: str, key) -> TypeError:
    """The error naming two things that do not order; a hint when records themselves were compared."""
    hint = "; pass key= to sort records that do not order" if key is None else ""
    return TypeError(f"sort: cannot order {what_a} and {what_b} ({exc}){hint}")


def _about(records: list, keys: list, i: int, key) -> str:
    if key is None:
        return _short.repr(records[i])
    return f"the key {_short.repr(keys[i])} of {_short.repr(records[i])}"


def check_comparable(records: list, keys: list, key) -> None:
    """Raise naming two records whose keys are of types that never order (cheap: one per type)."""
    first_of_type: dict = {}
    for i, k in enumerate(keys):
        first_of_type.setdefault(type(k), i)
    if len(first_of_type) < 2 or all(issubclass(k, _NUMBERS) for k in first_of_type):
        return
    found = clashing_pair([keys[i] for i in first_of_type.values()])
    if found is not None:
        (a, b), exc = found
        i, j = list(first_of_type.values())[a], list(first_of_type.values())[b]
        raise incomparable_error(exc, _about(records, keys, i, key), _about(records, keys, j, key), key)


def sort_records(records: list, key, reverse: bool) -> list:
    keys = keys_of(records, key)
    try:
        order = sorted(range(len(records)), key=keys.__getitem__, reverse=reverse)
    except TypeError:
        found = clashing_pair(keys, reverse)
        if found is None:
            raise
        (i, j), exc = found
        raise incomparable_error(exc, _about(records, keys, i, key), _about(records, keys, j, key), key) from None
    return [records[i] for i in order]


class SampleKeys:
    """Sink of the sample stage: (record count, [(key, partition, position), ...])."""

    def __init__(self, key, size: int):
        self.key, self.size = key, size

    def __call__(self, ctx, it) -> list:
        records = list(it)
        keys = keys_of(records, self.key)
        check_comparable(records, keys, self.key)
        picks = sorted(random.Random(ctx.task).sample(range(len(records)), min(len(records), self.size)))
        return [(len(records), [(keys[i], ctx.task, i) for i in picks])]


class PickBoundaries:
    """Stage function of the one-task boundaries stage: weighted quantiles of every sample."""

    def __init__(self, n_out: int, reverse: bool, key=None):
        self.n_out, self.reverse, self.key = n_out, reverse, key

    def __call__(self, ctx) -> list:
        samples, weights = [], []
        for count, sample in (record for part in ctx.input(0) for record in part):
            if not sample:
                continue
            samples += sample
            weights += [count / len(sample)] * len(sample)
        try:
            order = sorted(range(len(samples)), key=lambda s: samples[s][0], reverse=self.reverse)
        except TypeError:
            found = clashing_pair([s[0] for s in samples], self.reverse)
            if found is None:
                raise
            (i, j), exc = found
            raise incomparable_error(exc, self._about(samples[i]), self._about(samples[j]), self.key) from None
        # samples arrive in (partition, position) order, and sorted() is stable: ties stay in that order
        chosen = [samples[order[p]] for p in quantile_picks(np.array([weights[o] for o in order]), self.n_out)]
        chosen.sort(key=operator.itemgetter(0))  # ascending keys for bisect; stable keeps the tie order
        return [chosen]


    @staticmethod
    def _about(sample) -> str:
        key, partition, position = sample
        return f"key {_short.repr(key)} (input partition {partition}, record {position})"


class RangeBuckets:
    """Sink of the map stage: each record to the bucket its (key, partition, position) falls in."""

    def __init__(self, key, reverse: bool, boundaries_input: int):
        self.key, self.reverse, self.boundaries_input = key, reverse, boundaries_input

    def __call__(self, ctx, it) -> list[list]:
        (bounds,), = ctx.input(self.boundaries_input)
        records = list(it)
        buckets: list[list] = [[] for _ in range(ctx.nbuckets)]
        if not bounds:
            buckets[0] = records
            return buckets
        keys = keys_of(records, self.key)
        bound_keys = [b[0] for b in bounds]
        bound_places = [(b[1], b[2]) for b in bounds]
        nb, task, reverse = len(bounds), ctx.task, self.reverse
        left, right = bisect.bisect_left, bisect.bisect_right
        try:
            for i, k in enumerate(keys):
                lo = left(bound_keys, k)
                hi = right(bound_keys, k, lo)
                j = nb - hi if reverse else lo
                if hi > lo:  # equal keys among the boundaries: place by (partition, position)
                    j += right(bound_places, (task, i), lo, hi) - lo
                buckets[j].append(records[i])
        except TypeError:
            for b, bound in enumerate(bound_keys):  # record i is the one that failed: against which bound?
                try:
                    keys[i] < bound  # noqa: B015 - the comparison is the test
                    bound < keys[i]  # noqa: B015
                except TypeError as exc:
                    raise incomparable_error(exc, _about(records, keys, i, self.key),
                                             PickBoundaries._about(bounds[b]), self.key) from None
            raise
        return buckets


class SortRecords:
    """Op of the reduce stage: one bucket, stably sorted."""

    def __init__(self, key, reverse: bool):
        self.key, self.reverse = key, reverse

    def __call__(self, it):
        return iter(sort_records(list(it), self.key, self.reverse))


# -- Arrow tables ---------------------------------------------------------------------------
def _order(reverse: bool) -> str:
    return "descending" if reverse else "ascending"


def key_column(table, column: str, ctx):
    """The key column as one array; a missing column or a null names the file and row."""
    if column not in table.column_names:
        raise FieldError(f"sort: {ctx.where or f'input partition {ctx.task}'} has no column {column!r}; "
                         f"its columns are {table.column_names}")
    array = table.column(column).combine_chunks()
    if array.null_count:
        import pyarrow.compute as pc
        row = pc.index(pc.is_null(array), True).as_py()
        raise ValueError(f"sort: record {row} of {ctx.where or f'input partition {ctx.task}'} has a null "
                         f"{column!r}; nulls cannot be ordered, filter them out first")
    return array


def _places(task: int, n: int) -> np.ndarray:
    return (np.int64(task) << _POSITION_BITS) + np.arange(n, dtype=np.int64)


class SampleColumn:
    """Sink of the columnar sample stage: a table of sampled keys, places and weights."""

    takes_tables = True

    def __init__(self, column: str, size: int):
        self.column, self.size = column, size

    def __call__(self, ctx, table):
        import pyarrow as pa
        keys = key_column(table, self.column, ctx)
        n = len(keys)
        m = min(n, self.size)
        picks = np.sort(np.random.default_rng(ctx.task).choice(n, m, replace=False)) if m else np.zeros(0, np.int64)
        return pa.table({"k": keys.take(picks), "s": _places(ctx.task, n)[picks],
                         "w": np.full(m, n / m if m else 0.0)})


class PickColumnBoundaries:
    """Stage function of the columnar boundaries stage: one table of boundaries in sort order."""

    def __init__(self, column: str, n_out: int, reverse: bool):
        self.column, self.n_out, self.reverse = column, n_out, reverse

    def __call__(self, ctx):
        import pyarrow as pa
        try:
            samples = pa.concat_tables(list(ctx.input(0)), promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise TypeError(f"sort: the key column {self.column!r} has types that cannot be ordered "
                            f"together in different input partitions ({exc})") from None
        samples = samples.sort_by([("k", _order(self.reverse)), ("s", "ascending")])
        picks = quantile_picks(samples.column("w").to_numpy(), self.n_out)
        return samples.select(["k", "s"]).take(picks)


def numpy_keys(array, reverse: bool):
    """The keys as a numpy array whose ascending order is the sort order, or None.

    numpy sorts these faster than Arrow's generic comparator, and its stable
    sort merges presorted runs in near-linear time (the reduce side gets one
    sorted run per map task). Numbers (without NaN), and byte/text keys
    padded to one width when padding cannot change their order, qualify.
    """
    import pyarrow.types as pt
    kind = array.type
    if pt.is_integer(kind) or pt.is_floating(kind) or pt.is_boolean(kind):
        keys = array.to_numpy(zero_copy_only=False)
        if keys.dtype.kind == "f" and np.isnan(keys).any():
            return None
        return (-keys if keys.dtype.kind == "f" else ~keys) if reverse else keys
    keys = _fixed_width_bytes(array)
    if keys is None or not reverse:
        return keys
    return (255 - keys.view(np.uint8)).view(keys.dtype)  # complemented bytes order backwards


_MAX_PAD = 64


def _fixed_width_bytes(array):
    """Byte/text values as numpy 'S<width>' in the same order, or None where padding is unsafe."""
    import pyarrow.types as pt
    kind, n = array.type, len(array)
    if pt.is_fixed_size_binary(kind):
        width = kind.byte_width
        data = np.frombuffer(array.buffers()[1], np.uint8)[array.offset * width:(array.offset + n) * width]
        return data.view(f"S{max(width, 1)}") if width else np.zeros(n, "S1")
    if pt.is_binary(kind) or pt.is_string(kind):
        offset_type = np.int32
    elif pt.is_large_binary(kind) or pt.is_large_string(kind):
        offset_type = np.int64
    else:
        return None
    offsets = np.frombuffer(array.buffers()[1], offset_type)[array.offset:array.offset + n + 1].astype(np.int64)
    data = np.frombuffer(array.buffers()[2], np.uint8) if array.buffers()[2] is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    width = int(lengths.max()) if n else 0
    if width == 0:
        return np.zeros(n, "S1")
    if lengths.min() == width:  # one length: the bytes as they lie, no copy
        return data[offsets[0]:offsets[-1]].view(f"S{width}")
    # b"a" < b"a\0" but both pad to b"a\0": padding is exact only if no value ends in a zero byte
    if width > _MAX_PAD or (data[offsets[1:][lengths > 0] - 1] == 0).any():
        return None
    padded = np.zeros((n, width), np.uint8)
    starts = np.repeat(np.arange(n, dtype=np.int64) * width - offsets[:-1], lengths)
    padded.reshape(-1)[starts + np.arange(offsets[0], offsets[-1])] = data[offsets[0]:offsets[-1]]
    return padded.view(f"S{width}").reshape(n)


def _bound_keys(bounds, keys, ctx, column):
    import pyarrow as pa
    try:
        return bounds.column("k").combine_chunks().cast(keys.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise TypeError(f"sort: the key column {column!r} of {ctx.where} ({keys.type}) cannot be ordered "
                        f"with the keys of other partitions ({bounds.column('k').type}): {exc}") from None


class RangeColumnBuckets:
    """Sink of the columnar map stage: the partition sorted, and cut at the boundaries.

    A record goes after every boundary at or before its (key, place), so
    each bucket is a slice of the sorted partition; reducers then merge
    sorted runs.
    """

    takes_tables = True

    def __init__(self, column: str, reverse: bool, boundaries_input: int):
        self.column, self.reverse, self.boundaries_input = column, reverse, boundaries_input

    def __call__(self, ctx, table):
        import pyarrow as pa
        keys = key_column(table, self.column, ctx)
        (bounds,) = ctx.input(self.boundaries_input)
        bound_keys = _bound_keys(bounds, keys, ctx, self.column)
        both = numpy_keys(pa.concat_arrays([bound_keys, keys]), self.reverse)
        if both is None:
            order, cuts = self._arrow_cuts(ctx, keys, bound_keys, bounds.column("s").to_numpy())
        else:
            order, cuts = self._numpy_cuts(ctx, both, bounds.column("s").to_numpy())
        ordered = table.take(order)
        return [ordered.slice(cuts[j], cuts[j + 1] - cuts[j]) for j in range(ctx.nbuckets)]

    def _numpy_cuts(self, ctx, both, bound_places):
        nb = len(bound_places)
        bound_keys, keys = both[:nb], both[nb:]
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        lo = np.searchsorted(ordered, bound_keys, "left")
        hi = np.searchsorted(ordered, bound_keys, "right")
        cuts = lo.copy()
        for j in np.flatnonzero(hi > lo):  # records with a boundary's key: order by place
            places = (np.int64(ctx.task) << _POSITION_BITS) + order[lo[j]:hi[j]]
            cuts[j] += np.searchsorted(places, bound_places[j], "left")
        return order, np.concatenate([[0], cuts, np.full(ctx.nbuckets - nb, len(keys))])

    def _arrow_cuts(self, ctx, keys, bound_keys, bound_places):
        """Any Arrow-sortable key: one sort of boundaries and records together by (key, place)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        nb, n = len(bound_keys), len(keys)
        both = pa.table({"k": pa.concat_arrays([bound_keys, keys]),
                         "s": np.concatenate([bound_places, _places(ctx.task, n)]),
                         "r": np.concatenate([np.zeros(nb, np.int8), np.ones(n, np.int8)])})
        order = pc.sort_indices(both, [("k", _order(self.reverse)), ("s", "ascending"),
                                       ("r", "ascending")]).to_numpy()
        is_bound = order < nb
        bucket = np.cumsum(is_bound)[~is_bound]  # boundaries at or before each record
        cuts = np.searchsorted(bucket, np.arange(ctx.nbuckets + 1))
        cuts[-1] = n
        return order[~is_bound] - nb, cuts


class SortTables:
    """Reader of the columnar reduce stage: bucket i from every map task, one stable sort."""

    def __init__(self, column: str, reverse: bool):
        self.column, self.reverse = column, reverse

    def __call__(self, ctx):
        import pyarrow as pa
        import pyarrow.compute as pc
        table = pa.concat_tables(list(ctx.input(0)), promote_options="permissive")
        # stable sorts, and the pieces arrive in input-partition order: ties keep it
        keys = numpy_keys(table.column(self.column).combine_chunks(), self.reverse)
        if keys is not None:
            return table.take(np.argsort(keys, kind="stable"))
        return table.take(pc.sort_indices(table, [(self.column, _order(self.reverse))]))
