"""Which leading ops of a read_text stage run as Arrow kernels, decided at plan time.

First the text kernels of tasks/columnar.py (``str.lower`` before a
``str.split``, word maps after it), then every op whose function traces
(logical/trace.py): ``map``, ``filter``, ``remove``, ``pluck``, and a
leading ``map(json.loads)`` that becomes Arrow's JSON reader. A traced
aggregate may end the run: reduceby/foldby's map-side combine when its
binop is a per-field first/last/sum/max/min (or ``acc + term`` from an int
``initial``), frequencies' count, distinct's first pass. The first op that
does not trace ends the run, and its reason is kept for explain().
"""
from __future__ import annotations

import dataclasses

from ..tasks import bag_ops as t
from ..tasks import columnar as col
from ..tasks import pair_tables as pt
from ..tasks import traced as tr
from ..tasks import traced_ops as tops
from .trace import Untraceable, trace


@dataclasses.dataclass
class ColumnarPlan:
    """A reader that replaces the source and the first ``k`` ops, and what explain() says of it."""

    reader: object
    k: int
    note: str


def plan(read, ops: list, op_labels: list[str]) -> ColumnarPlan | None:
    """The columnar reader for a read_text block and its ops (``op_labels``: how explain() names
    each op), or None when nothing would gain."""
    ops_n = col.normalize(ops)
    i, source = 0, "lines"
    while i < len(ops_n) and _kernel(ops_n[i], col._TEXT_MAPS):
        i += 1
    if i < len(ops_n) and type(ops_n[i]) is t.FlatMap and ops_n[i].fn is str.split:
        i, source = i + 1, "words"
        while i < len(ops_n) and _kernel(ops_n[i], col._WORD_MAPS) and col.plain_fn(ops_n[i]) is not len:
            i += 1
    else:
        i = 0
    text_ops, traced, notes, reason, j = ops_n[:i], [], [], "", i
    if source == "lines" and j < len(ops_n) and _is_json_loads(ops_n[j]):
        source, j = "json", j + 1
        notes.append("json.loads -> Arrow's JSON reader")
    while j < len(ops_n):
        try:
            op, note = traced_op(ops_n[j])
        except Untraceable as exc:
            reason = f"{_opname(ops_n[j])}: {exc}"
            break
        if op is None:
            break
        traced.append(op)
        notes.append(note)
        j += 1
    finish = None
    if j < len(ops_n) and not reason:
        try:
            finish, note = traced_finish(ops_n[j])
        except Untraceable as exc:
            reason = f"{_opname(ops_n[j])}: {exc}"
        if finish is not None:
            notes.append(note)
            j += 1
    json_out = source == "json" and finish is None and not any(isinstance(o, tops.TracedMap) for o in traced)
    if (not traced and finish is None and source != "json") or json_out:
        k = col.columnar_prefix(ops)     # the text kernels alone, as before tracing existed
        if not k:
            return _untraced(reason)
        return ColumnarPlan(col.ColumnarTextBlock(read, ops[:k]), k,
                            " [columnar: " + " | ".join(op_labels[:k]) + " as Arrow kernels]"
                            + (f" [python from {reason}]" if reason else ""))
    k = len(col._original_span(ops, j))
    fields = json_fields(traced, finish) if source == "json" else None
    reader = tops.TracedBlock(col.ColumnarTextBlock(read, text_ops), source, traced, finish, ops[:k], fields)
    kernels = op_labels[:len(col._original_span(ops, i))]
    note = " [columnar: " + " | ".join(kernels + notes) + "]"
    if reason:
        note += f" [python from {reason}]"
    return ColumnarPlan(reader, k, note)


def hand_pairs_as_table(reader) -> None:
    """Let a columnar reader whose aggregate feeds a combiners' shuffle emit a pair table."""
    finish = getattr(reader, "finish", None)
    if isinstance(finish, (tops.TracedCount, tops.TracedReduceBy)) or (
            isinstance(reader, col.ColumnarTextBlock) and reader.ops and type(reader.ops[-1]) is t.CountValues):
        reader.pairs_as_table = True


