"""read_parquet's splits come from row-group sizes: every row group read once, in order, whatever the layout."""
from __future__ import annotations

import os
import pathlib
import re
import sys
import types

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphwren import bag as db
from graphwren import config
from graphwren.planner import parquet_splits, sizing
from graphwren.tasks import tables

sys.path.insert(0, str(pathlib.Path(__file__).parent / "faults"))
from faultproxy import FaultProxy  # noqa: E402 - the wire proxy of the fault suite, here without faults

KiB, MiB = 1024, 1024**2


def settings_for(workers=2, backend="local", max_task_memory=2 * 1024**3):
    return {"workers": workers, "backend": backend, "lambda_max_workers": 1000, "max_task_memory": max_task_memory}


def row_groups_in_order(groups):
    """(file, row group) of every piece of every split, in split order."""
    return [(f, g) for split in groups for f, lo, hi in split for g in range(lo, hi)]


# -- the packing, as pure functions ------------------------------------------------------------------------
weights_st = st.lists(st.lists(st.integers(0, 8 * MiB), max_size=30), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(weights=weights_st, target=st.integers(1, 64 * MiB), schemas=st.none() | st.lists(st.integers(0, 2)))
def test_packing_covers_every_row_group_exactly_once_in_order(weights, target, schemas):
    if schemas is not None:
        schemas = (schemas * len(weights) + [0] * len(weights))[:len(weights)]
    groups = parquet_splits.pack(weights, target, schemas)
    assert row_groups_in_order(groups) == [(f, g) for f, ws in enumerate(weights) for g in range(len(ws))]
    assert all(split and all(lo < hi for _, lo, hi in split) for split in groups)
    for split in groups:
        files = [f for f, _, _ in split]
        assert len(set(files)) == len(files)      # a file's row groups in a split are one range
        if schemas is not None:
            assert len({schemas[f] for f in files}) == 1    # a split never mixes schemas
        cost = sum(sum(weights[f][lo:hi]) + (sizing.OPEN_COST if lo == 0 else 0) for f, lo, hi in split)
        one_group = len(split) == 1 and split[0][2] - split[0][1] == 1
        assert cost <= target or one_group        # only a lone row group may exceed the target
    if schemas is None:   # greedy: a split closed only because the next row group did not fit
        costs = [sum(sum(weights[f][lo:hi]) + (sizing.OPEN_COST if lo == 0 else 0) for f, lo, hi in split)
                 for split in groups]
        for k in range(len(groups) - 1):
            f, lo, _ = groups[k + 1][0]
            assert costs[k] + weights[f][lo] + (sizing.OPEN_COST if lo == 0 else 0) > target


@settings(max_examples=300, deadline=None)
@given(weights=st.lists(st.integers(0, 4 * MiB), max_size=80), n=st.integers(1, 50))
def test_npartitions_cuts_exactly_n_contiguous_splits_of_about_equal_bytes(weights, n):
    units = [(i // 7, i % 7, i % 7 + 1) for i in range(len(weights))]   # 7 row groups per file
    groups = parquet_splits.balanced(units, weights, n)
    assert len(groups) == n
    assert row_groups_in_order(groups) == [(f, g) for f, g, _ in units]
    if len(units) >= n:
        assert all(groups)                        # no split empty while there are row groups for it
    sizes = [sum(weights[i] for i, u in enumerate(units) for f, lo, hi in s if f == u[0] and lo <= u[1] < hi)
             for s in groups]
    if len(units) >= n and weights:
        # balance: no split is more than a fair share plus its largest row group (+1 per unit, the tie weight)
        fair = (sum(weights) + len(weights)) / n
        assert max(sizes) <= fair + max(weights) + len(weights) + 1


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.integers(1, 10_000), min_size=1, max_size=40), cuts=st.lists(st.integers(0, 10**6)))
def test_byte_ranges_that_tile_a_file_read_each_row_group_once(sizes, cuts):
    starts = [4 + sum(sizes[:g]) for g in range(len(sizes))]       # after the 4-byte magic, as parquet
    midpoints = [s + n // 2 for s, n in zip(starts, sizes)]
    end = starts[-1] + sizes[-1] + 100                              # the footer
    edges = sorted({0, end} | {c % end for c in cuts})
    read = [g for a, b in zip(edges, edges[1:]) for g in tables.in_range(midpoints, a, b)]
    assert read == list(range(len(sizes)))


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(0, 50 * MiB), min_size=1, max_size=40), ratio=st.floats(0.05, 8),
       workers=st.integers(1, 32), nparts=st.none() | st.integers(1, 60))
