"""Lithops' FunctionExecutor API on graphwren: argument binding, reserved ``id``/``obj``, per-call options,
get_result / wait / plot / clean / job_summary, storage names.

Every result is checked against the plain-Python call it stands for. The
``obj`` partitioning runs through real S3 (moto's server), Redis, and local
files; hypothesis checks that the chunks' streams reassemble each object.
"""
from __future__ import annotations

import os
import sys
import time

import cloudpickle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphwren as gw
from graphwren import executor as gx
from graphwren.runtime.storage import open_store
from graphwren.tasks.cloud_objects import CloudObject
from graphwren.executor_objects import chunks

pytestmark = pytest.mark.usefixtures("isolated_config")

# Lambda workers cannot import this module: its functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _add(a, b, c=0):
    return a + b + c


def _pair(pair):
    return pair[0] * 10 + pair[1]


def _kw(**kwargs):
    return sorted(kwargs.items())


def _with_id(x, id):
    return (x, id)


def _read(obj):
    return obj.data_stream.read()


def _meta(obj):
    return (obj.key, obj.part, obj.total_parts, obj.data_byte_range, obj.chunk_size, obj.data_stream.read())


def _lines(obj):
    return [line for line in obj.data_stream]


def _sleep(x):
    time.sleep(x)
    return x


def _swallow_everything(x):
    try:
        time.sleep(x)
    except Exception:   # the timeout must pass through a user's catch-all
        return "swallowed"
    return x


class Odd(Exception):
    pass


def _odd_fails(x):
    if x % 2:
        raise Odd(f"odd {x}")
    return x


def _env(x):
    return os.environ.get("GW_LITHOPS_TEST"), x


@pytest.fixture
def ex(tmp_path):
    return gw.FunctionExecutor(storage=f"file://{tmp_path}/store", progress=False)


# -- binding items to arguments, against Python's own calls ---------------------------------------
def test_tuples_are_args_dicts_are_kwargs(ex):
    items = [(1, 2), (3, 4, 5), {"a": 6, "b": 7}, {"a": 1, "b": 1, "c": 1}]
    expected = [_add(*i) if isinstance(i, tuple) else _add(**i) for i in items]
    assert ex.get_result(ex.map(_add, items)) == expected
    assert ex.get_result(ex.map(_kw, [{"x": 1, "y": 2}])) == [_kw(x=1, y=2)]


def test_extra_args(ex):
    assert ex.get_result(ex.map(_add, [1, 2, 3], extra_args=(10,))) == [_add(x, 10) for x in (1, 2, 3)]
    assert ex.get_result(ex.map(_add, [(1, 2)], extra_args=(3,))) == [_add(1, 2, 3)]
    assert ex.get_result(ex.map(_add, [{"a": 1}], extra_args={"b": 5})) == [_add(a=1, b=5)]
    assert ex.get_result(ex.map(_add, [1], extra_args={"b": 5, "c": 1})) == [_add(1, b=5, c=1)]
    with pytest.raises(TypeError, match="extra_args must be"):
        ex.map(_add, [1], extra_args=5)
    with pytest.raises(TypeError, match="input item 0 and extra_args both give"):
        ex.map(_add, [{"a": 1, "b": 2}], extra_args={"b": 3})


def test_pywren_items_whole_where_only_that_fits(ex):
    pairs = [(1, 2), (3, 4)]
    assert gw.get_all_results(ex.map(_pair, pairs)) == [_pair(p) for p in pairs]
    assert ex.map(lambda x: x, [{"not": "a", "param": 1}]).get_result() == [{"not": "a", "param": 1}]
    assert ex.map(len, ["ab", (1, 2, 3)]).get_result() == [2, 3]   # no signature: the item whole


def test_an_item_that_fits_no_way_is_a_type_error_at_submit(ex):
    with pytest.raises(TypeError, match=r"input item 1 \(\(1, 2, 3, 4\)\) does not fit _add"):
        ex.map(_add, [(1, 2), (1, 2, 3, 4)])
    with pytest.raises(TypeError, match="input item 0"):
        ex.map(_add, [{"a": 1, "zzz": 2}])


