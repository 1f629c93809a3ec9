"""A modelled task: the I/O and CPU a real task of its stage would spend, without its data.

It does what ``worker.handle`` does, in the same requests, with sizes in
place of bytes: it loads and checks the stage function (for the stage's
inputs, buckets and label), reads the manifest of every stage it reads
(the real one the real driver wrote, and the columns of its offset table
the pieces need, when it has one) and GETs the exact pieces the edge
names, by their sizes in that manifest, eight at a time like the worker's
prefetch; reads ``source_bytes`` in 64 MiB ranged GETs; spends its CPU
(``StageCost``); writes one virtual object with even buckets (a shuffle),
or its result to the output prefix (a sink); and commits a signed record
with ``put_if_absent``, only while the job's lease exists: the real commit
rule, so duplicates, retries and backups of modelled tasks race as real
ones do. Its statistics ride in the record like a worker's, in virtual time.
"""
from __future__ import annotations

import math

from ..runtime import codec, integrity, offset_table, records, stats, worker
from ..runtime.storage import open_store

STREAMS = 8                   # requests a task keeps in flight (worker's Prefetcher(8), TransferConfig(8))
SOURCE_CHUNK = 64 * 2**20     # a ranged GET of the input
PART = 16 * 2**20             # a multipart PUT's part (storage/s3.py MULTIPART_CHUNKSIZE)
MULTIPART = 64 * 2**20        # above this a PUT is multipart (storage/s3.py MULTIPART_THRESHOLD)
_EMPTY: list[bytes] = []      # codec.encode([]), made once: what a modelled result reads as


def _empty() -> bytes:
    if not _EMPTY:
        _EMPTY.append(codec.encode([]))
    return _EMPTY[0]


def run(sim, event: dict, cost, fn: str, cold: bool, slowdown: float) -> dict:
    """One modelled attempt; the reply ``worker.handle`` would give."""
    job, stage, task, attempt = event["job"], event["stage"], int(event["task"]), int(event["attempt"])
    key = integrity.event_keys(event)[job]
    clock = sim.clock
    meter = stats.TaskMeter().__enter__()
    started = meter.start = clock.time()
    t0 = clock.monotonic()
    store = open_store(event["store"])
    spec, cached = worker._load_spec(store, job, stage, event["fn"], key)
    by_store: dict[str, list] = {}
    read = 0
    for inp in spec.inputs:
        up = open_store(inp.store)
        manifest = sim.manifest(up, inp.job, inp.stage, key if inp.job == job else integrity.job_key(inp.job))
        gets = by_store.setdefault(inp.store, [])
        gets.append(("get", records.manifest_key(inp.job, inp.stage), manifest["size"]))
        pieces = inp.pieces(task)
        span = worker.bucket_span(pieces) if manifest["columns"] else None
        if span is not None:   # the worker's one ranged GET of the offset columns its pieces need
            start, end = offset_table.byte_range(manifest["columns"]["m"], *span)
            gets.append(("get", manifest["table"], end - start))
        for up_task, bucket in pieces:
            rec = manifest["tasks"][up_task]
            offsets = manifest["offsets"][up_task] if manifest["columns"] else rec["o"]
            if rec.get("inline"):
                continue   # rides in the manifest
            if isinstance(bucket, (tuple, list)):
                n = int(offsets[bucket[1]] - offsets[bucket[0]])
            elif bucket is not None:
                n = int(offsets[bucket + 1] - offsets[bucket])
            else:
                n = up.virtual_size(records.out_key(inp.job, inp.stage, up_task, rec["a"], rec["x"], rec.get("p"))) or 0
            by_store[inp.store].append(("get", records.out_key(inp.job, inp.stage, up_task, rec["a"], rec["x"],
                                                               rec.get("p")), n))
            read += n
    source = int(cost.source_bytes)
    if source:
        chunks = max(1, math.ceil(source / SOURCE_CHUNK))
        by_store.setdefault(event["store"], []).extend(
            ("get", f"input/{stage}/{task}", source // chunks) for _ in range(chunks))
        read += source
    for url, requests in by_store.items():
        _in_waves(open_store(url), requests)
    cpu = (cost.cpu_fixed + cost.cpu_s_per_mb * read / 1e6) * sim.cloud.cpu_scale * slowdown
    clock.sleep(cpu)
    out = int(cost.out_ratio * read)
    nonce = records.new_nonce()
    done = records.done_key(job, stage, task)
    if cost.sink or spec.nbuckets is None and out <= spec.inline_limit:
        if cost.sink and out:
            _put(store, f"output/{job}/{stage}/{task}.{attempt}.{nonce}", out)
        blob = _empty()
        header = {"a": attempt, "x": nonce, "o": None, "n": len(blob), "inline": True}
        written, name = blob, None
    else:
        prefixes = getattr(spec, "prefixes", 1)   # spread as the worker spreads them
        name = records.out_key(job, stage, task, attempt, nonce, prefixes)
        offsets = None
        if spec.nbuckets is not None:
            offsets = [round(i * out / spec.nbuckets) for i in range(spec.nbuckets + 1)]
        # a result the driver fetches reads as an empty partition (paying for its modelled size)
        stand_in = None if offsets else integrity.seal_output(key, name, _empty(), None)[0]
        _put(store, name, out, stand_in)
        header = {"a": attempt, "x": nonce, "o": offsets, "n": out}
        if prefixes > 1:
            header["p"] = prefixes
        written = b""
    if slowdown > 1:   # a slow host is slow at everything, not only its CPU
        clock.sleep((slowdown - 1) * max(0.0, clock.monotonic() - t0 - cpu))
    if not store.exists(records.lease_key(job)):   # the job is over: write nothing that outlives it
        meter.stop()
        return {"ok": True, "committed": False, "recorded": True}
    meter.stop()
    meter.start, meter.end, meter.cpu = started, clock.time(), cpu
    meter.request(store.url, "put_if_absent", 0, len(written))
    header["s"] = {**meter.stats(attempt, cold, cached), "worker": fn}
    won = store.put_if_absent(done, integrity.seal(key, done, records.pack(header, written)))
    if not won and name is not None:
        store.delete(name)
    return {"ok": True, "committed": won, "recorded": True}


def _in_waves(store, requests: list) -> None:
    """Requests STREAMS at a time: latency overlaps, bandwidth is the function's."""
    for i in range(0, len(requests), STREAMS):
        store.charge(requests[i:i + STREAMS])


def _put(store, name: str, nbytes: int, stand_in: bytes | None = None) -> None:
    store.put_virtual(name, nbytes, stand_in)
    if nbytes <= MULTIPART:
        store.charge([("put", name, nbytes)])
        return
    parts = math.ceil(nbytes / PART)
    _in_waves(store, [("put", name, nbytes // parts)] * parts)