def test_without_footers_each_file_is_whole_or_tiled_by_byte_ranges_in_order(sizes, ratio, workers, nparts):
    files = [("file:///", f"d/f{i}", size) for i, size in enumerate(sizes)]
    expr = types.SimpleNamespace(nparts=nparts, estimated_bytes=lambda size: int(size * ratio))
    planned = parquet_splits._from_listing(expr, files, settings_for(workers))
    assert nparts is None or len(planned.splits) == nparts
    assert abs(planned.total_bytes - sum(int(size * ratio) for size in sizes)) <= 1
    assert planned.task_bytes <= planned.total_bytes
    pieces = [p for split in planned.splits for p in split]
    real = [p for p in pieces if p[3] == tables.BYTES or p[5] is None]   # not an empty split's filler (rows 0..0)
    assert list(dict.fromkeys(p[1] for p in real)) == [f[1] for f in files]
    assert all(p[4] < p[5] for p in real if p[3] == tables.BYTES)
    for _, key, size in files:
        mine = [p for p in real if p[1] == key]
        if len(mine) == 1 and mine[0][3] == tables.ROWS:
            assert mine[0][4:] == (0, None)                     # the whole file: its footer says which groups
            continue
        assert all(p[3] == tables.BYTES for p in mine)
        assert mine[0][4] == 0 and mine[-1][5] == size        # ranges tile the file, in order
        assert all(a[5] == b[4] for a, b in zip(mine, mine[1:]))


def test_the_midpoints_of_a_real_file_lie_inside_their_row_groups(tmp_path):
    path = tmp_path / "r.parquet"
    write_ragged(path, [50, 0, 7, 900, 3])
    meta = pq.read_metadata(path)
    mids = tables.row_group_midpoints(meta)
    assert mids == sorted(mids) and 4 <= mids[0] and mids[-1] < path.stat().st_size
    assert tables.in_range(mids, 0, path.stat().st_size) == list(range(5))


# -- files, and the reference pyarrow reads ----------------------------------------------------------------
SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.string()), ("c", pa.float64())])


def table_of(n, base=0):
    return pa.table({"a": list(range(base, base + n)), "b": [f"s{(base + j) % 97}" * 3 for j in range(n)],
                     "c": [j / 4 for j in range(n)]}, schema=SCHEMA)


def write_ragged(path, rows_per_group, base=0):
    """One file whose row groups hold ``rows_per_group`` rows each (0 allowed)."""
    with pq.ParquetWriter(path, SCHEMA) as w:
        for n in rows_per_group:
            w.write_table(table_of(n, base), row_group_size=max(n, 1))
            base += n
    return base


def reference(paths, columns=None, as_tuples=False):
    rows = []
    for p in paths:
        if os.path.getsize(p) == 0:
            continue
        t = pq.read_table(p, columns=columns)
        rows += list(zip(*(c.to_pylist() for c in t.columns))) if as_tuples else t.to_pylist()
    return rows


def many_small(root):
    for i in range(60):
        pq.write_table(table_of(5 + i % 9, 100 * i), root / f"part-{i}.parquet", row_group_size=4)


def one_file_many_row_groups(root):
    pq.write_table(table_of(60_000), root / "big.parquet", row_group_size=500)


def ragged(root):
    for i, layout in enumerate([[1], [300, 0, 2, 5000, 1], [0], [7] * 40, [2500, 2500]]):
        write_ragged(root / f"r{i}.parquet", layout, 10_000 * i)


def with_empty_files(root):
    pq.write_table(table_of(10), root / "a0.parquet")
    pq.write_table(table_of(0), root / "a1.parquet")                 # one row group of no rows
    pq.ParquetWriter(root / "a2.parquet", SCHEMA).close()            # no row group at all
    (root / "a3.parquet").write_bytes(b"")                           # 0 bytes: no rows, as Spark reads it
    pq.write_table(table_of(20, 50), root / "a4.parquet", row_group_size=3)


SHAPES = {"many_small": many_small, "many_row_groups": one_file_many_row_groups, "ragged": ragged,
          "empty_files": with_empty_files}