def test_call_async_binds_like_map(ex):
    assert ex.call_async(_add, (1, 2)).result() == 3
    assert ex.call_async(_add, {"a": 1, "b": 2, "c": 3}).result() == 6
    assert ex.call_async(_pair, (4, 2)).result() == 42
    assert ex.get_result() == [3, 6, 42]


@pytest.mark.parametrize("chunksize", [1, 3, 100])
def test_reserved_id_is_the_call_index(ex, chunksize):
    items = list("abcdefg")
    assert ex.get_result(ex.map(_with_id, items, chunksize=chunksize)) == [(x, i) for i, x in enumerate(items)]
    # with tuple items the id still lands in its own parameter, whatever its position
    def mid(a, id, b):
        return (a, id, b)
    assert ex.map(mid, [(1, 2), (3, 4)]).get_result() == [(1, 0, 2), (3, 1, 4)]


def test_chaining_maps_over_futures(ex):
    first = ex.map(_add, [(1, 2), (3, 4)])
    assert ex.map(_pair, ex.map(lambda x: (x, x), first)).get_result() == [_pair((v, v)) for v in (3, 7)]
    with pytest.raises(Odd):
        ex.map(_add, ex.map(_odd_fails, [1]))


def test_a_lone_string_is_one_item(ex):
    assert ex.map(len, "abc").get_result() == [3]   # Lithops wraps a lone string, as one call


# -- errors and per-call options -----------------------------------------------------------------
def test_exceptions_keep_their_type_per_call(ex):
    futures = ex.map(_odd_fails, range(6), chunksize=2)
    for i, f in enumerate(futures):
        if i % 2:
            with pytest.raises(Odd, match=f"odd {i}"):
                f.result()
            assert f.error and not f.success
        else:
            assert f.result() == i and f.success
    with pytest.raises(Odd):
        ex.get_result(futures)
    assert ex.get_result(futures, throw_except=False) == [None if i % 2 else i for i in range(6)]


def test_per_call_timeout_stops_only_that_call(ex):
    futures = ex.map(_sleep, [0.0, 30.0, 0.0], timeout=1, chunksize=3)
    assert futures[0].result(timeout=60) == 0.0 and futures[2].result(timeout=60) == 0.0
    with pytest.raises(TimeoutError, match=r"call 1 of map\(_sleep\) ran longer than timeout=1s") as info:
        futures[1].result(timeout=60)
    assert isinstance(info.value, gx.calls.CallTimeout)
    caught = ex.call_async(_swallow_everything, 30.0, timeout=1)
    with pytest.raises(TimeoutError):
        caught.result(timeout=60)
    with pytest.raises(ValueError, match="timeout must be"):
        ex.map(_sleep, [1], timeout=0)


def test_extra_env_is_set_for_the_calls_only(ex):
    got = ex.map(_env, range(4), extra_env={"GW_LITHOPS_TEST": "yes"}, chunksize=2).get_result()
    assert got == [("yes", x) for x in range(4)]
    assert ex.map(_env, range(4), chunksize=2).get_result() == [(None, x) for x in range(4)]   # the warm worker's own back
    with pytest.raises(TypeError, match="extra_env"):
        ex.map(_env, [1], extra_env=["GW_X"])


