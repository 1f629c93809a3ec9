"""Signed payloads: nothing a driver or worker unpickles comes from anyone but the job's driver.

Each test plays an attacker who can write to the store (file, S3, Redis) but
holds no job key. Forged records and tampered objects must be refused with an
IntegrityError naming the store and the key, and none of their code may run:
the forged pickles here create a marker file when unpickled.
"""
from __future__ import annotations

import functools
import hashlib
import os
import pickle
import time
import urllib.error
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphwren as gw
from graphwren import config
from graphwren.errors import IntegrityError
from graphwren.runtime import codec, integrity, records, worker
from graphwren.runtime.driver import Driver
from graphwren.runtime.plan import HASH_SHUFFLE, Edge, Plan, Stage
from graphwren.runtime.storage import open_store

from lambda_fixtures import lambda_emulator  # noqa: F401

pytestmark = pytest.mark.usefixtures("isolated_config")


class Boom:
    """Unpickling this creates a file: the proof that forged bytes ran code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def make_driver(url, **settings):
    return Driver(config.resolve({"storage": url, "progress": False, **settings}))


def wait_for(path, seconds=30.0):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


def gated_task(ctx):
    """Waits for the test's "go" file, so an attacker's record lands while the task runs."""
    wait_for(os.path.join(ctx.read_data("dir").decode(), "go"))
    return [ctx.task]


def gated_identity(gate, x):
    wait_for(gate)
    return x


def jobs_in(store) -> set[str]:
    """Jobs with uploaded items (late commits of an earlier test's tasks upload none)."""
    return {k.split("/", 1)[0] for k in store.list("") if k.endswith("/data/items")}


def new_job(store, before: set[str], seconds=30.0) -> str:
    """The job an Executor just started (the attacker lists the store, as anyone can)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        fresh = jobs_in(store) - before
        if fresh:
            return fresh.pop()
        time.sleep(0.01)
    raise AssertionError("no job appeared in the store")


def refused(excinfo, store, name):
    text = str(excinfo.value)
    assert name in text and store.url in text and "integrity" in text, text


# -- the driver ---------------------------------------------------------------------------------
@pytest.mark.parametrize("forgery", ["unsigned", "random tag", "another key"])
def test_forged_error_record_runs_no_code_in_the_driver(store_url, tmp_path, forgery):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Boom(marker))   # restore() would have unpickled this
    job = records.new_job_id()
    name = records.err_key(job, "s", 0, 0, "0123456789abcdef")
    forged = {"unsigned": payload, "random tag": payload + os.urandom(integrity.TAG_SIZE),
              "another key": integrity.seal(integrity.new_key(), name, payload)}[forgery]
    store = open_store(store_url)
    store.put(name, forged)   # there before the driver's first LIST; the tasks wait for "go"
    plan = Plan([Stage("s", 2, gated_task)], ["s"], data={"dir": str(tmp_path).encode()})
    try:
        with pytest.raises(IntegrityError) as excinfo:
            make_driver(store_url).run(plan, job=job)
    finally:
        (tmp_path / "go").touch()
    refused(excinfo, store, name)
    assert not marker.exists()


def _forged_done(kind: str, store, replay_from: str | None) -> bytes:
    enc = codec.encode([424242])
    body = records.pack({"a": 0, "x": "0" * 16, "o": None, "n": len(enc), "inline": True}, enc)
    if kind == "unsigned":
        return body
    if kind == "random tag":
        return body + os.urandom(integrity.TAG_SIZE)
    if kind == "another key":
        return integrity.seal(integrity.new_key(), "whatever", body)
    return store.get(records.done_key(replay_from, "map", 0))   # a genuine record of another job


@pytest.mark.parametrize("forgery", ["unsigned", "random tag", "another key", "replayed from another job"])
def test_forged_commit_record_cannot_change_map_reduce_sum(store_url, tmp_path, forgery):
    store = open_store(store_url)
    replay_from = None
    if forgery.startswith("replayed"):
        before = jobs_in(store)
        with gw.Executor(storage=store_url, progress=False, keep=True) as other:
            assert other.map_reduce(abs, [-424242, 0, 0], sum, chunksize=1).result(60) == 424242
        (replay_from,) = jobs_in(store) - before
    gate = str(tmp_path / "go")
    before = jobs_in(store)
    ex = gw.Executor(storage=store_url, progress=False)
    try:
        future = ex.map_reduce(functools.partial(gated_identity, gate), [1, 2, 3], sum, chunksize=1)
        job = new_job(store, before)
        name = records.done_key(job, "map", 0)
        assert store.put_if_absent(name, _forged_done(forgery, store, replay_from))
    finally:
        open(gate, "w").close()
    with pytest.raises(IntegrityError) as excinfo:
        future.result(60)
    refused(excinfo, store, name)
    ex.wait_all()


def test_the_key_never_touches_storage(store_url):
    store = open_store(store_url)
    before = jobs_in(store)
    with gw.Executor(storage=store_url, progress=False, keep=True, inline_limit=0) as ex:
        assert ex.map_reduce(lambda x: x * x, range(10), sum, chunksize=3).result(60) == 285
    (job,) = jobs_in(store) - before
    key = integrity.job_key(job)
    names = store.list(f"{job}/")
    assert any("/out/" in n for n in names) and any("/data/" in n for n in names)
    for name in names:
        blob = store.get(name)
        assert key not in blob and key.hex().encode() not in blob, name
    store.delete(f"{job}/")


# -- workers --------------------------------------------------------------------------------------
def _kept_map_reduce(store_url, fn=abs, inline_limit=0):
    """A finished, kept Executor job: (job, key, {stage: function hash})."""
    store = open_store(store_url)
    before = jobs_in(store)
    with gw.Executor(storage=store_url, progress=False, keep=True, inline_limit=inline_limit) as ex:
        assert ex.map_reduce(fn, [-1, -2, -3], sum, chunksize=1).result(60) in (6, -6)
    (job,) = jobs_in(store) - before
    key = integrity.job_key(job)
    hashes = {}
    for stage in ("map", "reduce"):
        name = records.func_key(job, stage)
        hashes[stage] = hashlib.sha256(integrity.unseal(key, name, store.get(name), store.url)).hexdigest()
    return job, key, hashes


def _event(url, job, stage, task, key, fn_hash, attempt=9):
    return {"store": url, "job": job, "stage": stage, "task": task, "attempt": attempt, "fn": fn_hash,
            "key": key.hex()}


def _tamper(store, name, evil: bytes, how: str):
    blob = store.get(name)
    if how == "flip a byte":
        store.put(name, blob[:len(blob) // 2] + bytes([blob[len(blob) // 2] ^ 1]) + blob[len(blob) // 2 + 1:])
    elif how == "replace, keeping the old tag":
        store.put(name, evil + blob[-integrity.TAG_SIZE:])
    else:
        store.put(name, evil)


HOW = ["flip a byte", "replace, keeping the old tag", "replace"]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("target", ["stage function", "items", "output", "manifest"])
def test_tampered_objects_are_refused_by_workers(store_url, tmp_path, target, how):
    marker = tmp_path / "pwned"
    store = open_store(store_url)
    job, key, hashes = _kept_map_reduce(store_url)
    evil_pickle = pickle.dumps(Boom(marker))
    name, stage, evil = {
        "stage function": (records.func_key(job, "map"), "map", evil_pickle),
        "items": (records.data_key(job, "items"), "map", evil_pickle),
        # a reducer reads the map outputs through the manifest
        "output": (next(k for k in store.list(f"{job}/map/out/") if "/out/0." in k), "reduce",
                   codec.encode([Boom(marker)])),
        "manifest": (records.manifest_key(job, "map"), "reduce",
                     records.pack({"tasks": [{"a": 0, "x": "0" * 16, "o": None, "inline": True, "i": [0, 99]}]},
                                  codec.encode([Boom(marker)]))),
    }[target]
    _tamper(store, name, evil, how)
    result = worker.handle(_event(store_url, job, stage, 0, key, hashes[stage]))
    assert not result["ok"] and result["error"].startswith("IntegrityError"), result
    assert name in result["error"] and store.url in result["error"]
    assert not marker.exists()
    # the worker's own error record is signed and reaches the driver's reader as the IntegrityError
    from graphwren.runtime import remote_errors
    (err,) = [k for k in store.list(f"{job}/{stage}/err/") if "/err/0.9." in k]
    assert isinstance(remote_errors.load(store, err, key), IntegrityError)
    store.delete(f"{job}/")


def split_by_parity(ctx):
    return [[x for x in range(ctx.task * 50, ctx.task * 50 + 50) if x % 2 == b] for b in range(2)]


def total(ctx):
    return [sum(sum(part) for part in ctx.input(0))]


def test_a_tampered_bucket_is_refused_and_its_neighbours_still_read(store_url, tmp_path):
    """Ranged reads of one bucket check that bucket's own tag."""
    store = open_store(store_url)
    plan = Plan([Stage("a", 2, split_by_parity, nbuckets=2), Stage("b", 2, total, [Edge("a", HASH_SHUFFLE)])], ["b"])
    out = {}
    job = make_driver(store_url, inline_limit=0).run(plan, lambda s, t, p: out.__setitem__(t, p), keep=True)
    assert out == {0: [sum(range(0, 100, 2))], 1: [sum(range(1, 100, 2))]}
    key = integrity.job_key(job)
    name = next(k for k in store.list(f"{job}/a/out/") if "/out/0." in k)
    header, _ = records.unpack(integrity.unseal(key, records.done_key(job, "a", 0),
                                                store.get(records.done_key(job, "a", 0)), store.url))
    lo, hi = header["o"][1], header["o"][2]
    blob = store.get(name)
    evil = codec.encode([Boom(tmp_path / "pwned")])
    store.put(name, blob[:lo] + (evil + bytes(hi - lo))[:hi - lo] + blob[hi:])   # bucket 1, same length
    fn = hashlib.sha256(integrity.unseal(key, records.func_key(job, "b"), store.get(records.func_key(job, "b")),
                                         store.url)).hexdigest()
    reads_bucket_1 = worker.handle(_event(store_url, job, "b", 1, key, fn))
    assert not reads_bucket_1["ok"] and "IntegrityError" in reads_bucket_1["error"]
    assert f"bucket 1 of output {name!r}" in reads_bucket_1["error"]
    assert worker.handle(_event(store_url, job, "b", 0, key, fn)) == {"ok": True, "committed": False, "recorded": True}
    assert not (tmp_path / "pwned").exists()
    store.delete(f"{job}/")


@pytest.mark.parametrize("fn_hash", ["0" * 64, "0" * 24, "", None, "A" * 64])
def test_a_forged_function_hash_is_refused(store_url, fn_hash):
    store = open_store(store_url)
    job, key, _ = _kept_map_reduce(store_url)
    result = worker.handle(_event(store_url, job, "map", 0, key, fn_hash))
    assert not result["ok"] and result["error"].startswith("IntegrityError"), result
    store.delete(f"{job}/")


def negate(x):
    return -x


def test_a_warm_worker_never_runs_another_jobs_cached_function(store_url):
    """The cache is keyed by job and key too: job B's event naming job A's hash is refused."""
    store = open_store(store_url)
    job_a, key_a, hashes_a = _kept_map_reduce(store_url, abs)
    job_b, key_b, hashes_b = _kept_map_reduce(store_url, negate)
    assert worker.handle(_event(store_url, job_a, "map", 0, key_a, hashes_a["map"]))["ok"]   # now cached here
    result = worker.handle(_event(store_url, job_b, "map", 0, key_b, hashes_a["map"]))
    assert not result["ok"] and "IntegrityError" in result["error"] and hashes_a["map"] in result["error"]
    # with A's hash but B's key, A's cached function is not reused either: A's blob fails B's key
    result = worker.handle(_event(store_url, job_a, "map", 0, key_b, hashes_a["map"]))
    assert not result["ok"] and "IntegrityError" in result["error"]
    for job in (job_a, job_b):
        store.delete(f"{job}/")


def test_an_event_without_a_key_records_nothing(store_url):
    store = open_store(store_url)
    job, key, hashes = _kept_map_reduce(store_url)
    event = _event(store_url, job, "map", 0, key, hashes["map"])
    for bad in (None, "", "zz" * 32, key.hex()[:-2]):
        result = worker.handle({**event, "key": bad})   # reported to the backend, never recorded
        assert result["ok"] is False and result["recorded"] is False
        assert "IntegrityError" in result["error"] and "signing key" in result["error"]
    assert [k for k in store.list(f"{job}/map/err/")] == []
    store.delete(f"{job}/")


# -- the schemes themselves, as properties ----------------------------------------------------------
@pytest.fixture(scope="module")
def file_store(tmp_path_factory):
    return open_store(f"file://{tmp_path_factory.mktemp('blocks')}/s")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), block=st.integers(1, 64), choice=st.data(),
       tamper=st.one_of(st.none(), st.tuples(st.sampled_from(["flip", "truncate", "append"]), st.integers(0, 10_000))))