@pytest.fixture
def run(tmp_path):
    return dict(storage=f"file://{tmp_path}/store", progress=False)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("columns", [None, ["c", "a"]])
def test_records_match_pyarrow_whatever_the_layout(tmp_path, run, shape, columns):
    src = tmp_path / "src"
    src.mkdir()
    SHAPES[shape](src)
    paths = sorted(src.glob("*.parquet"), key=lambda p: [int(x) if x.isdigit() else x
                                                         for x in re.split(r"(\d+)", p.name)])
    glob = str(src / "*.parquet")
    assert db.read_parquet(glob, columns=columns).compute(**run) == reference(paths, columns)
    assert db.read_parquet(glob, columns=columns, format="tuple").compute(**run) == \
        reference(paths, columns, as_tuples=True)
    b = db.read_parquet(glob, columns=columns, npartitions=3)
    assert b.compute(**run) == reference(paths, columns)
    assert len(b.map_partitions(lambda p: [len(list(p))]).compute(**run)) == 3
    # a pyarrow-side op on the tables still sees every row: a columnar sort by a column
    if columns is None or "a" in columns:
        got = db.read_parquet(glob, columns=columns).sort(key="a").pluck("a").compute(**run)
        assert got == sorted(r["a"] for r in reference(paths, columns))


def test_files_differing_only_in_columns_not_read_share_splits(tmp_path):
    for i in range(24):
        extra = {"only_here": [i]} if i % 2 else {}
        pq.write_table(pa.table({"a": [i], **extra}), tmp_path / f"p{i}.parquet")
    s = settings_for(workers=1)
    assert len(parquet_splits.plan(db.read_parquet(str(tmp_path / "*.parquet")).expr, s).splits) == 24
    projected = db.read_parquet(str(tmp_path / "*.parquet"), columns=["a"])
    assert len(parquet_splits.plan(projected.expr, s).splits) <= 2 * sizing.SPLITS_PER_WORKER
    assert projected.pluck("a").compute(storage=f"file://{tmp_path}/store", progress=False) == list(range(24))


def test_plan_shapes_follow_the_bytes(tmp_path):
    s = settings_for(workers=2)
    for shape in SHAPES:
        (tmp_path / shape).mkdir()
        SHAPES[shape](tmp_path / shape)
    small = parquet_splits.plan(db.read_parquet(str(tmp_path / "many_small" / "*.parquet")).expr, s)
    assert 1 <= len(small.splits) <= 2 * sizing.SPLITS_PER_WORKER * 2 + 1 < 60   # packed, not one per file
    assert "60 files" in small.label and "packed into" in small.label
    big = parquet_splits.plan(db.read_parquet(str(tmp_path / "many_row_groups" / "*.parquet")).expr, s)
    assert len(big.splits) >= 2 * 2                                    # one file keeps both workers busy
    assert all(len(split) == 1 and split[0][3] == tables.ROWS for split in big.splits)
    assert "1 file" in big.label and "120 row groups" in big.label
    target = sizing.split_target(big.total_bytes, 1, s)
    assert big.task_bytes <= target                                     # no split over the target
    # a projection weighs only the columns read: fewer bytes, so no more splits
    narrow = parquet_splits.plan(db.read_parquet(str(tmp_path / "many_row_groups" / "*.parquet"),
                                                 columns=["a"]).expr, s)
    assert narrow.total_bytes < big.total_bytes and len(narrow.splits) <= len(big.splits)
    # more workers, more splits; npartitions= wins
    wide = parquet_splits.plan(db.read_parquet(str(tmp_path / "many_row_groups" / "*.parquet")).expr,
                               settings_for(workers=8))
    assert len(wide.splits) > len(big.splits)
    given_n = parquet_splits.plan(db.read_parquet(str(tmp_path / "many_row_groups" / "*.parquet"),
                                                  npartitions=7).expr, s)
    assert len(given_n.splits) == 7 and "(npartitions=7)" in given_n.label
    # tiny files: the open cost keeps them one split each, as read_text
    empties = parquet_splits.plan(db.read_parquet(str(tmp_path / "empty_files" / "*.parquet")).expr, s)
    assert "one split per file" in empties.label or len(empties.splits) <= 5


