"""The dask.bag API pieces issue 13 added: read_text's options, lazy writes, schedulers, readers, errors."""
from __future__ import annotations

import collections
import functools
import http.server
import itertools
import operator
import random
import sys
import threading

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphwren as gw
from graphwren.collections import scheduler
from graphwren.collections.io_options import parse_bytes, store_query

db = gw.bag
HYP = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def add(a, b):
    return a + b


# -- read_text ---------------------------------------------------------------------------
def test_parse_bytes_follows_dasks_rules():
    assert parse_bytes("10kB") == 10_000 and parse_bytes("10 KiB") == 10_240 and parse_bytes("5MB") == 5 * 10**6
    assert parse_bytes("1e3") == 1000 and parse_bytes("MB") == 10**6 and parse_bytes("2k") == 2000
    assert parse_bytes("3mi") == 3 * 2**20 and parse_bytes(7) == 7 and parse_bytes("1.5GB") == 1_500_000_000
    with pytest.raises(ValueError, match="'10 parsecs'"):
        parse_bytes("10 parsecs")
    with pytest.raises(ValueError, match="blocksize"):
        db.read_text("x.txt", blocksize="ten")


def _split_keep(text: str, d: str) -> list[str]:
    parts = text.split(d)
    return [p + d for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


@HYP
@given(st.lists(st.text(alphabet="ab;|\n", max_size=6), max_size=12), st.sampled_from([";", ";|", "\n"]),
       st.integers(1, 9))
def test_linedelimiter_with_any_blocksize_gives_the_records_of_a_plain_split(tmp_path, chunks, delim, blocksize):
    text = delim.join(chunks)
    path = tmp_path / f"d-{abs(hash((text, delim, blocksize)))}.txt"
    path.write_bytes(text.encode())
    expected = _split_keep(text, delim) if delim != "\n" else text.splitlines(keepends=True)
    assert db.read_text(str(path), linedelimiter=delim, blocksize=blocksize).compute() == expected
    assert db.read_text(str(path), linedelimiter=delim).compute() == expected


def test_read_text_newline_delimiters_keep_line_ends_as_dask(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"a\r\nb\rc\nd")
    assert db.read_text(str(path)).compute() == ["a\n", "b\n", "c\n", "d"]          # universal newlines
    assert db.read_text(str(path), linedelimiter="\r\n").compute() == ["a\r\n", "b\rc\nd"]
    assert db.read_text(str(path), linedelimiter="").compute() == ["a\r\n", "b\r", "c\n", "d"]


def test_include_path_and_glob_order_and_listing_at_read_text(tmp_path):
    for name in ("g1.log", "g2.log", "g10.log"):
        (tmp_path / name).write_text(name + "\n")
    bag = db.read_text(str(tmp_path / "g*.log"), include_path=True)
    (tmp_path / "g3.log").write_text("late\n")        # after read_text(): not part of the bag (dask)
    got = bag.compute()
    assert [line for line, _ in got] == ["g1.log\n", "g10.log\n", "g2.log\n"]      # dask's plain sort
    assert [path for _, path in got] == [str(tmp_path / n) for n in ("g1.log", "g10.log", "g2.log")]
    assert "columnar" not in bag.flat_map(lambda r: r[0].split()).frequencies().explain().split("stage 1")[0]  # the reader
    with pytest.raises(FileNotFoundError, match="matches no file"):
        db.read_text(str(tmp_path / "*.nothing"))                                    # at once, as dask


def test_files_per_partition_and_blocksize_strings(tmp_path):
    for i in range(5):
        (tmp_path / f"f{i}.txt").write_text("x\n" * 100)
    assert db.read_text(str(tmp_path / "*.txt"), files_per_partition=2).npartitions == 3
    assert db.read_text(str(tmp_path / "f0.txt"), blocksize="50B").npartitions == 4
    assert db.read_text(str(tmp_path / "*.txt"), blocksize="1kB").count().compute() == 500


def test_storage_options_set_the_s3_endpoint_and_refuse_credentials(s3_url, s3_endpoint, monkeypatch):
    bucket, prefix = s3_url[len("s3://"):].split("/", 1)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/a.txt", Body=b"one two\nthree\n")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")   # only storage_options says where S3 is now
    from graphwren.runtime.storage import clear_cache
    clear_cache()
    bag = db.read_text(f"{s3_url}/*.txt", storage_options={"client_kwargs": {"endpoint_url": s3_endpoint}})
    assert bag.flat_map(str.split).compute() == ["one", "two", "three"]
    urls = db.from_sequence(["a", "b"], npartitions=2).to_textfiles(f"{s3_url}/out/*.txt",
                                                                    storage_options={"endpoint_url": s3_endpoint})
    assert urls == [f"{s3_url}/out/0.txt", f"{s3_url}/out/1.txt"]
    assert s3.get_object(Bucket=bucket, Key=f"{prefix}/out/1.txt")["Body"].read() == b"b"
    with pytest.raises(ValueError, match="credentials"):
        db.read_text(f"{s3_url}/*.txt", storage_options={"key": "k", "secret": "s"})
    with pytest.raises(ValueError, match="unknown storage_options"):
        store_query({"use_ssl": False}, "read_text")


