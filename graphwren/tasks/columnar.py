"""A columnar fast path for text: well-known builtins run as Arrow kernels.

A read_text chain that starts with ops like ``flat_map(str.split)``,
``map(str.lower)`` or ``map(len)`` (and may end in the map-side combine of
``frequencies``) can run on a block's whole text as Arrow compute kernels,
with no Python object per line or word. Without a split, line maps
(lower, upper, strip, len) run in Arrow when frequencies' count follows
them (``read_text(p).str.strip().frequencies()``). ``bag.str.lower()`` and
``.str.split().flatten()`` are recognised as the builtins they call.
Results must be *identical* to the Python path, so a block takes this path
only where the two provably agree: ASCII text without the separators ``\\x1c``-``\\x1f`` (which
``str.split()`` honours and Arrow's ASCII kernels do not); for lines, also
without ``\\r`` (a line end in Python's universal newlines). Any other block,
and every op after the recognised prefix, runs in Python as usual.
"""
from __future__ import annotations

import itertools
import operator
import re

from . import bag_ops as t
from . import pair_tables

_PY_ONLY_SEPARATORS = re.compile(rb"[\x1c-\x1f]")
_ASCII_CODECS = {"utf-8", "utf8", "ascii", "us-ascii", "latin-1", "latin1", "iso-8859-1"}

# Ops on the block's whole text (before it is split into words).
_TEXT_MAPS = {str.lower: "ascii_lower", str.upper: "ascii_upper"}
# Ops on each word after the split.
_WORD_MAPS = {str.lower: "ascii_lower", str.upper: "ascii_upper", str.strip: "ascii_trim_whitespace",
              len: "utf8_length"}


_METHODS = {"lower": str.lower, "upper": str.upper, "strip": str.strip, "split": str.split}


def plain_fn(op):
    """The builtin a plain Map applies (str.lower for map(str.lower) and for bag.str.lower()), else None."""
    if type(op) is not t.Map or op.args or op.kwargs:
        return None
    fn = op.fn
    if type(fn) is operator.methodcaller:   # bag.str.lower(): the same as str.lower on str records
        cls, args = fn.__reduce__()[:2]
        return _METHODS.get(args[0]) if cls is operator.methodcaller and len(args) == 1 else None
    return fn


def normalize(ops: list) -> list:
    """Ops with ``map(str.split) | flatten`` (bag.str.split().flatten()) read as ``flat_map(str.split)``."""
    out, i = [], 0
    while i < len(ops):
        if plain_fn(ops[i]) is str.split and i + 1 < len(ops) and type(ops[i + 1]) is t.Flatten:
            out.append(t.FlatMap(str.split))
            i += 2
            continue
        out.append(ops[i])
        i += 1
    return out


def columnar_prefix(ops: list) -> int:
    """How many leading ops the Arrow path can run: 0 if it does not apply (counted in ``ops`` as given)."""
    ops_n = normalize(ops)
    i = 0
    while i < len(ops_n) and _hashable(plain_fn(ops_n[i])) and plain_fn(ops_n[i]) in _TEXT_MAPS:
        i += 1
    if not (i < len(ops_n) and type(ops_n[i]) is t.FlatMap and ops_n[i].fn is str.split):
        return len(_original_span(ops, _line_prefix(ops_n)))
    i += 1
    while i < len(ops_n) and _hashable(plain_fn(ops_n[i])) and plain_fn(ops_n[i]) in _WORD_MAPS:
        word_kernel = plain_fn(ops_n[i]) is len
        i += 1
        if word_kernel:  # lengths are ints: only frequencies may follow
            break
    if i < len(ops_n) and type(ops_n[i]) is t.CountValues:
        i += 1
    # back to a count of the ops as given: a normalized split stands for two
    return len(_original_span(ops, i))


def _line_prefix(ops_n: list) -> int:
    """Line maps (lower, upper, strip, len) ending in frequencies' count, without a split: counted
    in Arrow with no Python string per line. Without the count there is nothing to gain: 0."""
    i = 0
    while i < len(ops_n) and _hashable(plain_fn(ops_n[i])) and plain_fn(ops_n[i]) in _WORD_MAPS:
        i += 1
        if plain_fn(ops_n[i - 1]) is len:
            break
    return i + 1 if i and i < len(ops_n) and type(ops_n[i]) is t.CountValues else 0