def test_explain_says_files_bytes_row_groups_and_splits(tmp_path):
    for i in range(40):
        pq.write_table(table_of(30, i * 30), tmp_path / f"p{i:02d}.parquet", row_group_size=1)
    text = db.read_parquet(str(tmp_path / "*.parquet")).count().explain()
    m = re.search(r"stage 0: (\d+) tasks?  read_parquet\(40 files, [\d.]+ \w+, 1,200 row groups "
                  r"packed into (\d+) splits of ~[\d.]+ \w+ decoded\)", text)
    assert m, text
    assert m.group(1) == m.group(2) and int(m.group(2)) < 40


def test_files_of_different_schemas_keep_their_own_fields(tmp_path, run):
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "p0.parquet")
    pq.write_table(pa.table({"y": ["a"]}), tmp_path / "p1.parquet")
    pq.write_table(pa.table({"x": [3]}), tmp_path / "p2.parquet")
    want = [{"x": 1}, {"x": 2}, {"y": "a"}, {"x": 3}]
    assert db.read_parquet(str(tmp_path / "*.parquet")).compute(**run) == want
    assert db.read_parquet(str(tmp_path / "*.parquet"), npartitions=1).compute(**run) == want
    # more partitions than row groups: the last ones are empty, and still tables of a file's schema
    # to_parquet of a split over both schemas writes one file of both columns (nulls where a file had none)
    out = db.read_parquet(str(tmp_path / "*.parquet"), npartitions=1).to_parquet(str(tmp_path / "out"))
    assert len(out) == 1 and pq.read_table(out[0]).to_pylist() == [
        {"x": 1, "y": None}, {"x": 2, "y": None}, {"x": None, "y": "a"}, {"x": 3, "y": None}]
    five = db.read_parquet(str(tmp_path / "*.parquet"), npartitions=5)
    assert five.map_partitions(lambda p: [len(list(p))]).compute(**run) == [2, 1, 1, 0, 0]
    assert five.compute(**run) == want


def test_a_glob_too_large_for_every_footer_packs_by_listing_and_tasks_read_footers(tmp_path):
    from graphwren import planner
    from graphwren.planner.outputs import Partitions
    n = tables.MAX_PLAN_FOOTERS + 1
    for i in range(n):
        pq.write_table(table_of(1 + i % 3, 10 * i), tmp_path / f"t{i:05d}.parquet")
    write_ragged(tmp_path / "t99999.parquet", [10_000] * 40, 10**6)      # one big file: cut into byte ranges
    paths = sorted(tmp_path.glob("t*.parquet"))
    run = config.resolve({"storage": f"file://{tmp_path}/store", "progress": False})
    wide = {**run, "workers": 8}   # planned for 8 workers (a smaller target), run on the usual pool

    def records(bag):
        planned = planner.plan(bag.expr, wide)
        out = Partitions()
        planner.execute(planned, run, out)
        return planned, [r for part in out.value() for r in part]

    b = db.read_parquet(str(tmp_path / "t*.parquet"))
    planned = parquet_splits.plan(b.expr, wide)
    assert "footers read by the tasks" in planned.label and f"{n + 1:,} files" in planned.label
    assert "footers" not in b.expr.__dict__                             # planning read a sample only
    cut = [p for split in planned.splits for p in split if p[1].endswith("t99999.parquet")]
    assert len(cut) >= 2 and all(p[3] == tables.BYTES for p in cut)
    assert [p[4:] for p in cut] == sorted(p[4:] for p in cut) and cut[0][4] == 0 and cut[-1][5] == cut[0][2]
    assert records(b)[1] == reference(paths)
    given_n, got = records(db.read_parquet(str(tmp_path / "t*.parquet"), columns=["a"], npartitions=5))
    assert got == [{"a": r["a"]} for r in reference(paths)]
    assert given_n.plan.stages[0].ntasks == 5


# -- bad input ----------------------------------------------------------------------------------------------
def test_a_missing_or_non_parquet_file_is_named(tmp_path, run):
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        db.read_parquet(str(tmp_path / "nope.parquet")).compute(**run)
    pq.write_table(table_of(3), tmp_path / "ok.parquet")
    (tmp_path / "notes.parquet").write_text("these are not columns")
    with pytest.raises(ValueError, match=r"notes.parquet is not a parquet file"):
        db.read_parquet(str(tmp_path / "*.parquet")).compute(**run)
    with pytest.raises(TypeError, match="list of column names"):
        db.read_parquet(str(tmp_path / "ok.parquet"), columns="a")
    with pytest.raises(ValueError, match="npartitions"):
        db.read_parquet(str(tmp_path / "ok.parquet"), npartitions=0)


