"""Bag ops over traced expressions, run on a whole block as Arrow kernels.

``TracedBlock`` is the reader a planner puts in place of a read_text
source and the leading ops it could trace: the block's text becomes an
Arrow array of lines or words (``columnar.ColumnarTextBlock``) or, under
``json.loads``, a table (``JsonRows``); traced maps, filters and plucks
transform it; a traced aggregate (the map side of reduceby/foldby,
frequencies, distinct) may end it. Where the data steps outside what Arrow
reproduces exactly (``traced.Unsupported``, or Arrow refusing the input),
the block runs the original ops in Python instead, so the answer is the
Python path's, error messages included.
"""
from __future__ import annotations

import io
import itertools
import re

from . import bag_ops as t
from . import pair_tables as pt
from . import traced as tr


class TracedMap:
    """Op: the traced function's value for every record."""

    def __init__(self, node: tr.Node):
        self.node = node

    def apply(self, value, n: int):
        return tr.evaluate(self.node, (value,)), n


class TracedFilter:
    """Op: the records whose traced predicate is true (false with ``negate``: remove())."""

    def __init__(self, node: tr.Node, negate: bool = False):
        self.node, self.negate = node, negate

    def apply(self, value, n: int):
        import pyarrow.compute as pc
        mask = tr.evaluate(self.node, (value,))
        if not tr.is_array(mask) or tr.kind_of(mask) != "bool":
            raise tr.Unsupported("a predicate that is not a comparison")   # Python would use truthiness
        if self.negate:
            mask = pc.invert(mask)
        return select(value, mask), pc.sum(mask).as_py() or 0


def select(value, mask):
    """The records of ``value`` where ``mask`` is true."""
    if isinstance(value, tr.JsonRows):
        return tr.JsonRows(value.table.filter(mask), value.data)
    if tr.is_array(value):
        return value.filter(mask)
    if isinstance(value, tuple):
        return tuple(select(v, mask) for v in value)
    if isinstance(value, dict):
        return {k: select(v, mask) for k, v in value.items()}
    return value


# -- aggregates that end a traced chain: the partition's few records ------------------------
# Each returns the (key, value) pairs as Python objects, or with ``table`` as a pair table
# (tasks/pair_tables.py) that a columnar reducer combines without a Python object per pair.
class TracedCount:
    """frequencies()' map side: (value, count) in order of first appearance, as Counter gives them."""

    def finish(self, value, n: int, table: bool = False):
        import pyarrow.compute as pc
        value = _column(value, n)
        if tr.kind_of(value) == "float":   # NaN and -0.0 group by identity and equality in Python
            raise tr.Unsupported("counting floats")
        counts = pc.value_counts(value)
        return pt.finish(counts.field(0), [counts.field(1)], scalar=True, table=table)


class TracedDistinct:
    """distinct()'s map side: each value once, in order of first appearance."""

    def finish(self, value, n: int, table: bool = False) -> list:
        import pyarrow.compute as pc
        value = _column(value, n)
        if tr.kind_of(value) == "float":
            raise tr.Unsupported("distinct floats")
        return pc.unique(value).to_pylist()


class TracedTopK:
    """topk()'s map side: the k largest records (by a traced key), as heapq.nlargest orders them."""

    def __init__(self, k: int, key: tr.Node | None = None):
        self.k, self.key = k, key

    def finish(self, value, n: int, table: bool = False) -> list:
        import pyarrow.compute as pc
        keys = _column(value if self.key is None else tr.evaluate(self.key, (value,)), n)
        if tr.kind_of(keys) not in ("int", "str"):    # float NaN/-0.0 and bools: Python's own order
            raise tr.Unsupported("topk of these values")
        # nlargest(k) is sorted(reverse=True)[:k]: a stable sort, ties in arrival order
        order = pc.array_sort_indices(keys, order="descending")[: self.k]
        return tr.to_python(take(value, order), len(order))


def take(value, indices):
    """The records of ``value`` at ``indices``."""
    if tr.is_array(value):
        return value.take(indices)
    if isinstance(value, tuple):
        return tuple(take(v, indices) for v in value)
    if isinstance(value, dict):
        return {k: take(v, indices) for k, v in value.items()}
    if isinstance(value, tr.JsonRows):
        raise tr.Unsupported("whole json records")
    return value