def _hog(mb):
    block = bytearray(mb * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(3)
    return len(block)


def test_runtime_memory_caps_a_local_task(ex):
    from graphwren.errors import TaskMemoryError
    assert ex.call_async(_hog, 10, runtime_memory=1024).result(timeout=60) == 10 * 2**20
    with pytest.raises(TaskMemoryError, match="over max_task_memory=400 MiB"):
        ex.call_async(_hog, 800, runtime_memory=400).result(timeout=120)
    with pytest.raises(ValueError, match="runtime_memory"):
        ex.map(_hog, [1], runtime_memory=0)


# -- wait and get_result -------------------------------------------------------------------------
def test_wait_return_when_forms(ex):
    futures = ex.map(_sleep, [0.0, 0.0, 2.0, 2.0], chunksize=1)
    done, not_done = ex.wait(futures, return_when=gx.ALWAYS)
    assert set(done) | set(not_done) == set(futures) and not set(done) & set(not_done)
    done, not_done = ex.wait(futures, return_when=gw.ANY_COMPLETED)
    assert len(done) >= 1 and all(f.done for f in done)
    done, not_done = ex.wait(futures, return_when=50)
    assert len(done) >= 2
    done, not_done = ex.wait(futures)   # ALL_COMPLETED
    assert done == futures and not_done == []
    assert [f.result() for f in done] == [0.0, 0.0, 2.0, 2.0]
    assert isinstance(done, gx.FuturesList)
    with pytest.raises(ValueError, match="return_when"):
        ex.wait(futures, return_when=101)


def test_wait_raises_failures_and_timeouts(ex):
    with pytest.raises(Odd, match="odd 1"):
        ex.wait(ex.map(_odd_fails, [0, 1]))
    slow = ex.map(_sleep, [5.0])
    with pytest.raises(TimeoutError, match="1 of 1 not done"):
        ex.wait(slow, timeout=0.2)
    done, pending = gw.wait(slow, timeout=0.1)   # PyWren's function returns what is done instead
    assert done == [] and pending == list(slow)
    assert slow.get_result() == [5.0]


def test_futures_read_done_as_property_and_method(ex):
    f = ex.call_async(_sleep, 0.0)
    f.result(timeout=60)
    assert f.done and f.done() and f.ready and f.success and not f.error
    g = ex.call_async(_sleep, 3.0)
    assert not g.done and not g.done()
    g.result(timeout=60)


def test_get_result_forms(ex):
    ex.map(_add, [(1, 1)])
    assert ex.get_result() == [2]   # after map: a list, even of one
    ex.call_async(_add, (2, 2))
    assert ex.get_result() == 4     # after call_async: the value
    assert ex.get_result() == []    # everything read
    fs = ex.map_reduce(_add, [(1, 2), (3, 4)], sum)
    assert ex.get_result(fs) == sum(_add(*p) for p in [(1, 2), (3, 4)])
    assert fs.result() == 10 and [f.result() for f in fs[:2]] == [3, 7]
    # PyWren's map_reduce gave one future: the list answers as the reducer's future does
    assert fs.done() and fs.exception() is None
    seen = []
    fs.add_done_callback(seen.append)
    assert seen == [fs]
    failed = ex.map_reduce(_odd_fails, [1, 2], sum)
    with pytest.raises(Odd):
        failed.result(timeout=60)
    assert isinstance(failed.exception(), Odd) and failed.done()


def test_map_reduce_extra_args_and_spawn_reducer(ex):
    def total(results, scale):
        return sum(results) * scale

    fs = ex.map_reduce(_add, [(1, 2), (3, 4)], total, extra_args_reduce=(10,), spawn_reducer=gx.ALWAYS)
    assert fs.result() == 100
    with pytest.raises(ValueError, match="spawn_reducer"):
        ex.map_reduce(_add, [(1, 2)], sum, spawn_reducer=150)


# -- the reserved obj parameter: chunks of stored objects -----------------------------------------
def _put_objects(url_of, put, contents: dict[str, bytes]) -> list[str]:
    for name, data in contents.items():
        put(name, data)
    return [url_of(name) for name in contents]


def _reassembled(futures, ex) -> bytes:
    return b"".join(ex.get_result(futures))


def test_obj_chunks_on_s3(s3_url):
    ex = gw.FunctionExecutor(storage=s3_url, progress=False)
    store = open_store("s3://gw-test")
    data = {"in/a.txt": b"alpha\nbeta\ngamma delta\n" * 40, "in/b.txt": b"x" * 300 + b"\nshort\nno newline",
            "in/empty.txt": b"", "other/c.txt": b"c\n"}
    for key, blob in data.items():
        store.put(key, blob)
    # one object, chunked: lines reassemble it exactly, each chunk holds whole lines
    fs = ex.map(_meta, ["s3://gw-test/in/a.txt"], obj_chunk_size=64)
    got = ex.get_result(fs)
    assert b"".join(g[-1] for g in got) == data["in/a.txt"]
    assert [g[1] for g in got] == list(range(1, len(got) + 1)) and {g[2] for g in got} == {len(got)}
    assert all(g[-1] == b"" or g[-1].endswith(b"\n") for g in got)
    assert got[0][3] == (0, 63) and got[0][4] == 64 and got[0][0] == "in/a.txt"
    # a prefix: every object under it, in order (the empty one gives no call, as in Lithops)
    fs = ex.map(_read, ["s3://gw-test/in/"], obj_chunk_number=3)
    assert _reassembled(fs, ex) == data["in/a.txt"] + data["in/b.txt"]
    # a bare 'bucket/key' is relative to the executor's S3 storage; a glob; the whole bucket
    assert ex.map(_read, ["gw-test/other/c.txt"]).get_result() == [b"c\n"]
    assert ex.map(_read, ["s3://gw-test/in/*.txt"]).get_result() == [data["in/a.txt"], data["in/b.txt"]]
    ex.get_result(ex.map(_read, ["s3://gw-test/in/a.txt"]))   # a job just ended: its keys are going
    whole = ex.map(_read, ["s3://gw-test"]).get_result()      # the whole bucket, but not the executor's jobs
    assert sorted(whole) == sorted(v for v in data.values() if v)


def test_obj_with_other_arguments_and_reduce_by_key(tmp_path):
    ex = gw.FunctionExecutor(storage=f"file://{tmp_path}/store", progress=False)
    folder = tmp_path / "data"
    folder.mkdir()
    texts = {"f1.txt": "a b\nc\n" * 30, "f2.txt": "d\n" * 50, "f10.txt": "e f g\n" * 7}
    for name, text in texts.items():
        (folder / name).write_text(text)

    def words(obj, scale, id):
        return len(obj.data_stream.read().split()) * scale

    def count_lines(obj):
        return sum(1 for _ in obj.data_stream)

    expected = [len(texts[n].split()) for n in ("f1.txt", "f2.txt", "f10.txt")]   # natural order
    fs = ex.map_reduce(words, [(str(folder), 2)], sum, obj_chunk_size=16, obj_reduce_by_key=True)
    assert fs.result() == [2 * e for e in expected]
    assert ex.map_reduce(count_lines, [f"file://{folder}/f1.txt"], sum, obj_chunk_size=7).result() == 60
    assert ex.map_reduce(count_lines, [{"obj": str(folder / "f2.txt")}], sum, obj_chunk_number=4).result() == 50


def test_obj_on_redis(redis_store_url):
    ex = gw.FunctionExecutor(storage=redis_store_url, progress=False)
    store = open_store(redis_store_url)
    blob = b"".join(b"line %d %s\n" % (i, b"z" * (i % 7)) for i in range(200))
    store.put("input/log.txt", blob)
    fs = ex.map(_lines, [f"{redis_store_url}/input/log.txt"], obj_chunk_size=100)
    lines = [line for chunk in ex.get_result(fs) for line in chunk]
    assert lines == blob.splitlines(keepends=True)
    assert b"".join(ex.map(_read, ["input/"], obj_chunk_size=333).get_result()) == blob   # relative to the store


def test_obj_errors_name_what_is_wrong(tmp_path, s3_url):
    ex = gw.FunctionExecutor(storage=s3_url, progress=False)
    open_store("s3://gw-test").put("there.txt", b"x\n")
    with pytest.raises(FileNotFoundError, match="input item 1: no such object 's3://gw-test/nope.txt'"):
        ex.map(_read, ["s3://gw-test/there.txt", "s3://gw-test/nope.txt"])
    with pytest.raises(FileNotFoundError, match="no object under 's3://gw-test/none/'"):
        ex.map(_read, ["s3://gw-test/none/"])
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        ex.map(_read, [str(tmp_path / "missing")])
    with pytest.raises(ValueError, match="obj_chunk_size must be"):
        ex.map(_read, ["s3://gw-test/x"], obj_chunk_size=0)
    with pytest.raises(ValueError, match="obj_newline"):
        ex.map(_read, ["s3://gw-test/x"], obj_newline="\r\n")
    with pytest.raises(TypeError, match="takes no 'obj'"):
        ex.map(_sleep, [1], obj_chunk_size=10)
    with pytest.raises(ValueError, match="not http://"):
        ex.map(_read, ["http://example.com/x.txt"])


def test_obj_exception_names_the_chunk(tmp_path):
    ex = gw.FunctionExecutor(storage=f"file://{tmp_path}/store", progress=False)
    (tmp_path / "f.txt").write_bytes(b"1\n2\nx\n4\n")

    def parse(obj):
        return [int(line) for line in obj.data_stream]

    futures = ex.map(parse, [str(tmp_path / "f.txt")], obj_chunk_size=2)
    with pytest.raises(ValueError, match="invalid literal") as info:
        futures[2].result(timeout=60)
    assert any("call 2 of map(" in n and "f.txt part 3/4" in n for n in info.value.__notes__)
    assert [f.result() for i, f in enumerate(futures) if i != 2] == [[1], [2], [4]]


def test_obj_exact_ranges_without_newline(tmp_path):
    ex = gw.FunctionExecutor(storage=f"file://{tmp_path}/store", progress=False)
    blob = bytes(range(256)) * 3
    (tmp_path / "bin").write_bytes(blob)
    got = ex.map(_read, [str(tmp_path / "bin")], obj_chunk_size=100, obj_newline=None).get_result()
    assert got == [blob[i:i + 100] for i in range(0, len(blob), 100)]


# -- hypothesis: chunks reassemble every object, on S3 and on local files --------------------------
_line = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"."))
_objects = st.tuples(st.lists(_line, max_size=12), st.booleans()).map(
    lambda lt: b"\n".join(lt[0]) + (b"\n" if lt[1] and lt[0] else b""))


