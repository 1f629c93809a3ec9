"""The store contract under faults: put_if_absent stays exactly-once when replies are lost and
requests retried; errors that escape are StorageErrors naming the store and the key."""
from __future__ import annotations

import threading

import boto3
import pytest

import faultkit as fk
from faultproxy import RedisReplyCutter, Rule
from graphwren.errors import StorageError, TransientStorageError
from graphwren.runtime.storage import open_store
from graphwren.runtime.storage.redis import RedisStore

RACES = 6       # keys raced for per scenario
WRITERS = 4     # writers per key


def race(store, key: str) -> tuple[list[int], bytes]:
    """WRITERS threads put_if_absent(key, their own value): (who reported winning, the value stored)."""
    results: list = [None] * WRITERS
    start = threading.Barrier(WRITERS, timeout=30)

    def write(i):
        start.wait()
        try:
            results[i] = store.put_if_absent(key, f"writer {i}".encode())
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[i] = exc

    threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    return [i for i, r in enumerate(results) if r is True], store.get(key)


def check_race(store, key) -> fk.Outcome:
    try:
        winners, value = race(store, key)
    except StorageError as exc:
        return fk.Outcome("clear error", f"{type(exc).__name__}: {exc}", 0.0, [])
    if len(winners) == 1 and value == f"writer {winners[0]}".encode():
        return fk.Outcome("correct", "", 0.0, [])
    return fk.Outcome("wrong", f"winners {winners}, stored {value!r}", 0.0, [])


def record_all(fault_table, name: str, outcomes: list[fk.Outcome]) -> None:
    for o in outcomes:
        fault_table.record(name, o)
    bad = [o for o in outcomes if o.kind != "correct"]
    assert not bad, [o.detail for o in bad]


# -- S3 -----------------------------------------------------------------------------------
def s3_store(proxy, bucket, prefix, extra=""):
    return open_store(f"s3://{bucket}/{prefix}?endpoint={proxy.url}&timeout=1&connect_timeout=1{extra}")


