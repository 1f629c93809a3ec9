"""Task statistics in the commit records, gathered into the job record, checked against what ran.

Records are counted by a plain-Python reference of the same partitions; bytes
and requests by the store itself (the sizes of the objects a kept job left,
the offsets in its manifest).
"""
from __future__ import annotations

import collections
import os
import time

import pytest

import graphwren as gw
from graphwren import config
from graphwren.observe import Job, load_job
from graphwren.runtime import integrity, records, stats
from graphwren.runtime.driver import Driver
from graphwren.runtime.plan import HASH_SHUFFLE, Edge, Plan, Stage
from graphwren.runtime.storage import open_store

pytestmark = pytest.mark.usefixtures("isolated_config")

M, R = 4, 3
WORDS = [f"w{(i * 7) % 23}" for i in range(400)]


def words_of(task: int) -> list[str]:
    return WORDS[task::M]


def map_words(ctx):
    buckets = [[] for _ in range(ctx.nbuckets)]
    for w in words_of(ctx.task):
        buckets[int(w[1:]) % ctx.nbuckets].append(w)
    return buckets


def count_words(ctx):
    return sorted(collections.Counter(w for part in ctx.input(0) for w in part).items())


def shuffle_plan() -> Plan:
    return Plan([Stage("map", M, map_words, nbuckets=R, label="map words"),
                 Stage("count", R, count_words, [Edge("map", HASH_SHUFFLE)], label="count")], ["count"])


def run_kept(url: str, **settings):
    driver = Driver(config.resolve({"storage": url, "progress": False, "inline_limit": 0, **settings}))
    got = {}
    job = driver.run(shuffle_plan(), lambda s, t, part: got.__setitem__(t, part), keep=True)
    return driver, job, got


def winner(record, stage: str, task: int) -> dict:
    (a,) = [a for a in record.winners(stage) if a["task"] == task]
    return a


@pytest.mark.parametrize("backend_store", ["file", "s3"])
def test_statistics_match_the_reference_and_the_store(backend_store, tmp_path, request):
    url = f"file://{tmp_path}/s" if backend_store == "file" else request.getfixturevalue("s3_url")
    driver, job, got = run_kept(url)
    record = driver.record
    store = open_store(url)
    assert record.state == "finished" and record.job == job
    assert dict(kv for part in got.values() for kv in part) == collections.Counter(WORDS)

    # map tasks: records out are the task's words; bytes written is the output object's size in the store
    for t in range(M):
        s = winner(record, "map", t)["stats"]
        assert s["records_out"] == len(words_of(t))
        assert s["records_in"] is None and s["pieces_in"] == 0      # a source: nothing read from upstream
        header, _ = records.unpack(integrity.unseal(integrity.job_key(job), records.done_key(job, "map", t),
                                                    store.get(records.done_key(job, "map", t)), url, "commit"))
        out = records.out_key(job, "map", t, header["a"], header["x"])
        assert s["bytes_written"] == store.size(out)
        ops = s["requests"][url.split("://")[0]]
        assert ops["put"] == 1 and ops["put_if_absent"] == 1 and ops["exists"] == 1   # output, commit, lease
        assert s["start"] <= s["end"] and s["cpu"] >= 0 and s["rss"] > 0

    # reducers: records in are every word of their bucket, read as one piece per map task; bytes read are
    # the manifest, the bucket ranges the manifest names, and the stage function unless it was cached
    manifest_key = records.manifest_key(job, "map")
    manifest, _ = records.unpack(integrity.unseal(integrity.job_key(job), manifest_key, store.get(manifest_key),
                                                  url, "manifest"))
    for t in range(R):
        s = winner(record, "count", t)["stats"]
        assert s["records_in"] == sum(int(w[1:]) % R == t for w in WORDS)
        assert s["pieces_in"] == M
        assert s["records_out"] == len(got[t])
        ranges = sum(m["o"][t + 1] - m["o"][t] for m in manifest["tasks"])
        func = 0 if s["cached_fn"] else store.size(records.func_key(job, "count"))
        manifest_read = 1 - s["cached_manifests"]   # a warm worker keeps the manifest an earlier reducer read
        assert s["bytes_read"] == manifest_read * store.size(manifest_key) + ranges + func
        ops = s["requests"][url.split("://")[0]]
        assert ops["get"] == manifest_read + M + (0 if s["cached_fn"] else 1)
    store.delete(f"{job}/")


def test_inline_outputs_count_as_written(tmp_path):
    driver = Driver(config.resolve({"storage": f"file://{tmp_path}/s", "progress": False}))
    header_sizes = {}
    driver.run(shuffle_plan(), lambda *a: None)
    for a in driver.record.winners("map"):
        header_sizes[a["task"]] = a["stats"]["bytes_written"]
    # each map output rides in its commit record: no PUT, and what it wrote is its encoded buckets
    for a in driver.record.winners("map"):
        assert a["stats"]["requests"]["file"].get("put", 0) == 0
        assert a["stats"]["bytes_written"] > 0


