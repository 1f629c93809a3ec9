"""Bag.sort and Bag.to_parquet: every result against Python's sorted(), on both the Python and the columnar path."""
from __future__ import annotations

import operator
import random
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphwren as gw

db = gw.bag
pytestmark = pytest.mark.usefixtures("isolated_config")
HYP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# -- helpers (module level: workers import them by reference) -----------------------------------
def first(r):
    return r[0]


def second(r):
    return r[1]


def key_k(r):
    return r["k"]


def identity(r):
    return r


def as_list(partition):
    """map_partitions helper: each partition becomes one record, the list of its records."""
    return [list(partition)]


def key_function(key):
    """The Python equivalent of a sort key: None, a field / position, or a callable."""
    if key is None:
        return identity
    if callable(key):
        return key
    return operator.itemgetter(key)


def py_sorted(records, key=None, reverse=False):
    return sorted(records, key=key_function(key), reverse=reverse)


def assert_same(got, expected):
    """Equal, and equal in repr: 1 is not 1.0 and -0.0 is not 0.0 here."""
    assert got == expected
    assert repr(got) == repr(expected)


def partitions_of(bag, **settings) -> list[list]:
    return bag.map_partitions(as_list).compute(**settings)


def assert_range_partitioned(parts, key=None, reverse=False):
    """Each partition sorted; every key of partition i <= every key of partition i+1 (>= with reverse)."""
    k = key_function(key)
    before = operator.ge if reverse else operator.le
    for i, p in enumerate(parts):
        keys = [k(r) for r in p]
        assert keys == sorted(keys, reverse=reverse), f"partition {i} is not sorted"
    nonempty = [(i, [k(r) for r in p]) for i, p in enumerate(parts) if p]
    for (i, a), (j, b) in zip(nonempty, nonempty[1:]):
        assert before(a[-1], b[0]), f"partition {i} ends with {a[-1]!r}, partition {j} starts with {b[0]!r}"


def check_sort(bag, records, key=None, reverse=False, npartitions=None, **settings):
    """compute() equals sorted(); the partitions are range-partitioned and as many as asked for."""
    out = bag.sort(key=key, reverse=reverse, npartitions=npartitions)
    nparts = npartitions or bag.npartitions
    expected = py_sorted(records, key, reverse)
    assert out.npartitions == nparts
    assert_same(out.compute(**settings), expected)
    parts = partitions_of(out, **settings)
    assert len(parts) == nparts
    assert_same([r for p in parts for r in p], expected)
    assert_range_partitioned(parts, key, reverse)
    return parts


def split(seq, cuts):
    """Partitions of seq cut at the given positions: empty partitions allowed."""
    cuts = sorted(min(max(c, 0), len(seq)) for c in cuts)
    bounds = [0, *cuts, len(seq)]
    return [list(seq[a:b]) for a, b in zip(bounds, bounds[1:])]


def write_parquet(directory, columns: dict, cuts=(), name="in") -> tuple[str, pa.Table]:
    """One parquet file per slice of the table (empty slices keep the schema); returns (glob, table)."""
    directory.mkdir(parents=True, exist_ok=True)
    table = pa.table(columns)
    bounds = [0, *sorted(cuts), table.num_rows]
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        pq.write_table(table.slice(a, b - a), directory / f"{name}-{i:03d}.parquet")
    return str(directory / f"{name}-*.parquet"), table


def rows(table: pa.Table, fmt="dict") -> list:
    dicts = table.to_pylist()
    return dicts if fmt == "dict" else [tuple(d.values()) for d in dicts]


def stage_blocks(explain_text: str) -> list[str]:
    """The physical plan's stages, one text block each (from 'stage N:' to the next)."""
    physical = explain_text.split("== Physical plan", 1)[1]
    return [b for b in re.split(r"\n(?=stage \d+:)", physical) if b.startswith("stage ")]


def storages(blocks: list[str]) -> set[str]:
    return {m for b in blocks for m in re.findall(r"storage: (\S+)", b)}


def numbered(keys) -> list[tuple]:
    """(key, input position) records: stability shows in the positions."""
    return [(k, i) for i, k in enumerate(keys)]