def _hashable(fn) -> bool:
    try:
        hash(fn)
    except TypeError:
        return False
    return fn is not None


def _original_span(ops: list, k: int) -> list:
    """The leading ops of ``ops`` that make up the first ``k`` normalized ops."""
    out, i, done = [], 0, 0
    while done < k and i < len(ops):
        if plain_fn(ops[i]) is str.split and i + 1 < len(ops) and type(ops[i + 1]) is t.Flatten:
            out += ops[i:i + 2]
            i += 2
        else:
            out.append(ops[i])
            i += 1
        done += 1
    return out


class ColumnarTextBlock:
    """Reader: a read_text block through its recognised prefix of ops, in Arrow when safe."""

    def __init__(self, reader, ops: list):
        self.reader, self.ops = reader, normalize(list(ops))
        self.pairs_as_table = False   # set by the planner when a pair-table-aware shuffle takes the counts

    def __call__(self, ctx):
        pieces = [(piece, *self.reader.raw(ctx, piece)) for piece in self.reader.pieces(ctx)]
        split = any(type(op) is t.FlatMap for op in self.ops)
        if not all(self.safe(data, lines=not split) for _, data, _ in pieces):
            lines = itertools.chain.from_iterable(self.reader.decode(ctx, *p) for p in pieces)
            return t.chain_ops(self.ops)(lines)
        if not split:
            return self._finish(self._line_maps(self.lines([data for _, data, _ in pieces])))
        # One Arrow pass over the split: a newline between pieces only ends a line, and every
        # recognised prefix splits on whitespace, so it changes no word.
        return self._finish(self.words(b"\n".join(data for _, data, _ in pieces)))

    def safe(self, data: bytes, lines: bool = False) -> bool:
        """Whether Arrow's ASCII kernels split ``data`` exactly as Python would."""
        # Lines: a \r would be a line end (universal newlines) that splitting on \n does not see.
        return (self.reader.encoding.lower() in _ASCII_CODECS and data.isascii()
                and _PY_ONLY_SEPARATORS.search(data) is None and not (lines and b"\r" in data))

    def lines(self, pieces: list[bytes]):
        """Each piece's lines as one Arrow array, each with its \n as Python keeps it."""
        import pyarrow as pa
        import pyarrow.compute as pc
        arrays = []
        for data in pieces:
            if not data:
                continue
            text = pa.array([data], pa.large_binary()).cast(pa.large_string())
            parts = pc.list_flatten(pc.split_pattern(text, "\n"))
            n = len(parts) - 1    # the last part follows the last \n: '' when the piece ends with one
            newline = pa.scalar("\n", pa.large_string())
            arrays.append(pc.binary_join_element_wise(parts.slice(0, n), newline, pa.scalar("", pa.large_string())))
            if not data.endswith(b"\n"):
                arrays.append(parts.slice(n))
        return pa.concat_arrays(arrays) if arrays else pa.array([], pa.large_string())

    def _line_maps(self, lines):
        import pyarrow.compute as pc
        for op in self.ops:
            if type(op) is t.CountValues:
                break
            lines = getattr(pc, _WORD_MAPS[plain_fn(op)])(lines)
        return lines

    def words(self, data: bytes):
        """The words of ``data`` after the prefix's text and word maps, as one Arrow array."""
        import pyarrow as pa
        import pyarrow.compute as pc
        text = pa.array([data], pa.large_binary()).cast(pa.large_string())
        ops = iter(self.ops)
        for op in ops:
            if type(op) is t.FlatMap:
                break
            text = getattr(pc, _TEXT_MAPS[plain_fn(op)])(text)
        words = pc.list_flatten(pc.ascii_split_whitespace(text))
        words = words.filter(pc.not_equal(words, ""))  # str.split() never yields ''
        for op in ops:
            if type(op) is t.CountValues:
                break
            words = getattr(pc, _WORD_MAPS[plain_fn(op)])(words)
        return words

    def _finish(self, values):
        """Counts if the prefix ends in frequencies' count (a pair table when the planner set
        ``pairs_as_table``), else the values as Python objects."""
        import pyarrow.compute as pc
        if self.ops and type(self.ops[-1]) is t.CountValues:
            counts = pc.value_counts(values)
            out = pair_tables.finish(counts.field(0), [counts.field(1)], scalar=True,
                                     table=self.pairs_as_table)
            return out if pair_tables.is_pair_table(out) else iter(out)
        return iter(values.to_pylist())
