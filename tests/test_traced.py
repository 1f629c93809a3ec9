"""Traced user functions as Arrow kernels (issue 18): the same records as the Python path, always.

Block-level tests run one read_text block through the columnar reader the
planner chose and through the original ops in Python, on random data, and
require identical results (values, types, order) or the same exception.
End-to-end tests check the wiring: explain() names the choice, and a job
gives the Python path's answer with ``columnar=False``.
"""
from __future__ import annotations

import itertools
import json
import math
import operator
import pathlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphwren as gw
from graphwren.logical import columnar_plan
from graphwren.logical.trace import Untraceable, trace
from graphwren.tasks import bag_ops as t
from graphwren.tasks import traced as tr
from graphwren.tasks import traced_ops as tops
from graphwren.tasks.text_io import ReadTextBlock

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
LIMIT = 3


class Ctx:
    """The little of a task context a reader uses."""

    task, where = 0, ""


def block(tmp_path: pathlib.Path, data: bytes) -> ReadTextBlock:
    path = tmp_path / "block.txt"
    path.write_bytes(data)
    return ReadTextBlock([[("file:///", str(path).lstrip("/"), 0, len(data), None)]], "utf-8", "strict")


def outcome(fn):
    try:
        return "ok", fn()
    except Exception as exc:   # the exception is part of the answer: same type, same message
        return "raised", (type(exc), str(exc))