def _chunk_bytes(location: dict, blob: bytes, chunk_size: int) -> list[bytes]:
    out = []
    for c in chunks(location, len(blob), chunk_size, None, "\n"):
        with c.open() as stream:
            out.append(stream.read())
    return out


def _split_lines(blob: bytes) -> list[bytes]:
    """Lines ending in b"\n" (bytes.splitlines would also cut at \r and others), the last one maybe without."""
    lines = [line + b"\n" for line in blob.split(b"\n")]
    lines[-1] = lines[-1][:-1]
    return [line for line in lines if line]


def _check_chunks(parts: list[bytes], blob: bytes, chunk_size: int) -> None:
    assert b"".join(parts) == blob
    lines = _split_lines(blob)
    assert [line for p in parts for line in _split_lines(p)] == lines
    # chunk i holds exactly the lines that start in its nominal range
    starts, pos = [], 0
    for line in lines:
        starts.append(pos)
        pos += len(line)
    for i, p in enumerate(parts):
        lo, hi = i * chunk_size, (i + 1) * chunk_size
        assert p == b"".join(line for line, s in zip(lines, starts) if lo <= s < hi)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=_objects, chunk_size=st.integers(1, 50))
def test_chunks_reassemble_local_files(tmp_path, blob, chunk_size):
    path = tmp_path / "obj.txt"
    path.write_bytes(blob)
    location = {"store_url": None, "key": "obj.txt", "backend": "localhost", "bucket": str(tmp_path),
                "path": str(path), "url": f"file://{path}"}
    _check_chunks(_chunk_bytes(location, blob, chunk_size), blob, chunk_size)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=_objects, chunk_size=st.integers(1, 50))