def test_executor_map_records_workers_and_cold_starts(tmp_path):
    ex = gw.Executor(storage=f"file://{tmp_path}/s", workers=2, progress=False)
    items = list(range(50))
    assert gw.get_all_results(ex.map(lambda x: x + 1, items, chunksize=5)) == [x + 1 for x in items]
    ex.wait_all()
    job = gw.last_job()
    (stage,) = job.record.stages
    assert stage["ntasks"] == 10
    winners = job.record.winners(stage["name"])
    assert [a["stats"]["records_out"] for a in winners] == [5] * 10
    pids = {a["stats"]["worker"] for a in winners}
    assert 1 <= len(pids) <= 2
    for pid in pids:   # each worker's first task is its only cold one (fresh pools per test run or warm)
        mine = sorted((a for a in winners if a["stats"]["worker"] == pid), key=lambda a: a["stats"]["start"])
        assert all(not a["stats"]["cold"] for a in mine[1:])
    summary = job.summary()
    (row,) = summary.stages
    assert row.records_out == 50 and row.tasks == 10 and row.retries == 0
    assert row.p50 <= row.p95 <= row.max


def fail_first_attempt(ctx):
    marker = os.path.join(ctx.read_data("dir").decode(), f"failed-{ctx.task}")
    if ctx.task == 1 and not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("transient")
    return [ctx.task]


def test_a_retried_task_shows_both_attempts(tmp_path):
    driver = Driver(config.resolve({"storage": f"file://{tmp_path}/s", "progress": False, "retries": 1}))
    driver.run(Plan([Stage("s", 3, fail_first_attempt)], ["s"], data={"dir": str(tmp_path).encode()}),
               lambda *a: None)
    attempts = driver.record.attempts_of("s", 1)
    assert [(a["attempt"], a["kind"], a["outcome"]) for a in attempts] == [
        (0, stats.FIRST, stats.FAILED), (1, stats.RETRY, stats.COMMITTED)]
    (row,) = Job(driver.record).summary().stages
    assert row.retries == 1 and row.failed == 1


def test_kept_job_record_reads_back(tmp_path):
    url = f"file://{tmp_path}/s"
    driver, job, _ = run_kept(url)
    loaded = load_job(job, storage=url)
    assert loaded.record.to_json() == driver.record.to_json()
    assert "map words" in loaded.summary() and "count" in loaded.summary()
    with pytest.raises(LookupError, match="keep=True"):
        load_job("20200101T000000-0000000000", storage=url)


def test_a_commit_record_without_statistics_still_reads():
    """Older workers' commit records have no ``s``: the record keeps the attempt, without numbers."""
    rec = stats.JobRecorder("j", "", {})
    rec.stage_started("s", "s", 0, 1, 1, [], None, "file:///x")
    rec.launched("s", 0, 0, stats.FIRST)
    rec.committed("s", 0, {"a": 0, "x": "00", "o": None, "n": 3})
    rec.stage_finished("s")
    record = rec.finish("finished", [], {})
    (row,) = Job(record).summary().stages
    assert row.tasks == 1 and row.records_out is None and row.bytes_read == 0


def test_bag_word_count_summary_against_counter(tmp_path):
    lines = [f"the {w} fox {i % 5}" for i, w in enumerate(["quick", "brown", "lazy"] * 100)]
    counts = gw.bag.from_sequence(lines, npartitions=4).flat_map(str.split).frequencies()
    got = counts.compute(storage=f"file://{tmp_path}/s", progress=False)
    reference = collections.Counter(w for line in lines for w in line.split())
    assert dict(got) == reference
    stages = gw.last_job().summary().stages
    # the map side emits one (word, count) per distinct word per partition; the reducers read them all
    parts = [lines[i:i + 75] for i in range(0, 300, 75)]
    per_partition = sum(len({w for line in p for w in line.split()}) for p in parts)
    assert stages[0].records_out == per_partition
    assert stages[1].records_in == per_partition and stages[1].records_out == len(reference)


def allocate(ctx):
    block = b"x" * (96 * 2**20)   # written, so its pages are resident
    return [len(block)]


def test_peak_rss_covers_what_the_task_held(tmp_path):
    driver = Driver(config.resolve({"storage": f"file://{tmp_path}/s", "progress": False}))
    driver.run(Plan([Stage("big", 1, allocate)], ["big"]), lambda *a: None)
    (a,) = driver.record.winners("big")
    assert a["stats"]["rss"] >= 96 * 2**20


def hang_first_attempt(ctx):
    """The last task's first attempt waits until a later attempt of it has started (or 30 s)."""
    d = ctx.read_data("dir").decode()
    if ctx.task == ctx.ntasks - 1:
        if ctx.attempt == 0:
            deadline = time.monotonic() + 30
            while not os.path.exists(os.path.join(d, "rescued")) and time.monotonic() < deadline:
                time.sleep(0.01)
        else:
            open(os.path.join(d, "rescued"), "w").close()
    return [ctx.task]


def test_a_straggler_and_its_backup_are_both_in_the_record(tmp_path):
    driver = Driver(config.resolve({"storage": f"file://{tmp_path}/s", "progress": False, "speculation": True}))
    driver.run(Plan([Stage("s", 6, hang_first_attempt)], ["s"], data={"dir": str(tmp_path).encode()}),
               lambda *a: None)
    attempts = driver.record.attempts_of("s", 5)
    assert [(a["attempt"], a["kind"]) for a in attempts] == [(0, stats.FIRST), (1, stats.BACKUP)], (
        attempts, driver.timeline)
    assert sorted(a["outcome"] for a in attempts) == [stats.COMMITTED, stats.SUPERSEDED]
    (row,) = Job(driver.record).summary().stages
    assert row.backups == 1 and row.retries == 0 and row.skew > 1