def same(a, b) -> bool:
    """Equal including types and float signs/NaN, element by element."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def run_both(tmp_path, data: bytes, ops: list) -> tuple:
    """(columnar outcome, python outcome, whether the Arrow path ran without falling back)."""
    read = block(tmp_path, data)
    chosen = columnar_plan.plan(read, ops, [type(o).__name__ for o in ops])
    assert chosen is not None and chosen.k == len(ops), chosen and chosen.note
    python = outcome(lambda: list(t.chain_ops(ops)(read(Ctx()))))
    columnar = outcome(lambda: list(t.chain_ops(ops[chosen.k:])(chosen.reader(Ctx()))))
    arrow = False
    if isinstance(chosen.reader, tops.TracedBlock):
        try:
            chosen.reader.run([data])
            arrow = True
        except Exception:
            pass
    return columnar, python, arrow


# -- the tracer -------------------------------------------------------------------
K = 3


def test_traces_the_shapes_users_write():
    assert trace(lambda w: (w, 1), 1) == tr.TupleOf((tr.Arg(0), tr.Const(1)))
    assert trace(lambda kv: kv[0], 1) == tr.Item(tr.Arg(0), 0)
    assert trace(lambda a, b: (a[0], a[1] + b[1]), 2) == tr.TupleOf(
        (tr.Item(tr.Arg(0), 0), tr.BinOp("+", tr.Item(tr.Arg(0), 1), tr.Item(tr.Arg(1), 1))))
    assert trace(lambda r: r["x"] > K, 1) == tr.Compare(">", tr.Item(tr.Arg(0), "x"), tr.Const(3))
    assert trace(operator.add, 2) == tr.BinOp("+", tr.Arg(0), tr.Arg(1))
    assert trace(max, 2) == tr.Call("max", (tr.Arg(0), tr.Arg(1)))
    assert trace(operator.itemgetter("u", "v"), 1) == tr.TupleOf((tr.Item(tr.Arg(0), "u"), tr.Item(tr.Arg(0), "v")))
    assert trace(json.loads, 1) == trace(lambda line: json.loads(line), 1) == tr.Call("json.loads", (tr.Arg(0),))
    assert trace(lambda w: len(w.lower()), 1) == tr.Call("len", (tr.Call("lower", (tr.Arg(0),)),))

    def local_names(r):
        x = r["a"]
        return {"u": x, "n": -x}
    assert trace(local_names, 1) == tr.DictOf(("u", "n"), (tr.Item(tr.Arg(0), "a"), tr.Neg(tr.Item(tr.Arg(0), "a"))))


SEEN: list = []


def helper(x):
    return x


@pytest.mark.parametrize("fn, reason", [
    (lambda x: x if x else 1, "a branch"),
    (lambda x: x and 1, "a branch"),
    (lambda x: SEEN.append(x), "append"),
    (lambda x: print(x), "print"),
    (lambda x: helper(x), "helper"),
    (lambda x: str(x), "'str'"),
    (lambda x: x // 2, "//"),
    (lambda x: [x], "a list"),
    (lambda x: x.__class__, "__class__"),
    (lambda x: [y for y in x], "nested function"),
    (lambda x: f"{x}", "f-string"),
], ids=["ternary", "and", "side effect", "print", "unknown function", "str()", "floordiv", "list",
        "dunder", "comprehension", "f-string"])
def test_refuses_what_it_cannot_prove_with_the_reason(fn, reason):
    with pytest.raises(Untraceable, match=reason):
        trace(fn, 1)
    assert SEEN == []     # tracing ran nothing with side effects


def test_refuses_closures_over_objects_and_generators():
    table = {"a": 1}
    with pytest.raises(Untraceable, match="closure variable 'table'"):
        trace(lambda x: table[x], 1)

    def gen(x):
        yield x
    with pytest.raises(Untraceable, match="generator"):
        trace(gen, 1)


# -- the block-level equivalence ---------------------------------------------------
users = st.sampled_from(["ann", "bob", "Émile", "zoë", "u1", "BOB", " sp "]) | st.text(max_size=6)
scores = (st.integers(-10, 10) | st.integers(-(2 ** 70), 2 ** 70) | st.floats(allow_nan=True)
          | st.sampled_from([0.0, -0.0, 2.0 ** 60, 1.5]) | st.none() | st.booleans() | st.text(max_size=3))
plain_scores = st.integers(-10, 10) | st.sampled_from([0.5, -0.0, 2.5])
record = st.fixed_dictionaries({"user": users}, optional={"score": scores, "ts": st.just("2026-12-01")})
plain_record = st.fixed_dictionaries({"user": st.sampled_from(["ann", "bob", "u1", "Émile"]), "score": plain_scores})


def json_lines(records, ensure_ascii=True, blank=False) -> bytes:
    lines = [json.dumps(r, ensure_ascii=ensure_ascii) for r in records]
    if blank and lines:
        lines.insert(len(lines) // 2, "")
    return ("\n".join(lines) + "\n").encode() if lines else b""


PIPELINES = {
    "filter-map-reduceby": [t.Map(json.loads), t.Filter(lambda r: r["score"] > LIMIT),
                            t.Map(lambda r: (r["user"], 1)),
                            t.PartialReduceBy(lambda kv: kv[0], lambda a, b: (a[0], a[1] + b[1]))],
    "max-by-user": [t.Map(json.loads), t.Map(lambda r: (r["user"], r["score"])),
                    t.PartialReduceBy(lambda kv: kv[0], lambda a, b: (a[0], max(a[1], b[1])))],
    "pluck-frequencies": [t.Map(json.loads), t.Pluck("user"), t.CountValues()],
    "arithmetic": [t.Map(json.loads), t.Map(lambda r: r["score"] * 2 + 1)],
    "division": [t.Map(json.loads), t.Remove(lambda r: r["score"] / 2 >= 1.5), t.Pluck(["user", "score"])],
    "dict-out": [t.Map(json.loads), t.Map(lambda r: {"u": r["user"].lower(), "n": len(r["user"])})],
    "foldby-sum": [t.Map(json.loads), t.PartialReduceBy(lambda r: r["user"], lambda acc, r: acc + r["score"], 0)],
    "distinct": [t.Map(json.loads), t.Pluck("user"), t.UniqueRecords()],
    "topk-by-score": [t.Map(json.loads), t.Map(lambda r: (r["user"], r["score"])), t.TopKRecords(3, lambda kv: kv[1])],
    "topk-users": [t.Map(json.loads), t.Pluck("user"), t.TopKRecords(4)],
    "scalar-sum": [t.Map(json.loads), t.Map(lambda r: (r["score"] > 0, r["score"])),
                   t.PartialReduceBy(lambda kv: kv[0], lambda a, b: (a[0], a[1] + b[1]))],
}


@pytest.mark.parametrize("name", sorted(PIPELINES))
@FAST
@given(records=st.lists(record, max_size=25), ensure_ascii=st.booleans(), blank=st.booleans())
def test_json_pipelines_match_python(tmp_path, name, records, ensure_ascii, blank):
    columnar, python, _ = run_both(tmp_path, json_lines(records, ensure_ascii, blank), PIPELINES[name])
    assert columnar[0] == python[0], (columnar, python)
    assert same(columnar[1], python[1]) if columnar[0] == "ok" else columnar[1] == python[1]


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_plain_json_data_takes_the_arrow_path(tmp_path, name):
    """Clean data (ints, text ASCII or not) must not fall back: the point is speed. (Only str methods
    such as lower() need ASCII: Python's and Arrow's Unicode case tables may differ.)"""
    who = ["ann", "bob", "Emile" if name == "dict-out" else "Émile", "ann"]
    records = [{"user": u, "score": s} for u, s in zip(who * 5, [1, 7, 4, 9, -2] * 4)]
    columnar, python, arrow = run_both(tmp_path, json_lines(records, ensure_ascii=False), PIPELINES[name])
    assert columnar == python or same(columnar[1], python[1])
    assert arrow


words = st.lists(st.sampled_from(["a", "bb", "Ab", "zz", "é", "a\u3000b", "x\x1fy", "\t", "\r", "10"]), max_size=40)

TEXT_PIPELINES = {
    "word-lengths": [t.FlatMap(str.split), t.Map(lambda w: (w, len(w))),
                     t.PartialReduceBy(lambda kv: kv[0], lambda a, b: (a[0], a[1] + b[1]))],
    "wordcount-reduceby": [t.FlatMap(str.split), t.Map(lambda w: (w, 1)),
                           t.PartialReduceBy(operator.itemgetter(0), lambda a, b: (a[0], a[1] + b[1]))],
    "lines": [t.Map(str.strip), t.Filter(lambda line: line.startswith("a")), t.Map(lambda line: line.upper() + "!")],
    "lower-distinct": [t.FlatMap(str.split), t.Map(lambda w: w.lower()), t.UniqueRecords()],
}


@pytest.mark.parametrize("name", sorted(TEXT_PIPELINES))
@FAST
@given(text=st.lists(words, max_size=6))
def test_text_pipelines_match_python(tmp_path, name, text):
    data = "\n".join(" ".join(line) for line in text).encode()
    columnar, python, _ = run_both(tmp_path, data, TEXT_PIPELINES[name])
    assert columnar[0] == python[0] == "ok"
    assert same(columnar[1], python[1]), (columnar, python)


def test_sums_beyond_64_bits_fall_back_to_exact_python(tmp_path):
    records = [{"user": "a", "score": 2 ** 62}] * 4
    columnar, python, arrow = run_both(tmp_path, json_lines(records), PIPELINES["foldby-sum"])
    assert columnar == python == ("ok", [("a", 2 ** 64)]) and not arrow


def test_json_ints_in_a_float_column_stay_ints(tmp_path):
    records = [{"user": "a", "score": 1}, {"user": "b", "score": 2.5}]
    columnar, python, arrow = run_both(tmp_path, json_lines(records), PIPELINES["arithmetic"])
    assert same(columnar[1], python[1]) and columnar[1] == [3, 6.0] and not arrow


def test_missing_field_raises_python_keyerror(tmp_path):
    columnar, python, _ = run_both(tmp_path, json_lines([{"user": "a", "score": 5}, {"user": "b"}]),
                                   PIPELINES["filter-map-reduceby"])
    assert columnar == python and python[1][0] is KeyError


# -- end to end ------------------------------------------------------------------------
def test_reduceby_wordcount_end_to_end_and_explain(tmp_path, isolated_config):
    for i in range(3):
        (tmp_path / f"f{i}.txt").write_text("the cat the dog\nthe end\n" * (i + 1))
    b = (gw.bag.read_text(str(tmp_path / "*.txt")).flat_map(str.split).map(lambda w: (w, 1))
         .reduceby(lambda kv: kv[0], lambda a, b: (a[0], a[1] + b[1])))
    plan = b.explain()
    assert "[columnar: flat_map(str.split) | map -> (x, 1) | reduceby -> first(field 0), sum(field 1) by x[0]]" in plan
    got = b.compute()
    with gw.config.set(columnar=False):
        assert "columnar" not in b.explain()
        assert sorted(got) == sorted(b.compute()) == [("cat", ("cat", 6)), ("dog", ("dog", 6)),
                                                     ("end", ("end", 6)), ("the", ("the", 18))]


def test_explain_names_why_a_function_runs_in_python(tmp_path, isolated_config):
    (tmp_path / "a.txt").write_text("x y\n")
    b = gw.bag.read_text(str(tmp_path / "a.txt")).flat_map(str.split).map(lambda w: (w, 1) if w else None)
    assert "[python from map: test_explain_names_why_a_function_runs_in_python.<locals>.<lambda> uses a branch" in b.explain()
    assert b.compute() == [("x", 1), ("y", 1)]


def test_user_errors_in_traced_stages_reach_the_user(tmp_path, isolated_config):
    (tmp_path / "a.jsonl").write_text('{"user": "a", "score": 1}\n{"user": "b"}\n')
    b = gw.bag.read_text(str(tmp_path / "a.jsonl")).map(json.loads).filter(lambda r: r["score"] > 0)
    assert "json.loads -> Arrow's JSON reader" in b.pluck("user").explain()
    with pytest.raises(KeyError, match="score"):
        b.pluck("user").compute()


# -- pair tables: the traced combine's shuffle ------------------------------------------
from graphwren.tasks import pair_tables as pt  # noqa: E402


class Inputs:
    """A reducer's context: its input partitions, as given."""

    task, where = 0, ""

    def __init__(self, parts):
        self.parts = parts

    def input(self, k=0):
        return iter(self.parts)