class TracedReduceBy:
    """reduceby/foldby's map side: one (key, accumulator) per key, as PartialReduceBy gives them.

    ``fields`` says how each field of a tuple accumulator combines ("first",
    "last", "sum", "max", "min"); a scalar accumulator has one ``how``; with
    ``initial``, the accumulator is ``initial + sum(term(record))``.
    """

    def __init__(self, key: tr.Node, fields: tuple | None = None, how: str | None = None,
                 initial=t.no_default, term: tr.Node | None = None):
        self.key, self.fields, self.how, self.initial, self.term = key, fields, how, initial, term

    def finish(self, value, n: int, table: bool = False):
        import pyarrow.compute as pc
        keys = _column(tr.evaluate(self.key, (value,)), n)
        if tr.kind_of(keys) == "float":      # 0.0 == -0.0 and NaN != NaN: Python groups them its own way
            raise tr.Unsupported("float keys")
        if self.fields is not None:
            if not isinstance(value, tuple) or len(value) != len(self.fields):
                raise tr.Unsupported("records that are not tuples of the traced length")
            parts, hows = list(value), self.fields
        elif self.term is not None:
            parts, hows = [tr.evaluate(self.term, (value,))], ("sum",)
        else:
            parts, hows = [value], (self.how,)
        initial = 0 if self.term is None else self.initial
        for part, how in zip(parts, hows):
            _check_aggregate(part, how, n, initial)
        keys_out, accs = _group(keys, parts, hows)
        if self.term is not None and initial:
            accs = [pc.add_checked(accs[0], initial)]
        return pt.finish(keys_out, accs, scalar=self.fields is None, table=table)


def _group(keys, parts: list, hows: tuple) -> tuple:
    """The distinct keys in order of first appearance, and each part aggregated per key (arrays).

    A part that is the key itself (``(w, 1)`` grouped by ``w``) is the key in every
    group; a constant part needs only the group's count (``sum`` of 1 is the count):
    when every part is one of these, one value_counts does the grouping.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    is_key = [p is keys and how != "sum" for p, how in zip(parts, hows)]   # equal keys are identical here
    arrays = [j for j, p in enumerate(parts) if tr.is_array(p) and not is_key[j]]
    if not arrays:
        counts = pc.value_counts(keys)
        keys_out, count = counts.field(0), counts.field(1)
    else:
        table = pa.table({"k": keys, "n": pa.array(_ones(len(keys))),
                          **{f"f{j}": parts[j] for j in arrays}})
        out = table.group_by("k", use_threads=False).aggregate(
            [("n", "sum")] + [(f"f{j}", hows[j]) for j in arrays])
        keys_out, count = out.column("k").combine_chunks(), out.column("n_sum").combine_chunks()
        by_part = {j: out.column(f"f{j}_{hows[j]}").combine_chunks() for j in arrays}
    accs = []
    for j, (part, how) in enumerate(zip(parts, hows)):
        if j in arrays:
            accs.append(by_part[j])
        elif is_key[j]:
            accs.append(keys_out)
        elif how == "sum":
            accs.append(pc.multiply_checked(count, part))
        else:      # first, last, max or min of a constant
            accs.append(pa.array([part] * len(keys_out)))
    return keys_out, accs


def _ones(n: int):
    import numpy as np
    return np.ones(n, dtype=np.int64)


def _check_aggregate(col, how: str, n: int, initial) -> None:
    import pyarrow.compute as pc
    kind = tr.kind_of(col)
    if how == "sum":
        if kind != "int":      # float sums depend on the order of additions; bools sum to ints
            raise tr.Unsupported(f"a sum of {kind}s")
        if not tr.is_array(col):
            top = abs(col)
        else:
            top = pc.max(pc.abs_checked(col)).as_py() if len(col) else 0
        if abs(initial) + top * n > tr.INT64_MAX:   # Python's ints do not overflow; Arrow's sums wrap
            raise tr.Unsupported("a sum that could pass 64 bits")
    elif how in ("max", "min") and kind not in ("int", "str"):
        raise tr.Unsupported(f"{how} of {kind}s")


def _column(value, n: int):
    """A value that must be one array (a constant becomes one of n equal values)."""
    import pyarrow as pa
    if tr.is_array(value):
        return value
    if isinstance(value, (tuple, dict, tr.JsonRows)):
        raise tr.Unsupported("a record where a single value is needed")
    tr.kind_of(value)
    return pa.array([value] * n)


# -- the reader -----------------------------------------------------------------------
class TracedBlock:
    """Reader: a read_text block through traced ops in Arrow, or through ``python_ops`` in Python.

    ``source`` is "words" or "lines" (``text`` is the ColumnarTextBlock that
    makes them), or "json" (the lines parsed by Arrow's JSON reader, for a
    leading ``map(json.loads)``; ``json_fields`` are the only fields its ops read, if known).
    """

    def __init__(self, text, source: str, ops: list, finish, python_ops: list, json_fields: tuple | None = None):
        self.text, self.source, self.ops, self.finish = text, source, list(ops), finish
        self.python_ops, self.json_fields = list(python_ops), json_fields
        self.pairs_as_table = False   # set by the planner when a pair-table-aware shuffle takes the output

    def __call__(self, ctx):
        import pyarrow as pa
        pieces = [(piece, *self.text.reader.raw(ctx, piece)) for piece in self.text.reader.pieces(ctx)]
        try:
            out = self.run([data for _, data, _ in pieces])
            return out if pt.is_pair_table(out) else iter(out)
        except (tr.Unsupported, pa.ArrowException):
            lines = itertools.chain.from_iterable(self.text.reader.decode(ctx, *p) for p in pieces)
            return t.chain_ops(self.python_ops)(lines)

    def run(self, pieces: list[bytes]):
        """The block's output records (or a pair table), computed in Arrow; or Unsupported."""
        value = self._source(pieces)
        n = value.table.num_rows if isinstance(value, tr.JsonRows) else len(value)
        for op in self.ops:
            value, n = op.apply(value, n)
        if self.finish is not None:
            return self.finish.finish(value, n, table=self.pairs_as_table)
        return tr.to_python(value, n)

    def _source(self, pieces: list[bytes]):
        if self.source == "words":
            if not all(self.text.safe(data) for data in pieces):
                raise tr.Unsupported("text the Arrow kernels may split differently")
            return self.text.words(b"\n".join(pieces))
        # Lines of any UTF-8 text split alike (Arrow checks the UTF-8; the traced ops guard their
        # own kernels), but for \r: a line end in Python's universal newlines.
        if self.text.reader.encoding.lower() not in ("utf-8", "utf8") or any(b"\r" in data for data in pieces):
            raise tr.Unsupported("text that is not UTF-8 without \\r")
        if self.source == "json":
            # A piece's last line may lack its newline (the file's end): one joins it to the next.
            data = b"".join(p if p.endswith(b"\n") else p + b"\n" for p in pieces if p)
            return json_rows(data, self.json_fields)
        return self.text.lines(pieces)