def test_str_accessor_runs_columnar_on_read_text_with_python_results(tmp_path):
    path = tmp_path / "w.txt"
    text = "The Quick  brown\nfox THE lazy\n\n dog  \n"
    path.write_text(text)
    bag = db.read_text(str(path)).str.lower().str.split().flatten().frequencies()
    assert "[columnar" in bag.explain()
    assert sorted(bag.compute()) == sorted(collections.Counter(text.lower().split()).items())
    stripped = db.read_text(str(path)).str.strip().compute()
    assert stripped == [line.strip() for line in text.splitlines()]
    assert db.from_sequence([b"Ab", b"C"]).str.lower().compute() == [b"ab", b"c"]   # bytes, as dask
    with pytest.raises(AttributeError, match="no such method"):
        db.from_sequence(["a"]).str.no_such_method


# -- lazy writes, take, schedulers ------------------------------------------------------
def test_writes_with_compute_false_run_only_when_computed(tmp_path):
    bag = db.from_sequence(["x", "y", "z"], npartitions=2)
    lazy = bag.to_textfiles(str(tmp_path / "t" / "*.txt"), compute=False)
    assert isinstance(lazy, db.LazyWrite) and not (tmp_path / "t").exists()
    urls = lazy.compute()
    assert [open(u).read() for u in urls] == ["x\ny", "z"]
    lazy = bag.map(lambda s: {"s": s}).to_parquet(str(tmp_path / "p"), compute=False)
    assert not (tmp_path / "p").exists()
    assert len(lazy.compute()) == 2 and db.read_parquet(str(tmp_path / "p" / "*.parquet")).pluck("s").compute() == \
        ["x", "y", "z"]
    assert db.to_textfiles(bag, str(tmp_path / "e" / "*.txt"), last_endline=True)
    assert open(tmp_path / "e" / "0.txt").read() == "x\ny\n"


def test_scheduler_names_map_onto_backends():
    assert scheduler.settings_for({"scheduler": "sync"}) == {"backend": "local", "workers": 1}
    assert scheduler.settings_for({"scheduler": "threads", "num_workers": 3}) == {"backend": "local", "workers": 3}
    assert scheduler.settings_for({"optimize_graph": False}) == {}
    with pytest.raises(ValueError, match="single-threaded"):
        scheduler.settings_for({"scheduler": "gpu"})
    b = db.from_sequence(range(10), npartitions=3)
    assert b.sum().compute(scheduler="single-threaded") == 45
    assert b.compute(scheduler="processes") == list(range(10))


def test_repartition_by_size_keeps_records_and_counts_as_dask():
    b = db.from_sequence(range(100), npartitions=2)
    small = b.repartition(partition_size="500B")
    assert small.compute() == list(range(100))
    assert small.npartitions > 2
    with pytest.raises(ValueError, match="exactly one"):
        b.repartition()


# -- readers -----------------------------------------------------------------------------
def test_avro_round_trip(tmp_path):
    schema = {"type": "record", "name": "r", "fields": [{"name": "a", "type": "long"}, {"name": "s", "type": "string"}]}
    records = [{"a": i, "s": str(i)} for i in range(7)]
    urls = db.from_sequence(records, npartitions=3).to_avro(str(tmp_path / "*.avro"), schema)
    assert len(urls) == 3
    back = db.read_avro(str(tmp_path / "*.avro"))
    assert back.npartitions == 3 and back.compute() == records


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_from_url_reads_lines_as_bytes(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"one\ntwo\n")
    (tmp_path / "b.txt").write_bytes(b"three")
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        bag = db.from_url([f"{base}/a.txt", f"{base}/b.txt"])
        assert bag.npartitions == 2 and bag.compute() == [b"one\n", b"two\n", b"three"]
    finally:
        server.shutdown()
        server.server_close()


def test_missing_extras_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)    # import pandas now raises ImportError
    monkeypatch.setitem(sys.modules, "fastavro", None)
    with pytest.raises(ImportError, match=r"graphwren\[dataframe\]"):
        db.from_sequence([1]).to_dataframe()
    with pytest.raises(ImportError, match=r"graphwren\[avro\]"):
        db.read_avro("x.avro")