pair_keys = st.text(max_size=4) | st.integers(-5, 5)


@FAST
@given(pairs=st.lists(st.tuples(st.text(max_size=4), st.integers(-9, 9)), max_size=30), n=st.integers(1, 5))
def test_pair_tables_split_like_python_pairs(pairs, n):
    import pyarrow as pa
    table = pt.finish(pa.array([k for k, _ in pairs], pa.string()), [pa.array([v for _, v in pairs], pa.int64())],
                      scalar=True, table=True)
    assert pt.to_pairs(table) == pairs
    by_python = t.HashBuckets(first=True)(type("C", (), {"nbuckets": n})(), iter(pairs))
    by_table = t.HashBuckets(first=True)(type("C", (), {"nbuckets": n})(), table)
    assert [pt.to_pairs(b) for b in by_table] == by_python


@FAST
@given(blocks=st.lists(st.lists(st.tuples(st.sampled_from(["a", "b", "é", "c"]), st.integers(-2 ** 62, 2 ** 62)),
                                max_size=8), max_size=5),
       as_table=st.lists(st.booleans(), min_size=5, max_size=5))
def test_combine_pairs_matches_combine_by_key(blocks, as_table):
    """Buckets of (key, (key, n)) from map tasks, some as pair tables and some as Python pairs."""
    import pyarrow as pa
    binop = lambda a, b: (a[0], a[1] + b[1])  # noqa: E731
    parts = []
    for pairs, table in zip(blocks, as_table):
        acc = dict(t.PartialReduceBy(lambda kv: kv[0], binop)(iter(pairs)))
        if table and all(abs(v[1]) <= tr.INT64_MAX for v in acc.values()):   # else the map side ran in Python
            keys = pa.array(list(acc), pa.string())
            parts.append(pt.finish(keys, [keys, pa.array([v[1] for v in acc.values()], pa.int64())],
                                   scalar=False, table=True))
        else:
            parts.append(list(acc.items()))
    python = list(t.CombineByKey(binop)(itertools.chain.from_iterable(pt.records(p) for p in parts)))
    got = list(pt.CombinePairs(0, ("first", "sum"), False, [t.CombineByKey(binop)])(Inputs(parts)))
    assert got == python      # the same pairs in the same order, big sums included (exact in Python)