def test_uploaded_data_reads_back_exactly_or_not_at_all(file_store, data, block, choice, tamper):
    """Any range of sealed data reads back exactly; tampering is refused unless it missed the blocks read."""
    key, name = integrity.new_key(), f"j/data/{os.urandom(4).hex()}"
    sealed = integrity.seal_blocks(key, name, data, block)
    if tamper is not None:
        how, at = tamper
        at %= len(sealed)
        sealed = {"flip": sealed[:at] + bytes([sealed[at] ^ 0x40]) + sealed[at + 1:],
                  "truncate": sealed[:at], "append": sealed + b"x" * (at % 40 + 1)}[how]
    file_store.put(name, sealed)
    start = choice.draw(st.integers(0, len(data)), label="start")
    end = choice.draw(st.one_of(st.none(), st.integers(0, len(data) + 10)), label="end")
    try:
        got = integrity.read_blocks(file_store, name, key, start, end, block)
    except IntegrityError:
        assert tamper is not None, "untampered data was refused"
        return
    assert got == data[start:end]   # never other bytes
    if end is None and start == 0:
        assert tamper is None, "a whole read missed the tampering"


@settings(max_examples=100, deadline=None)
@given(parts=st.lists(st.lists(st.integers(), max_size=20), min_size=1, max_size=5), flip=st.integers(0, 10_000))
def test_each_bucket_checks_alone(parts, flip):
    key, name = integrity.new_key(), "j/s/out/0.0.0123456789abcdef"
    blob, offsets = integrity.seal_output(key, name, *codec.encode_buckets(parts))
    assert all(o % integrity.ALIGN == 0 for o in offsets)
    for r, part in enumerate(parts):
        assert codec.decode(integrity.open_segment(key, name, r, blob[offsets[r]:offsets[r + 1]], "mem://")) == part
    at = flip % len(blob)
    bad = blob[:at] + bytes([blob[at] ^ 1]) + blob[at + 1:]
    hit = next(r for r in range(len(parts)) if offsets[r] <= at < offsets[r + 1])
    for r, part in enumerate(parts):
        segment = bad[offsets[r]:offsets[r + 1]]
        if r == hit:
            with pytest.raises(IntegrityError, match=f"bucket {r} of output"):
                integrity.open_segment(key, name, r, segment, "mem://")
        else:
            assert codec.decode(integrity.open_segment(key, name, r, segment, "mem://")) == part
    with pytest.raises(IntegrityError):   # a bucket read as another bucket
        integrity.open_segment(key, name, (hit + 1) % (len(parts) + 1), blob[offsets[hit]:offsets[hit + 1]], "m")


# -- the local Lambda emulator's Invoke API -----------------------------------------------------------
def test_the_emulator_refuses_invocations_without_its_token(lambda_emulator):
    url = f"{lambda_emulator.endpoint}/2015-03-31/functions/{lambda_emulator.function().name}/invocations"
    fn = lambda_emulator.function()
    before = fn.invocations
    for headers in ({}, {"X-Graphwren-Token": "not-the-token"}):
        req = urllib.request.Request(url, data=b'{"graphwren": "ping"}', method="POST", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as excinfo:
            urllib.request.urlopen(req, timeout=10)
        assert excinfo.value.code == 403 and b"GRAPHWREN_LAMBDA_TOKEN" in excinfo.value.read()
    assert fn.invocations == before   # nothing was queued
    req = urllib.request.Request(url, data=b'{"graphwren": "ping"}', method="POST",
                                 headers={"X-Graphwren-Token": lambda_emulator.token})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200 and b'"graphwren"' in resp.read()
    assert fn.invocations == before + 1