def test_chunks_reassemble_s3_objects(s3_url, blob, chunk_size):
    store = open_store("s3://gw-test")
    store.put("hyp/obj.txt", blob)
    location = {"store_url": "s3://gw-test", "key": "hyp/obj.txt", "backend": "aws_s3", "bucket": "gw-test",
                "url": "s3://gw-test/hyp/obj.txt"}
    _check_chunks(_chunk_bytes(location, blob, chunk_size), blob, chunk_size)


def test_a_line_longer_than_many_chunks_and_scan_blocks(tmp_path, monkeypatch):
    from graphwren.tasks import cloud_objects
    monkeypatch.setattr(cloud_objects, "SCAN_BLOCK", 7)   # the boundary search crosses many reads
    blob = b"short\n" + b"L" * 500 + b"\nend"
    path = tmp_path / "long.txt"
    path.write_bytes(blob)
    location = {"store_url": None, "key": "long.txt", "backend": "localhost", "bucket": str(tmp_path),
                "path": str(path), "url": f"file://{path}"}
    _check_chunks(_chunk_bytes(location, blob, 32), blob, 32)


def test_cloud_object_pickles_without_its_stream(tmp_path):
    path = tmp_path / "o"
    path.write_bytes(b"a\nb\n")
    obj = CloudObject(None, "o", 4, 0, 4, 1, 1, "\n", "localhost", str(tmp_path), path=str(path))
    obj.data_stream = obj.open()
    copy = cloudpickle.loads(cloudpickle.dumps(obj))
    obj.data_stream.close()
    with copy.open() as stream:
        assert copy.data_stream is None and stream.read() == b"a\nb\n" and copy.path == str(path)