def test_mixed_blocks_end_to_end(tmp_path, isolated_config):
    """Blocks that fall back (non-ASCII text) and blocks in Arrow meet in the same reducers."""
    (tmp_path / "a.txt").write_text("naïve café naïve\n" * 50)
    for i in range(3):
        (tmp_path / f"b{i}.txt").write_text("cat dog cat\n" * 40 + "naïve\n")
    b = (gw.bag.read_text(str(tmp_path / "*.txt"), files_per_partition=1).flat_map(str.split)
         .map(lambda w: (w, 1)).reduceby(lambda kv: kv[0], lambda a, b: (a[0], a[1] + b[1])))
    with gw.config.set(columnar=False):
        python = sorted(b.compute())
    assert sorted(b.compute()) == python == [("café", ("café", 50)), ("cat", ("cat", 240)),
                                             ("dog", ("dog", 120)), ("naïve", ("naïve", 103))]
    fr = gw.bag.read_text(str(tmp_path / "*.txt"), files_per_partition=1).flat_map(str.split).frequencies()
    assert "[columnar: sum of counts]" in fr.explain()
    assert sorted(fr.compute()) == [(w, c[1]) for w, c in python]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(st.sampled_from([1, 1.0, True, 2, "a", "b", 0, False, -0.0]), max_size=30),
       nparts=st.integers(1, 3))
