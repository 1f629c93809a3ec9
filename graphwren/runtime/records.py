"""Key layout and the small binary records tasks and the driver exchange.

Every key of a job lives under ``{job}/``::

    {job}/data/{name}                 inputs the driver uploaded (items, splits)
    {job}/{stage}/func                the stage function (content hash in the event)
    {job}/{stage}/out/{task}.{attempt}.{nonce}  one execution's output
    {job}/{stage}/out/{pp}/{task}.{attempt}.{nonce}  the same, its stage's outputs spread over prefixes
    {job}/{stage}/done/{task}         the commit record: first attempt to create it wins
    {job}/{stage}/err/{task}.{attempt}.{nonce}  one execution's error
    {job}/{stage}/manifest            written by the driver once every task committed
    {job}/{stage}/offsets.{nonce}     a large shuffle's bucket offsets, column by column (offset_table.py)
    {job}/lease                       the running driver's heartbeat (runtime/lease.py)
    {job}/job.json                    the job's record (stats.JobRecord), when its keys are kept

The nonce is drawn afresh by every execution, so two deliveries of the same
event (Lambda delivers at least once; a backup copy; a late attempt) never
write the same key: the commit record names the exact output object of the
execution that won, and every reader follows the record.

A commit record and a manifest are a 4-byte header length, a JSON header,
then raw bytes (an inline result, or the inline results of a stage). A
manifest holds each task's ``a``, ``x``, ``p``, ``inline`` and ``i`` (where
its inline result lies in the payload), and its bucket offsets ``o`` while
the stage's M x (R + 1) offsets number at most ``COLUMN_OFFSETS``; above
that its ``columns`` names the nonce of the offset table that holds them. A
commit header holds ``a`` (attempt), ``x`` (nonce), ``o`` (bucket offsets),
``n`` (output bytes), ``inline``, ``p`` (the prefixes the stage's
outputs are spread over, when more than one), and ``s``: the attempt's statistics
(``stats.TaskMeter.stats``); readers ignore keys they do not know, so a
record without ``s`` (an older worker's) still reads.
"""
from __future__ import annotations

import calendar
import json
import secrets
import struct
import time
import uuid

_LEN = struct.Struct("<I")


def new_job_id() -> str:
    """Job ids start with their UTC creation time so `graphwren clean` can age them."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:10]


def job_time(job: str) -> float | None:
    """The creation time encoded in a job id (seconds since the epoch), or None for keys that are not jobs."""
    try:
        # The id is UTC: timegm reads it as such. mktime would read it as local time, and
        # subtracting time.timezone undoes only the standard offset, not daylight saving.
        return float(calendar.timegm(time.strptime(job.split("-", 1)[0], "%Y%m%dT%H%M%S")))
    except ValueError:
        return None


def lease_key(job: str) -> str:
    return f"{job}/lease"


def job_record_key(job: str) -> str:
    return f"{job}/job.json"


def stage_prefix(job: str, stage: str) -> str:
    return f"{job}/{stage}/"


def func_key(job: str, stage: str) -> str:
    return f"{job}/{stage}/func"


def new_nonce() -> str:
    """64 random bits naming one execution of a task: no other delivery draws the same."""
    return secrets.token_hex(8)


def out_key(job: str, stage: str, task: int, attempt: int, nonce: str, prefixes: int | None = None) -> str:
    """One execution's output object; with ``prefixes`` > 1, under one of that many prefixes of its stage.

    S3 serves about 5,500 GETs a second per key prefix: a shuffle whose
    reducers read M x R pieces of one stage's outputs is spread so that map
    task j's object lies under prefix j mod P, and the reads of every reducer
    fall evenly on P prefixes S3 can serve in parallel.
    """
    if prefixes and prefixes > 1:
        return f"{job}/{stage}/out/{spread_prefix(task, prefixes)}/{task}.{attempt}.{nonce}"
    return f"{job}/{stage}/out/{task}.{attempt}.{nonce}"


def spread_prefix(task: int, prefixes: int) -> str:
    """The prefix of task ``task``'s output among ``prefixes``: two hex digits (at most 256 prefixes)."""
    if not 1 < prefixes <= MAX_PREFIXES:
        raise ValueError(f"outputs spread over 2 to {MAX_PREFIXES} prefixes, not {prefixes}")
    return f"{task % prefixes:02x}"


#: The most prefixes a stage's outputs spread over: 256 x 5,500 GET/s is 1.4M GETs a second.
MAX_PREFIXES = 256


def done_key(job: str, stage: str, task: int) -> str:
    return f"{job}/{stage}/done/{task}"


def err_key(job: str, stage: str, task: int, attempt: int, nonce: str) -> str:
    return f"{job}/{stage}/err/{task}.{attempt}.{nonce}"


def manifest_key(job: str, stage: str) -> str:
    return f"{job}/{stage}/manifest"


#: Most bucket offsets (map tasks x (buckets + 1)) a manifest holds itself: 64 Ki numbers, ~0.5 MB
#: of JSON that every reader GETs. Past it they go to an offset table a reader takes its column of.
COLUMN_OFFSETS = 2**16


def offsets_in_columns(ntasks: int, nbuckets: int | None) -> bool:
    """Whether a stage's manifest keeps its bucket offsets in an offset table (one more GET per reader)."""
    return ntasks is not None and nbuckets is not None and ntasks * (nbuckets + 1) > COLUMN_OFFSETS


def offsets_key(job: str, stage: str, nonce: str) -> str:
    return f"{job}/{stage}/offsets.{nonce}"


def data_key(job: str, name: str) -> str:
    return f"{job}/data/{name}"


def parse_status_key(key: str, prefix: str):
    """('done', task, None) or ('err', task, attempt) for a key under a stage prefix."""
    rest = key[len(prefix):]
    kind, _, name = rest.partition("/")
    if kind == "done":
        return "done", int(name), None
    if kind == "err":
        task, _, rest = name.partition(".")
        attempt = rest.partition(".")[0]   # the nonce after it only keeps deliveries apart
        return "err", int(task), int(attempt)
    return None


def pack(header: dict, payload: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return _LEN.pack(len(head)) + head + payload


def unpack(blob: bytes) -> tuple[dict, memoryview]:
    (n,) = _LEN.unpack_from(blob, 0)
    view = memoryview(blob)
    return json.loads(bytes(view[4:4 + n])), view[4 + n:]


def header_size(blob: bytes) -> int:
    """Where the payload of a packed record starts."""
    return 4 + _LEN.unpack_from(blob, 0)[0]