def json_rows(data: bytes, fields: tuple | None = None) -> tr.JsonRows:
    """The lines of ``data`` parsed as json.loads would, by Arrow's reader: one object per line,
    or Unsupported.

    ``fields``: the only fields the traced ops read (None: any). Arrow then builds
    just those columns, typed as a sample of the first lines shows them; a row
    that disagrees with the sample's types makes it parse again, inferring all.
    """
    import pyarrow as pa
    body = data[:-1] if data.endswith(b"\n") else data     # no record after a final newline
    if not body:
        return tr.JsonRows(pa.table({}), b"")
    # json.loads("") and json.loads("  ") raise; Arrow's reader skips blank lines.
    first, last = body[:body.find(b"\n") + 1 or len(body)], body[body.rfind(b"\n") + 1:]
    if _BLANK_LINE.search(body) or not first.strip(b" \t\n") or not last.strip(b" \t"):
        raise tr.Unsupported("a blank line")
    table = None
    schema = _sampled_schema(data, fields) if fields else None
    if schema is not None:
        try:
            table = _read_json(data, schema, ignore_others=True)
        except pa.ArrowInvalid:
            table = None
    if table is None:
        table = _read_json(data)
        dated = [f.name for f in table.schema if _dated(f.type)]
        if dated:    # Arrow reads ISO dates as timestamps; json.loads keeps them as text
            table = _read_json(data, pa.schema([(name, pa.string()) for name in dated]))
    if table.num_rows != body.count(b"\n") + 1:
        raise tr.Unsupported("lines that are not one JSON object each")
    return tr.JsonRows(table, data)


_BLANK_LINE = re.compile(rb"\n[ \t]*\n")   # a blank line between two others (a literal start: fast)
_SAMPLE_BYTES = 64 * 1024


def _sampled_schema(data: bytes, fields: tuple):
    """The types of ``fields`` in the first lines of ``data``, or None if the sample lacks one."""
    import pyarrow as pa
    end = data.find(b"\n", _SAMPLE_BYTES)
    sample = _read_json(data if end < 0 else data[:end + 1])
    types = dict(zip(sample.schema.names, sample.schema.types))
    if not all(f in types and not pa.types.is_null(types[f]) for f in fields):
        return None
    return pa.schema([(f, pa.string() if _dated(types[f]) else types[f]) for f in fields])


def _dated(t) -> bool:
    import pyarrow as pa
    return pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t)


def _read_json(data: bytes, schema=None, ignore_others: bool = False):
    import pyarrow.json as pj
    # One thread: a worker runs beside as many workers as there are cores.
    parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore" if ignore_others else "infer")
    return pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(use_threads=False), parse_options=parse)