def test_groupby_len_counts_without_groups(isolated_config, items, nparts):
    """groupby(key).map(lambda kv: (kv[0], len(kv[1]))) becomes a count per key, with groupby's answer:
    equal keys of different types (1, 1.0, True) are one group, named by the first one seen."""
    b = gw.bag.from_sequence(items, npartitions=nparts) if items else gw.bag.from_sequence([])
    g = b.groupby(lambda x: x).map(lambda kv: (kv[0], len(kv[1])))
    assert "partial_reduce_by" in g.explain() or not items
    expected: dict = {}
    for x in items:
        expected[x] = expected.get(x, 0) + 1
    got = g.compute()
    assert sorted(map(repr, got)) == sorted(repr((k, n)) for k, n in expected.items())
    assert sorted(map(repr, b.groupby(lambda x: x).map(lambda kv: (kv[0], kv[1][0])).compute())) == \
        sorted(repr((k, k)) for k in expected)     # a map that reads the group still groups


@pytest.mark.parametrize("late", [2.5, "7", 2 ** 70, None])
def test_a_late_row_that_disagrees_with_the_sampled_types(tmp_path, late):
    """Types come from the block's first 64 KiB; a later row of another type still gets Python's answer."""
    records = [{"user": f"u{i % 5}", "score": i % 9, "pad": "x" * 40} for i in range(3000)]
    records.append({"user": "late", "score": late, "pad": ""})
    columnar, python, _ = run_both(tmp_path, json_lines(records), PIPELINES["filter-map-reduceby"])
    assert columnar[0] == python[0] and (same(columnar[1], python[1]) or columnar[1] == python[1])


def test_a_split_of_several_json_files_takes_the_arrow_path(tmp_path):
    """Pieces of several files in one split: each file's lines, none blank between them."""
    paths = []
    for i, end in enumerate(["\n", ""]):
        path = tmp_path / f"p{i}.jsonl"
        path.write_text('{"user": "a", "score": 5}\n{"user": "b", "score": 9}' + end)
        paths.append(path)
    read = ReadTextBlock([[("file:///", str(p).lstrip("/"), 0, p.stat().st_size, None) for p in paths]],
                         "utf-8", "strict")
    ops = PIPELINES["filter-map-reduceby"]
    chosen = columnar_plan.plan(read, ops, ["op"] * len(ops))
    pieces = [read.raw(Ctx(), piece)[0] for piece in read.pieces(Ctx())]
    assert chosen.reader.run(pieces) == list(t.chain_ops(ops)(read(Ctx()))) == [("a", ("a", 2)), ("b", ("b", 2))]
