"""The storage contract, run against every store (file, s3 on moto, redis on a real server)."""
from __future__ import annotations

import os
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from graphwren.errors import MissingKey, StorageError
from graphwren.runtime.storage import Store, open_store

MiB = 1 << 20
BIG = bytes(range(256)) * (3 * MiB // 256) + b"Z"  # 3 MiB + 1: four 1 MiB chunks in Redis
assert len(BIG) == 3 * MiB + 1


@pytest.fixture
def store(store_url) -> Store:
    s = open_store(store_url)
    assert s.list("") == []  # every test starts from an empty store
    return s


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: nothing listens there


# -- put / get ---------------------------------------------------------------


@pytest.mark.parametrize("value", [b"", b"x", BIG], ids=["empty", "1byte", "3MiB+1"])
def test_put_get_round_trip(store, value):
    store.put("job/v", value)
    assert store.get("job/v") == value
    assert store.size("job/v") == len(value)
    assert store.exists("job/v") is True
    assert store.list("") == ["job/v"]


def test_ranged_get_small(store):
    store.put("k", b"0123456789")
    assert store.get("k", 0, 10) == b"0123456789"
    assert store.get("k", 2, 5) == b"234"
    assert store.get("k", 7) == b"789"
    assert store.get("k", None, 3) == b"012"
    assert store.get("k", 0, 1) == b"0"
    assert store.get("k", 9, 10) == b"9"
    assert store.get("k", 5, 5) == b""
    assert store.get("k", 6, 2) == b""
    assert store.get("k", 8, 100) == b"89"  # end past the value is clamped
    assert store.get("k", 10) == b""
    assert store.get("k", 12, 20) == b""


def test_ranged_get_big(store):
    store.put("big", BIG)
    cases = [
        (10, 1000),  # inside the first chunk
        (MiB - 5, MiB + 5),  # across a chunk boundary
        (MiB, 2 * MiB),  # exactly one whole chunk
        (MiB - 1, 3 * MiB + 1),  # across three boundaries, to the end
        (3 * MiB - 3, None),  # to the end, open-ended
        (2 * MiB + 17, 2 * MiB + 18),  # one byte in a middle chunk
        (3 * MiB, 3 * MiB + 1),  # the last byte alone (the 1-byte last chunk)
        (0, None),
        (None, MiB + 1),
        (3 * MiB + 1, None),  # starts at the end: empty
        (5, 5),  # empty range
    ]
    for start, end in cases:
        expected = BIG[(start or 0) : (len(BIG) if end is None else end)]
        got = store.get("big", start, end)
        assert len(got) == len(expected), (start, end)
        assert got == expected, (start, end)


def test_view_reads_what_get_reads(store):
    # view: get as a read-only buffer (a file store maps values of MAP_MIN bytes or more)
    store.put("big", BIG)
    store.put("small", b"hello")
    for start, end in [(None, None), (0, None), (10, 1000), (MiB - 5, 3 * MiB + 1), (5, 5), (3 * MiB + 1, None),
                       (4097, 3 * MiB - 1), (0, 10 * MiB)]:
        want = BIG[(start or 0):(len(BIG) if end is None else end)]
        got = store.view("big", start, end)
        assert bytes(got) == want, (start, end)
    assert bytes(store.view("small")) == b"hello" and bytes(store.view("small", 1, 3)) == b"el"
    with pytest.raises(MissingKey):
        store.view("nope")


def test_a_file_store_view_maps_large_values_and_outlives_their_replacement(tmp_path):
    import mmap

    import numpy as np

    from graphwren.runtime import stats
    store = open_store(f"file://{tmp_path}/s")
    value = np.arange(MiB, dtype=np.int64)   # 8 MiB
    store.put("a/block", value.tobytes())
    view = store.view("a/block", 8 * 4096 + 8)   # a start off the page grid
    assert isinstance(view.obj, mmap.mmap) and view.readonly
    got = np.frombuffer(view, dtype=np.int64)
    np.testing.assert_array_equal(got, value[4097:])
    assert not isinstance(store.view("a/block", 0, 100), memoryview)   # small reads are plain reads
    store.put("a/block", b"replaced")        # a new file renamed over the old: the mapping keeps the old
    np.testing.assert_array_equal(got, value[4097:])
    store.delete("a/")
    np.testing.assert_array_equal(got, value[4097:])
    store.put("b", value.tobytes())
    with stats.TaskMeter() as meter:   # a mapped read is billed as the one GET it is
        store.view("b")
        store.view("b", 0, 10)
    assert meter.requests["file"] == {"get": 2} and meter.bytes_read == value.nbytes + 10


def test_overwrite(store):
    store.put("k", b"first")
    store.put("k", b"second, longer")
    assert store.get("k") == b"second, longer"
    store.put("k", BIG)  # small -> chunked
    assert store.get("k") == BIG
    store.put("k", BIG[::-1])  # chunked -> chunked
    assert store.get("k") == BIG[::-1]
    assert store.get("k", MiB - 2, MiB + 2) == BIG[::-1][MiB - 2 : MiB + 2]
    store.put("k", b"tiny")  # chunked -> small
    assert store.get("k") == b"tiny"
    assert store.size("k") == 4
    assert store.list("") == ["k"]


# -- put_if_absent -------------------------------------------------------------


@pytest.mark.parametrize("value", [b"winner", b"", BIG], ids=["small", "empty", "3MiB+1"])
def test_put_if_absent_first_wins(store, value):
    assert store.put_if_absent("done/3", value) is True
    assert store.put_if_absent("done/3", b"loser") is False
    assert store.put_if_absent("done/3", BIG[::-1]) is False
    assert store.get("done/3") == value
    assert store.list("") == ["done/3"]


def test_put_if_absent_after_put(store):
    store.put("k", b"old")
    assert store.put_if_absent("k", b"new") is False
    assert store.get("k") == b"old"


def test_put_if_absent_race(store):
    n = 8
    for round_ in range(3):
        key = f"done/{round_}"
        barrier = threading.Barrier(n)

        def value(i):  # the last round races multi-chunk values
            return (BIG if round_ == 2 else b"") + f"attempt-{i}".encode()

        def attempt(i):
            barrier.wait()
            return store.put_if_absent(key, value(i))

        with ThreadPoolExecutor(n) as pool:
            results = list(pool.map(attempt, range(n)))
        assert sum(results) == 1, results
        assert store.get(key) == value(results.index(True))
    assert store.list("done/") == ["done/0", "done/1", "done/2"]


# -- exists / size / missing ----------------------------------------------------


def test_missing_keys(store):
    assert store.exists("nope") is False
    with pytest.raises(MissingKey) as e:
        store.get("nope")
    assert "nope" in str(e.value)
    assert isinstance(e.value, KeyError)
    with pytest.raises(MissingKey, match="nope"):
        store.get("nope", 0, 10)
    with pytest.raises(MissingKey, match="nope"):
        store.size("nope")
    store.put("a/b", b"1")
    assert store.exists("a") is False  # a prefix is not a key
    with pytest.raises(MissingKey):
        store.get("a")
    with pytest.raises(MissingKey):
        store.size("a")


def test_s3_missing_key_names_full_url(s3_url):
    store = open_store(s3_url)
    with pytest.raises(MissingKey) as e:
        store.get("job/x")
    assert str(e.value) == "missing key s3://gw-test/t/job/x"


# -- list / delete ----------------------------------------------------------------


def _fill(store):
    keys = [
        "job/func",
        "job/stage1/out/0.0",
        "job/stage1/out/1.0",
        "job/stage1/done/0",
        "job/stage10/out/0.0",
        "job/stage2/out/0.0",
        "jobs/other",
        "top",
    ]
    for i, k in enumerate(reversed(keys)):
        store.put(k, f"v{i}".encode())
    store.put("job/stage1/big", BIG)
    return sorted(keys + ["job/stage1/big"])


def test_list_prefixes(store):
    all_keys = _fill(store)
    assert store.list("") == all_keys
    assert store.list("job/") == [k for k in all_keys if k.startswith("job/")]
    assert store.list("job") == [k for k in all_keys if k.startswith("job")]
    assert store.list("job/st") == [k for k in all_keys if k.startswith("job/st")]
    assert store.list("job/stage1") == [
        "job/stage1/big",
        "job/stage1/done/0",
        "job/stage1/out/0.0",
        "job/stage1/out/1.0",
        "job/stage10/out/0.0",
    ]
    assert store.list("job/stage1/") == [
        "job/stage1/big",
        "job/stage1/done/0",
        "job/stage1/out/0.0",
        "job/stage1/out/1.0",
    ]
    assert store.list("job/stage1/out/1") == ["job/stage1/out/1.0"]
    assert store.list("job/stage1/out/1.0") == ["job/stage1/out/1.0"]
    assert store.list("job/stage3") == []
    assert store.list("nothing/") == []
    assert store.list("t") == ["top"]


def test_list_never_shows_temp_or_chunk_keys(store, store_url, tmp_path):
    store.put("a/big", BIG)
    store.put_if_absent("a/big2", BIG)
    store.put_if_absent("a/big2", BIG)  # loser's chunks must not linger either
    store.put("a/small", b"s")
    assert store.list("") == ["a/big", "a/big2", "a/small"]
    assert store.list("a/b") == ["a/big", "a/big2"]
    if store_url.startswith("file://"):
        root = store_url[len("file://"):]
        names = sorted(os.listdir(os.path.join(root, "a")))
        assert names == ["big", "big2", "small"]  # no temp files left behind
        # a temp file of an in-flight writer is never listed
        open(os.path.join(root, "a", ".gwtmp-123-4-5"), "wb").close()
        assert store.list("") == ["a/big", "a/big2", "a/small"]
        assert store.list("a/.gw") == []
    if store_url.startswith("redis://"):
        import redis

        r = redis.Redis.from_url(store_url)
        chunk_keys = [k for k in r.keys("*") if b":c:" in k]
        assert len(chunk_keys) == 8  # 4 chunks each for a/big and a/big2; none for the loser
        r.close()


def test_delete_prefix(store, store_url):
    all_keys = _fill(store)
    assert store.delete("job/stage1/") == 4
    assert store.list("job/stage1/") == []
    assert store.exists("job/stage1/big") is False
    assert store.list("") == [k for k in all_keys if not k.startswith("job/stage1/")]
    assert store.delete("job/stage1/") == 0
    assert store.delete("job/stage") == 2
    assert store.list("") == ["job/func", "jobs/other", "top"]
    assert store.delete("job") == 2
    assert store.list("") == ["top"]
    # the store still works where directories were pruned
    store.put("job/stage1/out/0.0", b"again")
    assert store.get("job/stage1/out/0.0") == b"again"
    assert store.put_if_absent("job/stage9/done/0", b"d") is True
    assert store.delete("") == 3
    assert store.list("") == []
    if store_url.startswith("redis://"):
        import redis

        r = redis.Redis.from_url(store_url)
        assert r.dbsize() == 0  # chunks went with their values
        r.close()


# -- keys with odd characters ----------------------------------------------------


def test_odd_keys(store):
    odd = ["a b", "x[1]*?", "x[1]/y", "x[2]", "xa", "q\\z", "ü/é", "p%20q", "h#t", "c:d"]
    for i, k in enumerate(odd):
        store.put(k, f"v{i}".encode())
    for i, k in enumerate(odd):
        assert store.get(k) == f"v{i}".encode()
        assert store.exists(k)
    assert store.list("") == sorted(odd)
    # glob metacharacters in a prefix match literally
    assert store.list("x[1]") == ["x[1]*?", "x[1]/y"]
    assert store.list("x[1]*") == ["x[1]*?"]
    assert store.list("x[") == ["x[1]*?", "x[1]/y", "x[2]"]
    assert store.list("x?") == []
    assert store.list("x*") == []
    assert store.list("q\\") == ["q\\z"]
    assert store.put_if_absent("x[1]*?", b"no") is False
    assert store.delete("x[1]") == 2
    assert store.list("x") == ["x[2]", "xa"]
    assert store.delete("*") == 0
    assert store.delete("?") == 0
    assert len(store.list("")) == len(odd) - 2


# -- concurrency ---------------------------------------------------------------------


def test_concurrent_readers_and_writers(store):
    def work(i):
        key = f"par/{i % 4}/{i}"
        data = os.urandom(100 + i)
        store.put(key, data)
        assert store.get(key) == data
        assert store.get(key, 10, 20) == data[10:20]
        return key

    with ThreadPoolExecutor(16) as pool:
        keys = list(pool.map(work, range(64)))
    assert store.list("par/") == sorted(keys)
    assert store.delete("par/") == 64


# -- open_store ---------------------------------------------------------------------


def test_open_store_caches_per_url(store_url):
    a = open_store(store_url)
    b = open_store(store_url)
    assert a is b
    assert isinstance(a, Store)
    assert a.url == store_url
    assert repr(a).endswith(f"({store_url!r})")


def test_open_store_plain_path(tmp_path):
    s = open_store(str(tmp_path / "plain"))
    s.put("a/b", b"1")
    assert (tmp_path / "plain" / "a" / "b").read_bytes() == b"1"
    assert s.url == f"file://{tmp_path}/plain"
    assert open_store(s.url).get("a/b") == b"1"


def test_open_store_not_shared_with_child_process(tmp_path):
    s = open_store(f"file://{tmp_path}/f")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must get a fresh instance
        try:
            child = open_store(f"file://{tmp_path}/f")
            os.write(w, b"fresh" if child is not s else b"shared")
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    assert os.read(r, 16) == b"fresh"
    os.close(r)


def test_open_store_threads_get_one_instance(tmp_path):
    url = f"file://{tmp_path}/threads"
    with ThreadPoolExecutor(8) as pool:
        stores = list(pool.map(lambda _: open_store(url), range(32)))
    assert all(s is stores[0] for s in stores)


def _assert_quick_storage_error(url, *words, seconds=5.0):
    t0 = time.monotonic()
    with pytest.raises(StorageError) as e:
        open_store(url)
    took = time.monotonic() - t0
    assert took < seconds, f"open_store({url!r}) took {took:.1f}s to fail"
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    return e.value


def test_open_store_unknown_scheme():
    err = _assert_quick_storage_error("ftp://host/x", "'ftp'", "file://", "s3://", "redis://")
    assert "unsupported" in str(err)


def test_open_store_unreachable_redis():
    port = _closed_port()
    _assert_quick_storage_error(f"redis://127.0.0.1:{port}/0", "unreachable", f"127.0.0.1:{port}")


def test_open_store_unreachable_s3(s3_endpoint, monkeypatch):
    port = _closed_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    _assert_quick_storage_error("s3://gw-test/t", "unreachable", f"127.0.0.1:{port}")
    # an explicit endpoint in the URL is honoured too
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    _assert_quick_storage_error(
        f"s3://gw-test/t?endpoint=http://127.0.0.1:{port}", "unreachable", f"127.0.0.1:{port}"
    )


def test_open_store_missing_bucket(s3_url):
    _assert_quick_storage_error("s3://no-such-bucket/x", "'no-such-bucket'", "does not exist")


def test_redis_key_prefixes_isolate(redis_store_url):
    a = open_store(redis_store_url + "?prefix=alpha")
    b = open_store(redis_store_url + "?prefix=g[a]*")
    c = open_store(redis_store_url + "?prefix=ga")  # would match b's glob if unescaped
    a.put("k", b"a")
    b.put("k", b"b")
    b.put("big", BIG)
    c.put("k", b"c")
    assert a.get("k") == b"a" and b.get("k") == b"b" and c.get("k") == b"c"
    assert a.list("") == ["k"] and c.list("") == ["k"] and b.list("") == ["big", "k"]
    assert b.delete("") == 2
    assert a.list("") == ["k"] and c.list("") == ["k"]
    assert open_store(redis_store_url).list("") == []  # default prefix 'graphwren' is separate


def test_file_store_rejects_keys_outside_its_root(tmp_path):
    store = open_store(f"file://{tmp_path}/root")
    (tmp_path / "outside").write_bytes(b"secret")
    for bad in ["../outside", "/abs", "a//b", "a/./b", "a/", "", ".gwtmp-1"]:
        with pytest.raises(ValueError):
            store.put(bad, b"x")
        with pytest.raises(ValueError):
            store.get(bad)
    assert store.list("../") == []
    assert store.delete("../") == 0
    assert (tmp_path / "outside").read_bytes() == b"secret"


# -- file store: permissions, foreign roots, interrupted deletions -------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_file_store_is_private_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        store = open_store(f"file://{tmp_path}/private/root")
        store.put("job/stage/out/0.0", b"x")
        assert store.put_if_absent("job/stage/done/0", b"y")
        store.put("top", b"z")
    finally:
        os.umask(old)
    root = tmp_path / "private" / "root"
    modes = {str(p.relative_to(root)): stat.S_IMODE(os.stat(p).st_mode) for p in [root, *root.rglob("*")]}
    assert modes == {".": 0o700, "job": 0o700, "job/stage": 0o700, "job/stage/out": 0o700,
                     "job/stage/done": 0o700, "job/stage/out/0.0": 0o600,
                     "job/stage/done/0": 0o600, "top": 0o600}


@pytest.mark.parametrize("mode,who", [(0o777, "group and others"), (0o702, "others"), (0o720, "group")])
def test_file_store_refuses_a_root_others_can_write(tmp_path, mode, who):
    root = tmp_path / "shared"
    root.mkdir()
    os.chmod(root, mode)
    with pytest.raises(StorageError) as e:
        open_store(f"file://{root}")
    assert str(root) in str(e.value) and f"{mode:04o}" in str(e.value) and f"writable by {who}" in str(e.value)
    os.chmod(root, 0o755)  # readable by others is the owner's choice; only writers are refused
    open_store(f"file://{root}").put("k", b"v")


def test_file_store_refuses_a_root_another_user_owns(tmp_path):
    if os.geteuid() == 0:   # CI runs as root: hand a fresh directory to nobody
        root, owner = tmp_path / "theirs", 65534
        root.mkdir(mode=0o700)
        os.chown(root, owner, owner)
    else:                   # anyone else: the filesystem root belongs to another user already
        root, owner = "/", os.stat("/").st_uid
        assert owner != os.geteuid()
    with pytest.raises(StorageError) as e:
        open_store(str(root))
    msg = str(e.value)
    assert repr(str(root)) in msg and f"owned by uid {owner}" in msg and f"not by you, uid {os.geteuid()}" in msg
    if os.geteuid() == 0:
        assert not any(root.iterdir())


def test_file_store_sweeps_old_interrupted_deletions(tmp_path):
    from graphwren.runtime.storage.file import TRASH
    store = open_store(f"file://{tmp_path}/sweep")
    store.put("job-a/x/y", b"1")
    old = tmp_path / "sweep" / f"{TRASH}job-b-123-0"
    (old / "stage").mkdir(parents=True)
    (old / "stage" / "v").write_bytes(b"2")
    time.sleep(1.1)   # so the two trash directories' ctimes differ by more than a second
    fresh = tmp_path / "sweep" / f"{TRASH}job-c-456-0"
    fresh.mkdir()
    (tmp_path / "sweep" / f"{TRASH}not-a-dir").write_bytes(b"")   # only directories are trash
    born = {p.name: max(os.stat(p).st_mtime, os.stat(p).st_ctime) for p in (old, fresh)}
    now = born[fresh.name] + 30.0
    assert store.sweep_trash(now=now) == []   # the default: untouched for a minute
    threshold = now - born[old.name] - 0.5     # old is older than this, fresh is not
    assert store.sweep_trash(older_than=threshold, now=now) == [(old.name, now - born[old.name])]
    assert not old.exists() and fresh.exists()
    assert [name for name, _ in store.sweep_trash(older_than=0)] == [fresh.name]
    assert store.list("") == ["job-a/x/y"]   # keys are never touched by a sweep
    assert (tmp_path / "sweep" / f"{TRASH}not-a-dir").exists()


def test_file_store_deleted_job_leaves_no_trash_after_the_background_unlink(tmp_path):
    from graphwren.runtime.storage.file import TRASH, _trash
    store = open_store(f"file://{tmp_path}/del")
    for i in range(20):
        store.put(f"job/stage/out/{i}.0", b"x")
    assert store.delete("job/") == 20
    _trash.submit(lambda: None).result(timeout=30)   # the one background deleter is done
    assert not [p for p in os.listdir(tmp_path / "del") if p.startswith(TRASH)]
    assert store.sweep_trash(older_than=0) == []


# -- timeouts and retries from the URL -------------------------------------------------


@pytest.mark.parametrize("option", ["timeout=0", "timeout=abc", "retries=-1", "connect_timeout=inf",
                                    "retries=1.5"])
def test_bad_retry_options_are_named(option, redis_url, s3_url):
    for url in (f"{redis_url}?{option}", f"{s3_url}?{option}"):
        with pytest.raises(StorageError, match=option.split("=")[0]) as e:
            open_store(url)
        assert url in str(e.value)


def test_retry_options_reach_the_store(redis_store_url, s3_url):
    for url in (f"{redis_store_url}?timeout=2.5&retries=3&connect_timeout=1",
                f"{s3_url}?timeout=2.5&retries=3&connect_timeout=1&retry_mode=adaptive"):
        store = open_store(url)
        assert (store.policy.timeout, store.policy.retries, store.policy.connect_timeout) == (2.5, 3, 1.0)
        store.put("k", b"v")
        assert store.get("k") == b"v" and store.put_if_absent("k", b"w") is False
        assert store.delete("") == 1


def test_s3_unknown_url_options_are_refused(s3_url):
    with pytest.raises(StorageError, match="unknown option tiemout") as e:
        open_store(f"{s3_url}?tiemout=1")
    assert "known: endpoint, connect_timeout, timeout, retries, retry_mode" in str(e.value)
    with pytest.raises(StorageError, match="bad retry_mode='fast'"):
        open_store(f"{s3_url}?retry_mode=fast")


def test_redis_tokens_of_put_if_absent_go_with_their_values(redis_store_url):
    import redis

    store = open_store(redis_store_url)
    assert store.put_if_absent("job/done/0", b"a") is True
    assert store.put_if_absent("job/done/0", b"b") is False  # a stranger's token does not match
    assert store.put_if_absent("job/big", BIG) is True
    assert store.list("") == ["job/big", "job/done/0"]
    r = redis.Redis.from_url(redis_store_url)
    assert r.exists("graphwren:t:job/done/0") == 1
    assert store.delete("job/") == 2
    assert r.dbsize() == 0
    r.close()


def test_list_sized_agrees_with_list_and_size(store_url):
    store = open_store(store_url)
    blobs = {"ls/a": b"", "ls/b/c": b"x" * 5, "ls/b/d": b"y" * 3_000_000, "other": b"z"}
    for key, data in blobs.items():
        store.put(key, data)
    expect = [(k, len(v)) for k, v in sorted(blobs.items()) if k.startswith("ls/")]
    assert store.list_sized("ls/") == expect == [(k, store.size(k)) for k in store.list("ls/")]
    assert store.list_sized("nothing-here/") == []