def plan_combine(read, op) -> ColumnarPlan | None:
    """The reduce side of frequencies/reduceby/foldby in Arrow (tasks/pair_tables.py), or None."""
    if type(op) is t.SumCounts:
        return ColumnarPlan(pt.CombinePairs(read.k, ("sum",), True, [op]), 1, " [columnar: sum of counts]")
    if type(op) is not t.CombineByKey:
        return None
    try:
        node = trace(op.combine, 2)
    except Untraceable as exc:
        return ColumnarPlan(read, 0, f" [python: combine: {exc}]")
    a, b = tr.Arg(0), tr.Arg(1)
    if op.initial is not t.no_default:
        if type(op.initial) is not int or _added_to(node, a) != b:
            return ColumnarPlan(read, 0, f" [python: combine {node} from {op.initial!r}]")
        reader = pt.CombinePairs(read.k, ("sum",), True, [op], initial=op.initial)
        return ColumnarPlan(reader, 1, f" [columnar: combine -> {op.initial} + sum]")
    if isinstance(node, tr.TupleOf):
        try:
            hows = tuple(_field_how(item, j) for j, item in enumerate(node.items))
        except Untraceable as exc:
            return ColumnarPlan(read, 0, f" [python: combine: {exc}]")
        desc = ", ".join(f"{how}(field {j})" for j, how in enumerate(hows))
        return ColumnarPlan(pt.CombinePairs(read.k, hows, False, [op]), 1, f" [columnar: combine -> {desc}]")
    how = _pair_how(node, a, b)
    if how not in ("sum", "max", "min"):
        return ColumnarPlan(read, 0, f" [python: combine {node}]")
    return ColumnarPlan(pt.CombinePairs(read.k, (how,), True, [op]), 1, f" [columnar: combine -> {how}]")


def json_fields(traced: list, finish) -> tuple | None:
    """The fields of the JSON records the ops read, while they are still the records; None when an
    op uses a record whole (then Arrow must build every column)."""
    nodes = []
    for op in traced:
        nodes.append(op.node)
        if isinstance(op, tops.TracedMap):
            break
    else:
        if isinstance(finish, tops.TracedReduceBy):
            nodes += [finish.key] + ([finish.term] if finish.term is not None else [])
            if finish.term is None:     # the accumulator is the record itself
                return None
        elif finish is not None:
            return None
    found: list = []
    for node in nodes:
        if not _fields_of(node, found):
            return None
    return tuple(dict.fromkeys(found)) or None


def _fields_of(node, found: list) -> bool:
    """Collect ``x[key]`` of the record into found; False if the record is used otherwise."""
    if isinstance(node, tr.Item) and node.obj == tr.Arg(0):
        if type(node.key) is not str:
            return False
        found.append(node.key)
        return True
    if node == tr.Arg(0):
        return False
    return all(_fields_of(c, found) for c in tr.children(node))


def _untraced(reason: str) -> ColumnarPlan | None:
    return None if not reason else ColumnarPlan(None, 0, f" [python: {reason}]")


def _kernel(op, table: dict) -> bool:
    fn = col.plain_fn(op)
    return col._hashable(fn) and fn in table


def _is_json_loads(op) -> bool:
    if type(op) is not t.Map or op.args or op.kwargs:
        return False
    try:
        return trace(op.fn, 1) == tr.Call("json.loads", (tr.Arg(0),))
    except Untraceable:
        return False


def _opname(op) -> str:
    names = {t.Map: "map", t.Filter: "filter", t.Remove: "remove", t.Pluck: "pluck",
             t.PartialReduceBy: "reduceby", t.CountValues: "frequencies", t.UniqueRecords: "distinct",
             t.TopKRecords: "topk"}
    return names.get(type(op), type(op).__name__)