def test_a_file_gone_between_planning_and_reading_is_named(tmp_path):
    from graphwren import planner
    from graphwren.planner.outputs import Partitions
    for i in range(3):
        pq.write_table(table_of(4, 10 * i), tmp_path / f"g{i}.parquet")
    opts = config.resolve({"storage": f"file://{tmp_path}/store", "progress": False, "task_retries": 0})
    planned = planner.plan(db.read_parquet(str(tmp_path / "g*.parquet")).count().expr, opts)
    (tmp_path / "g1.parquet").unlink()
    with pytest.raises(Exception, match="g1.parquet"):
        planner.execute(planned, opts, Partitions())


# -- S3: footers are ranged reads of the files' ends ---------------------------------------------------------
class RangeRecordingProxy(FaultProxy):
    """The fault proxy with no faults: it forwards every request and remembers (method, path, Range, bytes)."""

    def __init__(self, upstream: str):
        super().__init__(upstream)
        self.seen: list[tuple[str, str, str | None, int]] = []

    def forward(self, method, path, headers, body):
        status, reason, out_headers, data = super().forward(method, path, headers, body)
        with self._lock:
            self.seen.append((method, path, headers.get("Range"), len(data)))
        return status, reason, out_headers, data


def test_on_s3_planning_reads_only_footers_with_ranged_gets(s3_endpoint, s3_url, monkeypatch, tmp_path):
    import boto3
    bucket, prefix = s3_url[len("s3://"):].split("/", 1)
    s3 = boto3.client("s3")
    local = []
    for i in range(6):
        path = tmp_path / f"f{i}.parquet"
        # random-ish strings: a file well over pyarrow's 64 KiB footer read, so a whole-file read would show
        pq.write_table(pa.table({"k": [f"{(j * 7919 + i) ** 3:x}" for j in range(20_000)], "v": range(20_000)}),
                       path, row_group_size=2_000, compression="none")
        s3.put_object(Bucket=bucket, Key=f"{prefix}/in/f{i}.parquet", Body=path.read_bytes())
        local.append(path)
    sizes = {p.name: p.stat().st_size for p in local}
    proxy = RangeRecordingProxy(s3_endpoint)
    try:
        with monkeypatch.context() as patch:
            patch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)      # planning's S3 requests go through it
            b = db.read_parquet(f"{s3_url}/in/*.parquet")
            planned = parquet_splits.plan(b.expr, settings_for(workers=2))
            seen = list(proxy.seen)
            # a task's read of a row-group range: the footer, then the range's column chunks coalesced
            proxy.seen.clear()
            store_url, key, size = b.expr.files[0]
            ctx = types.SimpleNamespace(task=0, where="")
            part = tables.ReadParquetSplit([[(store_url, key, size, tables.ROWS, 2, 5)]])(ctx)
            task_gets = [s for s in proxy.seen if s[0] == "GET" and "/in/f" in s[1]]
        assert "6 files" in planned.label and "60 row groups" in planned.label
    finally:
        proxy.close()
    assert part.to_pylist() == pq.read_table(local[0]).slice(4_000, 6_000).to_pylist()
    assert len(task_gets) <= 3 and sum(n for *_, n in task_gets) < size / 2, task_gets
    gets = [(path, rng, n) for method, path, rng, n in seen if method == "GET" and "/in/f" in path]
    assert not [s for s in seen if s[0] == "HEAD" and "/in/" in s[1]]     # sizes came with the listing
    assert sorted({re.search(r"f\d\.parquet", p).group() for p, _, _ in gets}) == sorted(sizes)
    for path, rng, n in gets:
        assert rng is not None, path                                  # never a whole-object GET
        start, end = map(int, re.fullmatch(r"bytes=(\d+)-(\d+)", rng).groups())
        size = sizes[re.search(r"f\d\.parquet", path).group()]
        assert end == size - 1 and n == end - start + 1 <= 64 * KiB   # the file's last bytes only
    assert sum(n for _, _, n in gets) < sum(sizes.values()) / 4
    run = dict(storage=f"file://{tmp_path}/store", progress=False)
    assert b.compute(**run) == reference(local)
    assert db.read_parquet(f"{s3_url}/in/*.parquet", columns=["v"]).pluck("v").compute(**run) == \
        [r["v"] for r in reference(local)]