# -- plot, job_summary, clean ----------------------------------------------------------------------
def test_plot_writes_timeline_and_histogram(ex, tmp_path):
    assert ex.plot() is None   # nothing ran yet
    ex.get_result(ex.map(_sleep, [0.05] * 6, chunksize=1))
    timeline, histogram = ex.plot(dst=str(tmp_path / "plots" / "run"))
    for path in (timeline, histogram):
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert timeline.endswith("run_timeline.png") and histogram.endswith("run_histogram.png")


def test_job_summary_rows(ex, tmp_path):
    ex.get_result(ex.map(_add, [(1, 2)] * 5))
    ex.map_reduce(_add, [(1, 1)] * 3, sum).result()
    rows = ex.job_summary(path=str(tmp_path / "summary.csv"))
    assert [(r["Job_ID"], r["Function"], r["Invocations"]) for r in rows] == [
        ("M000", "_add", 5), ("M001", "_add", 3), ("R001", "sum", 1), ("Summary", "", 9)]
    assert all(r["Cost"] == 0.0 for r in rows)   # the local backend costs nothing
    assert (tmp_path / "summary.csv").read_text().splitlines()[0].startswith("Job_ID,Function,Invocations")


def test_clean_removes_kept_jobs(tmp_path):
    url = f"file://{tmp_path}/store"
    ex = gw.FunctionExecutor(storage=url, progress=False, keep=True)
    fs = ex.map(_add, [(1, 2)] * 4)
    assert ex.get_result(fs) == [3] * 4
    ex.wait_all()
    assert open_store(url).list("")
    assert ex.clean() > 0
    assert open_store(url).list("") == []
    with pytest.raises(ValueError, match="cloudobjects"):
        ex.clean(cs=["x"])


# -- storage and backend names -----------------------------------------------------------------------
def test_storage_localhost_is_a_folder_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    ex = gw.FunctionExecutor(storage="localhost", progress=False)
    assert ex.settings["storage"] == f"file://{tmp_path}/cache/graphwren/localhost"
    (tmp_path / "cache" / "graphwren" / "localhost" / "bucket").mkdir(parents=True)
    (tmp_path / "cache" / "graphwren" / "localhost" / "bucket" / "k.txt").write_bytes(b"k\n")
    assert ex.map(_read, ["bucket/k.txt"]).get_result() == [b"k\n"]   # Lithops' bare 'bucket/key'
    assert not (tmp_path / "localhost").exists()
    assert gx.LocalhostExecutor(progress=False).settings["storage"].endswith("/graphwren/localhost")