def traced_op(op):
    """(TracedMap/TracedFilter, note) for a narrow op, (None, "") if it is no kind we trace."""
    kind = type(op)
    if kind is t.Map:
        if op.args or op.kwargs:
            raise Untraceable("extra arguments to the function")
        node = trace(op.fn, 1)
        return tops.TracedMap(node), f"map -> {node}"
    if kind in (t.Filter, t.Remove):
        node = trace(op.predicate, 1)
        return tops.TracedFilter(node, negate=kind is t.Remove), f"{'remove' if kind is t.Remove else 'filter'} {node}"
    if kind is t.Pluck:
        if op.default is not t.no_default:
            raise Untraceable("a default")   # missing fields: Arrow has nulls, Python the default
        keys = op.key if isinstance(op.key, list) else [op.key]
        if not all(tr.kind_of(k) in ("int", "str") for k in keys):
            raise Untraceable("keys that are not ints or strings")
        items = tuple(tr.Item(tr.Arg(0), k) for k in keys)
        node = tr.TupleOf(items) if isinstance(op.key, list) else items[0]
        return tops.TracedMap(node), f"pluck -> {node}"
    return None, ""


def traced_finish(op):
    """(aggregate, note) for an op that ends a traced run, (None, "") if it is no such op."""
    kind = type(op)
    if kind is t.CountValues:
        return tops.TracedCount(), "count"
    if kind is t.UniqueRecords and op.key is None:
        return tops.TracedDistinct(), "distinct"
    if kind is t.PartialReduceBy:
        return reduce_by(op)
    if kind is t.TopKRecords:
        key = None if op.key is None else trace(op.key, 1) if callable(op.key) else tr.Item(tr.Arg(0), op.key)
        return tops.TracedTopK(op.k, key), f"topk({op.k}{'' if key is None else f', by {key}'})"
    return None, ""


def reduce_by(op: t.PartialReduceBy):
    """The traced map side of reduceby/foldby, or Untraceable naming the part that is not."""
    key = trace(op.key, 1) if callable(op.key) else tr.Item(tr.Arg(0), op.key)
    node = trace(op.binop, 2)
    a, b = tr.Arg(0), tr.Arg(1)
    if op.initial is not t.no_default:
        init = op.initial
        if type(init) is not int or callable(init):
            raise Untraceable("an initial value that is not an int")
        term = _added_to(node, a)
        if term is None or 0 in tr.uses(term):
            raise Untraceable(f"a binop {node} that is not acc + f(record)")
        term = _rebind(term)
        return tops.TracedReduceBy(key, initial=init, term=term), f"{op.op} -> {init} + sum({term}) by {key}"
    if isinstance(node, tr.TupleOf):
        fields = tuple(_field_how(item, j) for j, item in enumerate(node.items))
        desc = ", ".join(f"{how}(field {j})" for j, how in enumerate(fields))
        return tops.TracedReduceBy(key, fields=fields), f"{op.op} -> {desc} by {key}"
    how = _pair_how(node, a, b)
    if how is None or how in ("first", "last"):
        raise Untraceable(f"the binop {node}")
    return tops.TracedReduceBy(key, how=how), f"{op.op} -> {how} by {key}"


def _field_how(item, j: int) -> str:
    how = _pair_how(item, tr.Item(tr.Arg(0), j), tr.Item(tr.Arg(1), j))
    if how is None:
        raise Untraceable(f"field {j} of the binop is {item}")
    return how


def _pair_how(node, a, b) -> str | None:
    """How ``node`` combines a and b: first, last, sum, max or min; None if none of these."""
    if node == a:
        return "first"
    if node == b:
        return "last"
    if isinstance(node, tr.BinOp) and node.op == "+" and {node.left, node.right} == {a, b}:
        return "sum"
    if isinstance(node, tr.Call) and node.name in ("max", "min") and set(node.args) == {a, b} and len(node.args) == 2:
        return node.name
    return None


def _added_to(node, acc):
    """``term`` if node is ``acc + term`` or ``term + acc``."""
    if isinstance(node, tr.BinOp) and node.op == "+":
        if node.left == acc:
            return node.right
        if node.right == acc:
            return node.left
    return None


def _rebind(node):
    """The term with the record, argument 1 of the binop, as argument 0."""
    if isinstance(node, tr.Arg):
        return tr.Arg(0)
    return tr.replace_children(node, _rebind)