# -- the core: both paths, every store -------------------------------------------------------------
def test_sort_python_and_columnar_path_on_every_store(store_url, tmp_path):
    rng = random.Random(1)
    keys = [rng.randrange(40) for _ in range(300)]

    recs = numbered(keys)
    b = db.from_sequence(recs, npartitions=4)
    check_sort(b, recs, key=first, npartitions=3, storage=store_url)
    assert_same(b.sort(first, reverse=True).compute(storage=store_url), py_sorted(recs, first, reverse=True))

    path, table = write_parquet(tmp_path / "in", {"k": keys, "seq": list(range(len(keys)))}, cuts=[70, 70, 200])
    pb = db.read_parquet(path)
    check_sort(pb, rows(table), key="k", npartitions=3, storage=store_url)
    assert_same(pb.sort("k", reverse=True).compute(storage=store_url), py_sorted(rows(table), "k", reverse=True))


def test_npartitions_defaults_to_the_input():
    b = db.from_sequence(range(20), npartitions=5)
    assert b.sort().npartitions == 5
    assert b.sort(npartitions=2).npartitions == 2
    assert len(partitions_of(b.sort())) == 5


@pytest.mark.parametrize("reverse", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("path", ["python", "columnar"])
def test_partitions_are_balanced_for_distinct_keys(tmp_path, path, reverse):
    keys = random.Random(7).sample(range(10**9), 20_000)
    if path == "python":
        bag, records, key = db.from_sequence(keys, npartitions=8), keys, None
    else:
        glob, table = write_parquet(tmp_path / "in", {"k": keys}, cuts=range(2500, 20_000, 2500))
        bag, records, key = db.read_parquet(glob, format="tuple"), rows(table, "tuple"), 0
    parts = check_sort(bag, records, key=key, reverse=reverse, npartitions=8)
    mean = len(keys) / 8
    sizes = [len(p) for p in parts]
    assert all(0.5 * mean <= n <= 1.6 * mean for n in sizes), sizes


# -- which path, and what explain() says --------------------------------------------------------------
def test_explain_names_the_columnar_path_and_its_stages(tmp_path):
    path, table = write_parquet(tmp_path / "in", {"k": [3, 1, 2, 1], "v": ["c", "a", "b", "a2"]}, cuts=[2])
    for bag, key, fmt in [(db.read_parquet(path), "k", "dict"),
                          (db.read_parquet(path, format="tuple"), 0, "tuple")]:
        text = bag.sort(key).explain().lower()
        for word in ("columnar", "sample", "boundar", "range"):
            assert word in text, (fmt, word)
        check_sort(bag, rows(table, fmt), key=key)


def test_explain_names_the_python_path_and_its_stages(tmp_path):
    path, table = write_parquet(tmp_path / "in", {"k": [3, 1, 2, 1], "v": ["c", "a", "b", "a2"]}, cuts=[2])
    records = rows(table)
    cases = {
        "callable key": db.read_parquet(path).sort(key_k),
        "after a map": db.read_parquet(path).map(identity).sort("k"),
        "python records": db.from_sequence(records, npartitions=2).sort("k"),
    }
    for name, sorted_bag in cases.items():
        text = sorted_bag.explain().lower()
        for word in ("python", "sample", "boundar", "range"):
            assert word in text, (name, word)
    assert_same(cases["after a map"].compute(), py_sorted(records, "k"))
    assert_same(cases["python records"].compute(), py_sorted(records, "k"))


def test_from_arrow_takes_the_columnar_path():
    t1 = pa.table({"k": [5, 2, 9], "s": ["x", "y", "z"]})
    t2 = pa.table({"k": [2, 1], "s": ["p", "q"]})
    records = t1.to_pylist() + t2.to_pylist()
    b = db.from_arrow([t1, t2])
    assert "columnar" in b.sort("k").explain().lower()
    check_sort(b, records, key="k", npartitions=2)


def test_python_path_over_arrow_sources(tmp_path):
    """Keys the columnar path cannot take (callables, whole records, list columns) sort parquet/arrow records."""
    path, table = write_parquet(tmp_path / "in", {"k": [3, 1, 2, 1], "v": ["c", "a", "b", "a2"]}, cuts=[2])
    check_sort(db.read_parquet(path), rows(table), key=key_k)
    check_sort(db.read_parquet(path, format="tuple"), rows(table, "tuple"), key=None, reverse=True)
    check_sort(db.from_arrow(table), rows(table), key=key_k)
    lists, lists_table = write_parquet(tmp_path / "lists", {"k": [[1, 2], [1], [0, 5], []], "i": [0, 1, 2, 3]})
    check_sort(db.read_parquet(lists), rows(lists_table), key="k", npartitions=2)


def test_columnar_int_and_float_files_keep_their_types(tmp_path):
    """Files whose key columns differ in type (int64 here, double there) sort like Python, records unchanged."""
    d = tmp_path / "in"
    ints = [(7 * i) % 10 for i in range(30)]
    halves = [(3 * i) % 10 + 0.5 for i in range(30)] + [2.0, 0.0, -0.0]
    write_parquet(d, {"k": ints, "seq": list(range(30))}, name="a")
    write_parquet(d, {"k": halves, "seq": list(range(30, 63))}, name="b")
    bag = db.read_parquet(str(d / "*.parquet"))
    records = bag.compute()
    assert [type(r["k"]) for r in records] == [int] * 30 + [float] * 33
    check_sort(bag, records, key="k", npartitions=5)
    check_sort(bag, records, key="k", reverse=True, npartitions=3)


# -- adversarial inputs: python path ---------------------------------------------------------------
_skew_rng = random.Random(3)
SKEWED = numbered(7 if _skew_rng.random() < 0.9 else _skew_rng.randrange(20) for _ in range(1000))

# name -> (input partitions, key, output npartitions)
PY_CASES = {
    "all-equal-keys": (split(numbered([0] * 60), [10, 25, 25, 50]), first, 3),
    "all-equal-field": (split(numbered([0] * 60), [30]), 0, 4),
    "already-sorted": (split(list(range(100)), [30, 60]), None, 3),
    "reverse-sorted": (split(list(range(100, 0, -1)), [30, 60]), None, 3),
    "heavy-skew": (split(SKEWED, [250, 500, 750]), first, 4),
    "empty-partitions": ([[5, 3], [], [9, 1, 4], [], []], None, None),
    "single-record": ([[42]], None, None),
    "empty-bag": ([[]], None, None),
    "all-partitions-empty": ([[], [], []], None, 2),
    "more-outputs-than-records": ([[3, 1], [2]], None, 7),
    "one-output-partition": (split(numbered([2, 1, 2, 0, 1] * 5), [7, 13]), first, 1),
    "mixed-int-float": ([[(2, 0), (2.0, 1), (1.5, 2), (-0.0, 3)], [(0, 4), (0.0, 5), (10**20, 6), (1e20, 7)],
                         [(-3, 8), (float("inf"), 9), (-float("inf"), 10), (2, 11)],
                         [(2**63 + 1, 12), (float(2**63), 13), (2**63, 14), (2**63 - 1, 15)]], first, 3),
    "tuple-keys": ([[((1, "b"), 0), ((1, "a"), 1), ((0, "z"), 2)], [((1, "a", 0), 3), ((1,), 4)],
                    [((1, "a"), 5), ((), 6), ((0, "z"), 7)]], first, 2),
    "whole-tuples": ([[(1, "b"), (1, "a"), (0, "z")], [(1, "a", 0), (1,), (1, "a"), ()]], None, 3),
    "unicode-strings": ([["é", "e", "z", "É", "ß", "", "a\x00", "a"], ["日本", "\ud7ff", "\ue000", "\uffff"],
                         ["\U00010000", "\U0001f600", "A", "a", "é"]], None, 3),
    "bytes": ([[b"a\x00", b"a", b""], [b"\xff", b"\x00", b"a\x00\x00", b"b"], [b"", b"a", b"\x7f\x80"]], None, 3),
    "dict-records-field": ([[{"k": "b", "v": 0}, {"k": "a", "v": 1}], [{"k": "b", "v": 2}, {"k": "a", "v": 3}]],
                           "k", 2),
}


@pytest.mark.parametrize("reverse", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("case", list(PY_CASES))
def test_adversarial_inputs_python_path(case, reverse):
    parts, key, nout = PY_CASES[case]
    records = [r for p in parts for r in p]
    check_sort(db.from_partitions(parts), records, key=key, reverse=reverse, npartitions=nout)


# -- adversarial inputs: columnar path ---------------------------------------------------------------
INF = float("inf")
COL_CASES = {
    "int-dups": ([3, 1, 3, 2**63 - 1, 3, 0, 1, -2**63, 3, -5, 3, 0, 2**63 - 1, -2**63], [3, 3, 8]),
    "heavy-skew": ([7 if i % 10 else i % 37 for i in range(500)], [100, 250, 400]),
    "all-equal": ([4] * 40, [10, 20, 30]),
    "floats": ([0.5, -0.0, 0.0, INF, -INF, 1e-300, -1e-300, 2.5, 0.0, -0.0, 1e300, 5e-324, -2.5, 0.5], [4, 4, 9]),
    "unicode-strings": (["é", "e", "z", "É", "ß", "", "a\x00", "a", "日本", "\ue000", "\U00010000", "a", ""], [5, 9]),
    "bytes": ([b"a\x00", b"a", b"", b"\xff", b"\x00", b"a\x00\x00", b"b", b"", b"a"], [3, 6]),
    "already-sorted": (list(range(50)), [20]),
    "single-record": ([1.5], []),
    "all-empty": (pa.array([], pa.int64()), [0, 0]),
}


@pytest.mark.parametrize("reverse", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("case", list(COL_CASES))
def test_adversarial_inputs_columnar_path(tmp_path, case, reverse):
    keys, cuts = COL_CASES[case]
    path, table = write_parquet(tmp_path / "in", {"k": keys, "seq": list(range(len(keys)))}, cuts=cuts)
    bag = db.read_parquet(path)
    assert "columnar" in bag.sort("k").explain().lower()
    check_sort(bag, rows(table), key="k", reverse=reverse, npartitions=3)


def test_columnar_more_outputs_than_records_and_one_output(tmp_path):
    path, table = write_parquet(tmp_path / "in", {"k": [2.5, -1.0, 2.5], "seq": [0, 1, 2]}, cuts=[1, 1])
    bag = db.read_parquet(path, format="tuple")
    check_sort(bag, rows(table, "tuple"), key=0, npartitions=6)
    check_sort(bag, rows(table, "tuple"), key=0, npartitions=1, reverse=True)


# -- property test: the python path ---------------------------------------------------------------
@HYP
@given(keys=st.lists(st.integers(-3, 3), max_size=30), nin=st.integers(1, 5), nout=st.integers(1, 5),
       reverse=st.booleans(), how=st.sampled_from(["callable", "position", "whole"]))
def test_python_path_matches_sorted(keys, nin, nout, reverse, how):
    records = numbered(keys)
    key = {"callable": first, "position": 0, "whole": None}[how]
    out = db.from_sequence(records, npartitions=nin).sort(key=key, reverse=reverse, npartitions=nout)
    assert out.npartitions == nout
    assert_same(out.compute(), py_sorted(records, key, reverse))


# -- composition -------------------------------------------------------------------------------------
WORDS = ("the quick brown fox jumps over the lazy dog and then some more words follow until there are "
         "enough of them to fill several partitions with a few records each zebra apple mango kiwi").split()


def test_take_returns_the_smallest():
    words = WORDS * 2
    random.Random(5).shuffle(words)
    assert db.from_sequence(words, npartitions=4).sort().take(5) == tuple(sorted(words)[:5])


def test_sort_of_a_sort_is_stable():
    rng = random.Random(11)
    recs = [(rng.randrange(4), rng.randrange(4), i) for i in range(80)]
    b = db.from_sequence(recs, npartitions=3)
    expected = sorted(sorted(recs, key=second), key=first)
    assert b.sort(second).sort(first, npartitions=2).compute() == expected
    assert b.sort(1, reverse=True).sort(0).compute() == sorted(sorted(recs, key=second, reverse=True), key=first)


def test_map_after_sort_sees_the_read_parquet_format(tmp_path):
    path, table = write_parquet(tmp_path / "in", {"k": [3, 1, 2], "v": ["c", "a", "b"]}, cuts=[1])
    dicts = db.read_parquet(path).sort("k").map(lambda r: (type(r).__name__, r["v"])).compute()
    assert dicts == [("dict", "a"), ("dict", "b"), ("dict", "c")]
    tuples = db.read_parquet(path, format="tuple").sort(0, reverse=True).map(lambda r: (type(r).__name__, r[1]))
    assert tuples.compute() == [("tuple", "c"), ("tuple", "b"), ("tuple", "a")]
    assert db.from_sequence([3, 1, 2]).sort().map(lambda x: x * 10).compute() == [10, 20, 30]


# -- to_parquet --------------------------------------------------------------------------------------
def test_to_parquet_round_trip_on_every_store(store_url, tmp_path):
    rng = random.Random(2)
    keys = [rng.randrange(50) for _ in range(120)]
    path, table = write_parquet(tmp_path / "in", {"k": keys, "seq": list(range(len(keys)))}, cuts=[40, 80])
    out = db.read_parquet(path).sort("k", npartitions=3).to_parquet(str(tmp_path / "out"), storage=store_url)
    assert [u.rsplit("/", 1)[1] for u in out] == ["part.00000.parquet", "part.00001.parquet", "part.00002.parquet"]
    assert all((tmp_path / "out" / f"part.{i:05d}.parquet").is_file() for i in range(3))
    expected = py_sorted(rows(table), "k")
    assert db.read_parquet(str(tmp_path / "out" / "*.parquet")).compute(storage=store_url) == expected

    recs = rows(table)
    out = db.from_sequence(recs, npartitions=3).sort(key_k, reverse=True).to_parquet(
        str(tmp_path / "py" / "chunk-*.parquet"), name_function=lambda i: f"{i:03d}", storage=store_url)
    assert [u.rsplit("/", 1)[1] for u in out] == ["chunk-000.parquet", "chunk-001.parquet", "chunk-002.parquet"]
    back = db.read_parquet(str(tmp_path / "py" / "chunk-*.parquet"), format="tuple").compute(storage=store_url)
    assert back == rows(pa.Table.from_pylist(py_sorted(recs, key_k, reverse=True)), "tuple")


def test_to_parquet_s3(s3_url, tmp_path):
    path, table = write_parquet(tmp_path / "in", {"k": ["b", "é", "a", "b", ""], "n": [1, 2, 3, 4, 5]}, cuts=[2])
    sorted_bag = db.read_parquet(path).sort("k", npartitions=2)
    expected = py_sorted(rows(table), "k")

    out = sorted_bag.to_parquet(f"{s3_url}/dir")
    assert out == [f"{s3_url}/dir/part.00000.parquet", f"{s3_url}/dir/part.00001.parquet"]
    assert db.read_parquet(f"{s3_url}/dir/*.parquet").compute() == expected

    out = sorted_bag.to_parquet(f"{s3_url}/star/s-*.parquet", name_function=lambda i: f"{i:02d}")
    assert out == [f"{s3_url}/star/s-00.parquet", f"{s3_url}/star/s-01.parquet"]
    assert db.read_parquet(f"{s3_url}/star/*.parquet", format="tuple").compute() == rows(
        pa.Table.from_pylist(expected), "tuple")


def test_to_parquet_compression_and_empty_partitions(tmp_path):
    path, table = write_parquet(tmp_path / "in", {"k": [2, 1], "v": ["b", "a"]})
    sorted_bag = db.read_parquet(path).sort("k", npartitions=5)
    out = sorted_bag.to_parquet(str(tmp_path / "snappy"))
    assert len(out) == 5
    assert db.read_parquet(str(tmp_path / "snappy" / "*.parquet")).compute() == py_sorted(rows(table), "k")
    nonempty = [f for f in sorted((tmp_path / "snappy").iterdir()) if pq.ParquetFile(f).metadata.num_rows]
    assert pq.ParquetFile(nonempty[0]).metadata.row_group(0).column(0).compression == "SNAPPY"

    sorted_bag.to_parquet(str(tmp_path / "gz"), compression="gzip")
    f = next(f for f in sorted((tmp_path / "gz").iterdir()) if pq.ParquetFile(f).metadata.num_rows)
    assert pq.ParquetFile(f).metadata.row_group(0).column(0).compression == "GZIP"
    assert db.read_parquet(str(tmp_path / "gz" / "*.parquet")).compute() == py_sorted(rows(table), "k")


# -- where the shuffle goes --------------------------------------------------------------------------
def range_stages(bag, **settings) -> list[str]:
    blocks = [b for b in stage_blocks(bag.explain(**settings)) if "range" in b.lower()]
    assert blocks, "no stage mentions the range partitioning"
    return blocks


def test_shuffle_storage_on_redis_while_storage_is_file(tmp_path, redis_store_url):
    opts = {"storage": f"file://{tmp_path}/store", "shuffle_storage": redis_store_url}
    recs = numbered(random.Random(4).randrange(30) for _ in range(200))
    bag = db.from_sequence(recs, npartitions=4).sort(first, npartitions=3)
    assert redis_store_url in storages(range_stages(bag, **opts))
    assert bag.compute(**opts) == py_sorted(recs, first)


def test_redis_is_chosen_for_small_shuffles_only(tmp_path, redis_store_url):
    store = f"file://{tmp_path}/store"
    recs = numbered(random.Random(6).randrange(30) for _ in range(200))
    bag = db.from_sequence(recs, npartitions=4).sort(first, npartitions=3)

    small = {"storage": store, "shuffle_redis": redis_store_url, "shuffle_redis_limit": 64 * 1024**2}
    assert redis_store_url in storages(range_stages(bag, **small))
    assert bag.compute(**small) == py_sorted(recs, first)

    too_big = {**small, "shuffle_redis_limit": 1}
    text = bag.explain(**too_big)
    assert redis_store_url not in text
    assert storages(range_stages(bag, **too_big)) == {store}
    assert bag.compute(**too_big) == py_sorted(recs, first)


# -- errors --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", [[[12345, "abcde"]], [[12345], ["abcde"]], [[12345, 12346], ["abcde", "abcdf"]]],
                         ids=["one-partition", "two-partitions", "two-each"])
@pytest.mark.parametrize("nout", [1, 2])
def test_mixing_str_and_int_keys_names_both(layout, nout):
    with pytest.raises(TypeError) as info:
        db.from_partitions(layout).sort(npartitions=nout).compute()
    msg = str(info.value)
    assert "1234" in msg and "'abcd" in msg, msg


def test_mixing_str_and_int_field_values_names_both():
    recs = [{"k": 12345, "v": 0}, {"k": "abcde", "v": 1}]
    with pytest.raises(TypeError) as info:
        db.from_partitions([recs[:1], recs[1:]]).sort("k").compute()
    assert "12345" in str(info.value) and "'abcde'" in str(info.value), str(info.value)


def test_mixed_types_inside_tuple_keys_name_both():
    """Two tuple keys that do not order, after a thousand that do: the message names the two."""
    recs = [((0, i), i) for i in range(2000)] + [((5, "abcde"), 2000), ((5, 12345), 2001)]
    for nin, nout in [(1, 25), (2, 2)]:
        with pytest.raises(TypeError) as info:
            db.from_sequence(recs, npartitions=nin).sort(first, npartitions=nout).compute()
        msg = str(info.value)
        assert "(5, 'abcde')" in msg and "(5, 12345)" in msg, (nin, nout, msg)


def test_missing_field_python_path():
    with pytest.raises((KeyError, ValueError), match="nosuchfield"):
        db.from_sequence([{"a": 1}, {"a": 2}], npartitions=2).sort("nosuchfield").compute()


def test_missing_column_columnar_path(tmp_path):
    path, _ = write_parquet(tmp_path / "in", {"k": [1, 2, 3]}, cuts=[1])
    with pytest.raises((KeyError, ValueError), match="nosuchcol"):
        db.read_parquet(path).sort("nosuchcol").compute()
    with pytest.raises((KeyError, ValueError), match="nosuchcol"):
        db.read_parquet(path).map(identity).sort("nosuchcol").compute()


@pytest.mark.parametrize("n", [0, -1])
def test_bad_npartitions_fail_at_the_call(n):
    with pytest.raises(ValueError, match="npartitions"):
        db.from_sequence([1, 2, 3]).sort(npartitions=n)


@pytest.mark.parametrize("key", [["k"], 1.5], ids=["list", "float"])
def test_key_of_a_wrong_kind(key):
    with pytest.raises(TypeError):
        db.from_sequence([{"k": 1}, {"k": 2}]).sort(key).compute()


def explode_on_seven(r):
    if r == 7:
        raise OverflowError(f"cannot key record {r}")
    return r


def test_errors_of_a_key_function_propagate_as_they_are():
    with pytest.raises(OverflowError, match="cannot key record 7"):
        db.from_sequence(range(20), npartitions=3).sort(explode_on_seven).compute()