def test_unknown_storage_and_backend_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown storage name 'ibm_cos'.*'./ibm_cos'"):
        gw.FunctionExecutor(storage="ibm_cos")
    with pytest.raises(ValueError, match="storage='s3://BUCKET/PREFIX'"):
        gw.FunctionExecutor(storage="aws_s3")
    with pytest.raises(ValueError, match="unknown backend 'gcp_functions'"):
        gw.FunctionExecutor(backend="gcp_functions")
    with pytest.raises(ValueError, match="unknown mode 'standalone'"):
        gw.FunctionExecutor(mode="standalone")


def test_lithops_config_dict_names_storage_and_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ex = gw.FunctionExecutor(config={"lithops": {"storage": "localhost", "backend": "localhost"}}, progress=False)
    assert ex.settings["storage"].endswith("/cache/graphwren/localhost") and ex.settings["backend"] == "local"


def test_pywren_names(tmp_path):
    pwex = gw.default_executor(storage=f"file://{tmp_path}/store", progress=False)
    futures = pwex.map(_pair, [(1, 2), (3, 4)])
    assert gw.get_all_results(futures) == [12, 34]
    done, pending = gw.wait(futures, return_when=gw.ALL_COMPLETED)
    assert done == list(futures) and pending == []
    assert pwex.call_async(_pair, (5, 6)).result() == 56
    assert pwex.map_reduce(_pair, [(1, 1)], sum).result() == 11
    assert gw.get_result(futures) == [12, 34]


# -- Lambda, through the local endpoint: extra_env and runtime_memory reach the invocation -------------
from lambda_fixtures import lambda_emulator, lambda_settings  # noqa: E402,F401


def _probe(x):
    return os.environ.get("GW_LITHOPS_TEST"), os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), x


def test_lambda_extra_env_runtime_memory_and_obj(lambda_settings, s3_url):
    from graphwren.runtime.backends.lambda_ import LambdaSetupError
    from graphwren.runtime.backends.lambda_names import function_name
    ex = gw.FunctionExecutor(storage=s3_url, **lambda_settings)
    got = ex.map(_probe, range(3), extra_env={"GW_LITHOPS_TEST": "on-lambda"}, runtime_memory=2048,
                 chunksize=1).get_result()
    assert got == [("on-lambda", "2048", x) for x in range(3)]
    with pytest.raises(LambdaSetupError, match=f"{function_name(1024)}.*does not exist"):
        ex.map(_probe, [1], runtime_memory=1024)    # Lithops' runtime_memory picks the function of that memory
    blob = b"".join(b"row %d\n" % i for i in range(100))
    open_store("s3://gw-test").put("lambda/in.txt", blob)
    assert b"".join(ex.map(_read, ["s3://gw-test/lambda/in.txt"], obj_chunk_size=64).get_result()) == blob


@pytest.fixture(scope="module")
def module_executor(tmp_path_factory):
    return gw.FunctionExecutor(storage=f"file://{tmp_path_factory.mktemp('hyp')}/store", progress=False)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=_objects, chunk_size=st.integers(1, 50), chunksize=st.integers(1, 4))
def test_map_over_chunks_reassembles_the_object(module_executor, tmp_path_factory, blob, chunk_size, chunksize):
    path = tmp_path_factory.mktemp("obj") / "o.txt"
    path.write_bytes(blob)
    parts = module_executor.map(_read, [f"file://{path}"], obj_chunk_size=chunk_size, chunksize=chunksize).get_result()
    if blob:
        _check_chunks(parts, blob, chunk_size)
    else:
        assert parts == []   # an empty object gets no call, as in Lithops
