"""Pair tables: a map-side combine's (key, value) pairs as one Arrow table, and their reducer.

A traced reduceby/foldby/frequencies can hand its shuffle a table
(column ``k``, then ``a`` for a scalar value or ``a0``..``aN`` for a tuple)
instead of a Python tuple per key: the shuffle sink cuts it into buckets
by the same hash the Python pairs would get (so pairs from blocks that ran
in Python meet the same reducer), and ``CombinePairs`` aggregates the
buckets in Arrow. Every other reader turns a pair table back into exactly
the pairs it stands for (``records``).
"""
from __future__ import annotations

import itertools
import zlib

from . import traced as tr
from .hashing import portable_hash

MARK = b"graphwren.pairs"


def finish(keys, values: list, scalar: bool, table: bool):
    """Aggregated keys and value columns as Python pairs, or (``table``) as a pair table."""
    import pyarrow as pa
    if table:
        names = ["a"] if scalar else [f"a{j}" for j in range(len(values))]
        layout = b"scalar" if scalar else b"tuple"
        return pa.table([keys, *values], names=["k", *names]).replace_schema_metadata({MARK: layout})
    out_keys = keys.to_pylist()
    if scalar:
        return list(zip(out_keys, values[0].to_pylist()))
    return list(zip(out_keys, zip(*(v.to_pylist() for v in values))))


def is_pair_table(part) -> bool:
    meta = getattr(getattr(part, "schema", None), "metadata", None)
    return bool(meta) and MARK in meta


def to_pairs(table) -> list:
    """The (key, value) pairs a pair table stands for."""
    values = [table.column(name) for name in table.column_names[1:]]
    return finish(table.column("k"), values, table.schema.metadata[MARK] == b"scalar", table=False)


def records(part):
    """A bucket's records: a pair table as its pairs, anything else as it is."""
    return to_pairs(part) if is_pair_table(part) else part


def split(table, n: int) -> list:
    """The table cut into ``n`` buckets by key, as HashBuckets(first=True) cuts the same pairs."""
    import numpy as np
    if n == 1:
        return [table]
    keys = table.column("k").to_pylist()
    crc32 = zlib.crc32
    bucket = np.fromiter(((crc32(k.encode("utf-8", "surrogatepass")) if type(k) is str else portable_hash(k)) % n
                          for k in keys), dtype=np.int64, count=len(keys))
    order = np.argsort(bucket, kind="stable")
    bounds = np.searchsorted(bucket[order], np.arange(n + 1))
    taken = table.take(order)
    return [taken.slice(bounds[i], bounds[i + 1] - bounds[i]) for i in range(n)]


class CombinePairs:
    """Reader: a reducer's buckets combined per key in Arrow when every bucket is a pair table.

    ``hows`` aggregates each value column ("sum", "first", "last", "max",
    "min"); ``initial`` is added to sums (foldby's combine_initial). When any
    bucket holds Python pairs (its map task ran in Python), or the values
    are outside what Arrow sums exactly, ``python_ops`` run on the pairs.
    """

    def __init__(self, k: int, hows: tuple, scalar: bool, python_ops: list, initial: int = 0):
        self.k, self.hows, self.scalar, self.initial = k, tuple(hows), scalar, initial
        self.python_ops = list(python_ops)

    def __call__(self, ctx):
        import pyarrow as pa
        parts = list(ctx.input(self.k))
        filled = [p for p in parts if len(p)]
        if filled and all(is_pair_table(p) for p in filled):
            try:
                return iter(self.combine(filled))
            except (tr.Unsupported, pa.ArrowException):
                pass
        pairs = itertools.chain.from_iterable(records(p) for p in parts)
        for op in self.python_ops:     # CombineByKey or SumCounts (bag_ops imports this module)
            pairs = op(pairs)
        return pairs

    def combine(self, tables: list) -> list:
        import pyarrow as pa
        import pyarrow.compute as pc
        layout = b"scalar" if self.scalar else b"tuple"
        if any(tb.schema.metadata[MARK] != layout or tb.num_columns != len(self.hows) + 1 for tb in tables):
            raise tr.Unsupported("buckets of another layout")
        # One schema, or ArrowInvalid: the types differ. Copied into fresh buffers: decoded IPC
        # buffers may be unaligned, which Arrow's group_by warns about.
        table = pa.concat_tables(tables)
        table = pa.table([pa.concat_arrays([*col.chunks, pa.array([], col.type)]) for col in table.columns],
                         schema=table.schema)
        keys = table.column("k").combine_chunks()
        if tr.kind_of(keys) == "float":
            raise tr.Unsupported("float keys")
        names = table.column_names[1:]
        n = table.num_rows
        for name, how in zip(names, self.hows):
            col = table.column(name).combine_chunks()
            kind = tr.kind_of(col)
            if how == "sum":
                if kind != "int":
                    raise tr.Unsupported(f"a sum of {kind}s")
                top = pc.max(pc.abs_checked(col)).as_py() if n else 0
                if abs(self.initial) + top * n > tr.INT64_MAX:
                    raise tr.Unsupported("a sum that could pass 64 bits")
            elif how in ("max", "min") and kind not in ("int", "str"):
                raise tr.Unsupported(f"{how} of {kind}s")
        out = table.group_by("k", use_threads=False).aggregate([(name, how) for name, how in zip(names, self.hows)])
        values = [out.column(f"{name}_{how}").combine_chunks() for name, how in zip(names, self.hows)]
        if self.initial:
            values = [pc.add_checked(v, self.initial) if how == "sum" else v for v, how in zip(values, self.hows)]
        return finish(out.column("k").combine_chunks(), values, self.scalar, table=False)