# -- results ------------------------------------------------------------------------------
def test_to_dataframe_matches_pandas_per_partition():
    import pandas as pd
    recs = [{"a": i, "b": str(i)} for i in range(5)]
    df = db.from_sequence(recs, npartitions=2).to_dataframe().compute()
    expected = pd.concat([pd.DataFrame(recs[:3]), pd.DataFrame(recs[3:])])
    pd.testing.assert_frame_equal(df, expected)
    tuples = db.from_sequence([(1, 2.0), (3, 4.0)]).to_dataframe(columns=["x", "y"]).compute()
    assert tuples.to_dict("list") == {"x": [1, 3], "y": [2.0, 4.0]}
    with pytest.raises(ValueError, match="meta="):
        db.from_sequence([]).to_dataframe().compute()
    empty = db.from_sequence([]).to_dataframe(meta={"x": "int64"}).compute()
    assert list(empty.columns) == ["x"] and len(empty) == 0


def test_random_sample_is_seeded_and_a_subset():
    b = db.from_sequence(range(200), npartitions=5)
    one = b.random_sample(0.3, random_state=11).compute()
    assert one == b.random_sample(0.3, random_state=11).compute()
    assert one == sorted(one) and set(one) <= set(range(200)) and 20 < len(one) < 110
    assert b.random_sample(0.3, random_state=random.Random(11)).compute() == one
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        b.random_sample(1.5)


def test_sample_is_distinct_and_sized():
    b = db.from_sequence(range(50), npartitions=7)
    picks = db.random.sample(b, 10).compute()
    assert len(picks) == 10 == len(set(picks)) and set(picks) <= set(range(50))
    assert sorted(db.random.sample(b, 50).compute()) == list(range(50))
    with pytest.raises(ValueError, match="Sample larger than population"):
        db.random.sample(b, 51).compute()
    import graphwren.bag.random as rnd   # importable as a module path too, as dask.bag.random
    assert len(rnd.choices(b, 60).compute()) == 60


def test_accumulate_carries_across_many_partitions_and_empty_ones():
    parts = [[1, 2], [], [3], [], [], [4, 5, 6]]
    b = db.from_partitions(parts)
    assert b.accumulate(operator.mul).compute() == list(itertools.accumulate(range(1, 7), operator.mul))
    strings = db.from_partitions([["a"], ["b", "c"]]).accumulate(add, initial="")
    assert strings.compute() == ["", "a", "ab", "abc"]


def test_min_and_fold_over_a_tree_with_empty_groups():
    parts = [[] for _ in range(20)] + [[5, 3]] + [[] for _ in range(20)]
    b = db.from_partitions(parts)
    assert b.min(split_every=4).compute() == 3 and b.max(split_every=4).compute() == 5
    assert b.fold(add, split_every=3).compute() == 8
    with pytest.raises(ValueError, match="empty bag"):
        db.from_partitions([[] for _ in range(20)]).min(split_every=4).compute()
    assert b.mean().compute() == 4 and db.from_partitions([[x] for x in range(40)]).mean().compute() == 19.5


def mod5(x):
    return x % 5


def test_multi_bag_ops_after_shuffles_and_sorts():
    b = db.from_sequence(range(40), npartitions=4)
    groups = b.groupby(mod5)
    assert sorted(db.zip(groups, groups.map(len)).compute()) == [((k, list(range(k, 40, 5))), 2) for k in range(5)]
    counts = b.map(mod5).frequencies()
    assert sorted(db.concat([counts, counts]).compute()) == sorted([(k, 8) for k in range(5)] * 2)
    desc = b.map(operator.neg).sort(npartitions=3)
    assert desc.product(db.from_sequence("ab")).take(3, npartitions=-1) == ((-39, "a"), (-38, "a"), (-37, "a"))
    assert desc.accumulate(add).compute() == list(itertools.accumulate(sorted(-x for x in range(40)), add))
    assert sorted(groups.pluck(0).map(add, groups.count()).compute()) == [5, 6, 7, 8, 9]


def test_read_text_takes_pathlib_paths(tmp_path):
    (tmp_path / "p.txt").write_text("a\nb\n")
    assert db.read_text(tmp_path / "p.txt").compute() == ["a\n", "b\n"]
    assert db.read_text([tmp_path / "p.txt", str(tmp_path / "p.txt")]).count().compute() == 4


def ten():
    return 10


def test_map_broadcasts_a_delayed_value_like_an_item():
    b = db.from_sequence(range(4), npartitions=2)
    assert b.map(add, gw.delayed(ten)()).compute() == [10, 11, 12, 13]
    assert db.map_partitions(lambda p, t: [len(p) * t], b, gw.delayed(ten)()).compute() == [20, 20]
    assert db.compute(b.sum(), b.count()) == (6, 4)      # dask.bag.compute is graphwren.compute