@pytest.mark.parametrize("fault", ["drop-reply", "delay"])
def test_s3_put_if_absent_whose_reply_was_lost_still_wins(fault, s3_proxy, fault_bucket, fault_table):
    store = s3_store(s3_proxy, fault_bucket, f"lost-{fault}")
    outcomes = []
    for i in range(RACES if fault == "drop-reply" else RACES // 2):  # a delay costs a timeout
        # The first PUT lands but its writer never hears; botocore retries it and meets 412.
        s3_proxy.set_rules([Rule(fault, classes={"PUT"}, limit=1, delay=1.5)])
        first = store.put_if_absent(f"k{i}", b"mine")
        assert s3_proxy.injected[fault] == 1
        s3_proxy.set_rules([])
        second = store.put_if_absent(f"k{i}", b"theirs")
        ok = first is True and second is False and store.get(f"k{i}") == b"mine"
        outcomes.append(fk.Outcome("correct" if ok else "wrong",
                                   f"first {first}, second {second}", 0.0, []))
    record_all(fault_table, f"s3: put_if_absent, its PUT's reply lost ({fault})", outcomes)


def test_s3_put_if_absent_races_under_lost_replies(s3_proxy, fault_bucket, fault_table):
    store = s3_store(s3_proxy, fault_bucket, "race")
    outcomes = []
    for i in range(RACES):
        s3_proxy.set_rules([Rule("drop-reply", classes={"PUT"}, p=0.4), Rule("500", p=0.1)], seed=i)
        outcomes.append(check_race(store, f"k{i}"))
    s3_proxy.set_rules([])
    record_all(fault_table, f"s3: {WRITERS} racing put_if_absent, 40% of PUT replies lost", outcomes)


def every_op_failing(store, url: str, probe: str) -> list:
    """Call each store operation while the store fails; each error names the store, key and op."""
    calls = [("get", lambda: store.get("job/a")), ("put", lambda: store.put("job/a", b"1")),
             ("put_if_absent", lambda: store.put_if_absent("job/a", b"1")),
             (probe, lambda: getattr(store, probe)("job/a")), ("list", lambda: store.list("job/")),
             ("delete", lambda: store.delete("there"))]
    errors = []
    for op, call in calls:
        with pytest.raises(TransientStorageError) as e:
            call()
        err = e.value
        key = "there" if op == "delete" else ("job/" if op == "list" else "job/a")
        assert (err.url, err.key, err.op) == (url, key, op)
        assert url in str(err) and repr(key) in str(err), str(err)
        errors.append(err)
    return errors


def test_s3_errors_name_the_store_and_the_key(s3_endpoint, s3_proxy, fault_bucket):
    store = s3_store(s3_proxy, fault_bucket, "errors", "&retries=1")
    store.put("there", b"x")
    s3_proxy.set_rules([Rule("500", classes={"GET", "PUT", "HEAD", "LIST", "DELETE"})])
    for err in every_op_failing(store, store.url, "exists"):
        assert "after 2 attempts" in str(err), str(err)
    s3_proxy.set_rules([])
    # a permanent refusal is a StorageError but not a transient one
    direct = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    direct.delete_object(Bucket=fault_bucket, Key="errors/there")
    direct.delete_bucket(Bucket=fault_bucket)
    direct.close()
    with pytest.raises(StorageError) as e:
        store.put("job/b", b"1")
    assert not isinstance(e.value, TransientStorageError)
    assert "NoSuchBucket" in str(e.value) and "'job/b'" in str(e.value)


def test_s3_open_probe_rides_out_errors(s3_proxy, fault_bucket):
    s3_proxy.set_rules([Rule("500", classes={"HEAD"}, limit=3)])
    store = s3_store(s3_proxy, fault_bucket, "probe")  # HeadBucket fails 3 times, then passes
    assert s3_proxy.injected["500"] == 3
    store.put("k", b"v")
    assert store.get("k") == b"v"


# -- Redis ----------------------------------------------------------------------------------
@pytest.fixture
def cutter(redis_server):
    c = RedisReplyCutter(redis_server.port)
    yield c
    c.close()


def test_redis_put_if_absent_whose_reply_was_lost_still_wins(redis_server, cutter, fault_table):
    store = open_store(f"redis://127.0.0.1:{cutter.port}/0")
    outcomes = []
    for i in range(RACES):
        # The command creating the key runs; its reply never arrives; redis-py retries it.
        cutter.arm(f":v:k{i}".encode())
        cuts = cutter.cuts
        first = store.put_if_absent(f"k{i}", b"mine")
        second = store.put_if_absent(f"k{i}", b"theirs")
        ok = cutter.cuts == cuts + 1 and first is True and second is False and store.get(f"k{i}") == b"mine"
        outcomes.append(fk.Outcome("correct" if ok else "wrong", f"first {first}, second {second}", 0.0, []))
    record_all(fault_table, "redis: put_if_absent, its reply lost", outcomes)
    assert store.delete("") == RACES
    assert redis_server.keys() == []  # the tokens went with their values


def test_redis_put_if_absent_races_under_lost_replies(redis_server, cutter, fault_table):
    store = open_store(f"redis://127.0.0.1:{cutter.port}/0")
    outcomes = []
    for i in range(RACES):
        cutter.arm(f":v:k{i}".encode(), times=2)  # the first two writers never hear back
        outcomes.append(check_race(store, f"k{i}"))
    record_all(fault_table, f"redis: {WRITERS} racing put_if_absent, 2 replies lost per race", outcomes)


def test_redis_overwrite_whose_reply_was_lost_keeps_its_chunks(redis_server, cutter):
    store = RedisStore(f"redis://127.0.0.1:{cutter.port}/0", chunk_size=1024)
    old, new = bytes(range(256)) * 20, bytes(reversed(range(256))) * 30  # 5 and 8 chunks
    store.put("v", old)
    cutter.arm(b"EVALSHA")  # the head now names the new chunks; the retry sees them as "old"
    store.put("v", new)
    assert cutter.cuts == 1
    assert store.get("v") == new
    assert store.get("v", 1000, 3000) == new[1000:3000]
    store.delete("")
    assert redis_server.keys() == []
    store.close()


def test_redis_errors_name_the_store_and_the_key(redis_server):
    url = f"{redis_server.url}?retries=1&timeout=0.5&connect_timeout=0.5"
    store = open_store(url)
    store.put("there", b"x")
    redis_server.stop()
    every_op_failing(store, url, "size")
    redis_server.start()
    assert store.get("there") == b"x"  # the AOF kept it; the store reconnects by itself
