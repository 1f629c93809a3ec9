"""Signed payloads: a keyed BLAKE3 tag on every object graphwren decodes or unpickles.

Trust model
-----------
Every job gets a fresh random 256-bit key (``new_key``) in the driver's
memory. The key never touches storage: it reaches the job's workers only
inside the invocation event (the local pool's pipe to its worker processes;
the Lambda invocation payload, which the local Lambda emulator passes
through unchanged). Every object a worker or the driver later decodes
carries a tag computed with that key over the object's exact storage key and
its bytes:

* the stage function (``{job}/{stage}/func``); the worker also checks the
  SHA-256 of the pickle against the hash in the event before unpickling, and
  caches it under (store, job, stage, hash, key), so no event can select a
  function another job uploaded;
* the driver's uploads (``data/*``: Executor items, ``from_sequence``
  partitions, ``from_numpy`` blocks), signed in ``BLOCK``-byte blocks so a
  task's ranged read checks only the blocks it reads;
* task outputs (``out/*`` objects), signed per bucket, the tag at the end
  of each bucket's byte range, so a reducer's ranged read of one bucket is
  checked on its own. The tag binds the output object's name, nonce
  included: bytes of one execution never pass for another's;
* commit records, manifests and error records, each signed whole (a small
  result riding inline in a commit record or manifest is covered by its tag);
* a large shuffle's offset table (``offset_table``), signed column by column
  like an output's buckets, under a name whose nonce its signed manifest gives.

A bad or missing tag raises ``IntegrityError`` naming the store and the key,
before a single byte is unpickled or decoded.

Someone who can write to the store, but can neither read the driver's memory
nor see invocation payloads, **cannot**: make the driver or a worker unpickle
bytes of their choosing (no code execution through a forged error record,
output, item or stage function); change a result (a forged or altered commit
record, output, manifest or upload is refused); move a genuine object to
another key (another task, bucket, attempt, stage or job: the tag binds the
key); run another job's stage function by naming its hash.

They **can** still: read every object (confidentiality is the store's own
permissions' job); delete, truncate, corrupt or withhold objects, which makes
the job fail with ``IntegrityError`` or ``MissingKey`` or run into its
timeouts (denial of service is not prevented); pre-empt a task's commit
record with garbage, which fails the job with ``IntegrityError`` rather than
changing its answer.

Outside this scheme: inputs the user names (files read by ``read_text`` or
``read_parquet``, arrays loaded from a store URL, which may hold pickles for
object dtypes) are the user's own data and are read as such. Anyone who can
read invocation payloads holds the job's key: on AWS, whoever may read the
function's async event queue, a failure destination or DLQ the user
configured, or the workers' memory; locally, a user who can read the
driver's or a worker's memory, or who takes an invocation from one of the
Lambda emulator's Runtime API ports (loopback, one per worker, not
authenticated; its Invoke API is, with a token). The key is per job: a
persisted job's key stays in this process's memory (``remember``) so later
jobs here can verify its partitions; another process cannot.
"""
from __future__ import annotations

import hmac
import secrets
import struct
import threading

from blake3 import blake3

from ..errors import IntegrityError

KEY_SIZE = 32
TAG_SIZE = 32
BLOCK = 8 * 1024      # bytes of uploaded data per tag: a ranged read reads and checks whole blocks
ALIGN = 64            # output buckets keep codec.BUCKET_ALIGN alignment with their tag appended
_LEN = struct.Struct("<I")

_keys: dict[str, bytes] = {}   # job -> key, for jobs this process ran and kept
_keys_lock = threading.Lock()


# -- keys -----------------------------------------------------------------------------------
def new_key() -> bytes:
    """A fresh per-job signing key (256 random bits)."""
    return secrets.token_bytes(KEY_SIZE)


def to_event(key: bytes) -> str:
    return key.hex()


def from_event(value, what: str = "the event's signing key") -> bytes:
    """The key carried in an invocation event, or IntegrityError if it is missing or malformed."""
    key = None
    if isinstance(value, str) and len(value) == 2 * KEY_SIZE:
        try:
            key = bytes.fromhex(value)
        except ValueError:
            pass
    if key is None or len(key) != KEY_SIZE:
        raise IntegrityError(f"{what} is missing or malformed (want {2 * KEY_SIZE} hex digits, "
                             f"got {type(value).__name__}): this event did not come from a graphwren driver")
    return key


def event_keys(event: dict) -> dict[str, bytes]:
    """{job: key} for the event's own job and any earlier (persisted) job it reads."""
    keys = {str(job): from_event(k, f"the signing key of input job {job!r}")
            for job, k in (event.get("keys") or {}).items()}
    keys[event["job"]] = from_event(event.get("key"))
    return keys


def remember(job: str, key: bytes) -> None:
    """Hold a job's key in this process (its partitions may be read by later jobs)."""
    with _keys_lock:
        _keys[job] = key


def forget(job: str) -> None:
    with _keys_lock:
        _keys.pop(job, None)


def job_key(job: str) -> bytes:
    """The key of a job this process ran, or IntegrityError."""
    with _keys_lock:
        key = _keys.get(job)
    if key is None:
        raise IntegrityError(
            f"job {job!r} was not run by this process, so its signing key is unknown here and its "
            f"partitions cannot be verified; recompute them (or persist them) in this process")
    return key


# -- tags -------------------------------------------------------------------------------------
# Keyed BLAKE3 is a MAC (a PRF under the key, as HMAC is) and runs at ~6.8 GB/s on one core here against
# HMAC-SHA256's 1.1 GB/s (32 MB, SHA-NI): every byte a task reads or writes is tagged, and with HMAC the
# tags were 18% of a Cholesky's worker samples.
_ONE_SHOT = 4096   # below this, one call on a joined copy beats feeding the hasher part by part


def tag(key: bytes, ident: str, *parts) -> bytes:
    """Keyed BLAKE3 over the identity (length-prefixed) and the bytes."""
    name = ident.encode()
    head = _LEN.pack(len(name)) + name
    if sum(map(len, parts)) < _ONE_SHOT:
        return blake3(b"".join((head, *parts)), key=key).digest()
    mac = blake3(head, key=key)
    for part in parts:
        mac.update(part)
    return mac.digest()


def _refuse(what: str, name: str, store_url: str, why: str):
    return IntegrityError(
        f"{what} {name!r} in {store_url} failed its integrity check ({why}): it was not written by "
        f"this job's driver or workers, or it was changed in storage. Nothing was unpickled.")


def seal(key: bytes, name: str, data) -> bytes:
    """``data`` followed by its tag: for objects read whole (records, manifests, functions)."""
    return b"".join((data, tag(key, name, data)))


def unseal(key: bytes, name: str, blob, store_url: str, what: str = "object") -> memoryview:
    """The bytes ``seal`` signed, or IntegrityError naming the store and the key."""
    view = memoryview(blob)
    if len(view) < TAG_SIZE:
        raise _refuse(what, name, store_url, f"{len(view)} bytes, too short to hold a tag")
    body = view[:-TAG_SIZE]
    if not hmac.compare_digest(view[-TAG_SIZE:], tag(key, name, body)):
        raise _refuse(what, name, store_url, "bad tag")
    return body


# -- outputs: one tag per bucket --------------------------------------------------------------
def _segment_ident(name: str, bucket: int | None) -> str:
    return f"{name}#{'*' if bucket is None else bucket}"


def seal_output(key: bytes, name: str, blob: bytes, offsets: list[int] | None):
    """(sealed bytes, new offsets): each bucket, zero-padded, then its tag; or the whole output."""
    view = memoryview(blob)
    if offsets is None:
        return b"".join((view, tag(key, _segment_ident(name, None), view))), None
    parts, sealed = [], [0]
    for r in range(len(offsets) - 1):
        seg = view[offsets[r]:offsets[r + 1]]
        pad = b"\0" * (-(len(seg) + TAG_SIZE) % ALIGN)   # the next bucket still starts aligned
        parts += (seg, pad, tag(key, _segment_ident(name, r), seg, pad))
        sealed.append(sealed[-1] + len(seg) + len(pad) + TAG_SIZE)
    return b"".join(parts), sealed


def open_segment(key: bytes, name: str, bucket: int | None, segment, store_url: str,
                 what: str | None = None) -> memoryview:
    """A bucket's (or a whole output's) bytes as ``seal_output`` signed them, checked; ``what`` names it in errors."""
    view = memoryview(segment)
    what = what or ("output" if bucket is None else f"bucket {bucket} of output")
    if len(view) < TAG_SIZE:
        raise _refuse(what, name, store_url, f"{len(view)} bytes, too short to hold a tag")
    body = view[:-TAG_SIZE]
    if not hmac.compare_digest(view[-TAG_SIZE:], tag(key, _segment_ident(name, bucket), body)):
        raise _refuse(what, name, store_url, "bad tag")
    return body


# -- uploaded data: one tag per block ---------------------------------------------------------
def _block_ident(name: str, i: int, last: bool) -> str:
    return f"{name}#{i}{'$' if last else ''}"   # the last block says so: truncation is caught


def seal_blocks(key: bytes, name: str, data, block_size: int = BLOCK) -> bytes:
    """Data as ``block_size``-byte blocks, each followed by its tag (empty data: one empty last block)."""
    view = memoryview(data)
    nblocks = max(1, -(-len(view) // block_size))
    parts = []
    for i in range(nblocks):
        block = view[i * block_size:(i + 1) * block_size]
        parts += (block, tag(key, _block_ident(name, i, i == nblocks - 1), block))
    return b"".join(parts)


def read_blocks(store, name: str, key: bytes, start: int | None = None, end: int | None = None,
                block_size: int = BLOCK) -> bytes:
    """Bytes [start, end) of data ``seal_blocks`` wrote, reading and checking only the blocks they span.

    Like a store's ranged read, ``end`` past the data is clamped; ``start`` must not lie beyond it.
    """
    start = start or 0
    if end is not None and end <= start:
        return b""
    size = block_size + TAG_SIZE
    first = start // block_size
    raw = memoryview(store.get(name, first * size, None if end is None else -(-end // block_size) * size))
    if not raw and first > 0:
        # The range starts right after the data: only the block before it can prove the data ends there.
        prev = store.get(name, (first - 1) * size, first * size)
        if len(prev) == size and hmac.compare_digest(prev[-TAG_SIZE:], tag(
                key, _block_ident(name, first - 1, True), memoryview(prev)[:-TAG_SIZE])):
            return b""
        raise _refuse("data", name, store.url, f"truncated: it ends before byte {start}")
    pieces, last_seen, i = [], False, first
    for pos in range(0, len(raw), size):
        chunk = raw[pos:pos + size]
        block, mac = chunk[:-TAG_SIZE], chunk[-TAG_SIZE:]
        # only a full block can be followed by another; a short one must be the last
        if len(block) == block_size and hmac.compare_digest(mac, tag(key, _block_ident(name, i, False), block)):
            pass
        elif len(chunk) >= TAG_SIZE and hmac.compare_digest(mac, tag(key, _block_ident(name, i, True), block)):
            last_seen = True
        else:
            raise _refuse("data block", f"{name}#{i}", store.url, "bad tag")
        lo = max(0, start - i * block_size)
        hi = len(block) if end is None else min(len(block), end - i * block_size)
        if hi > lo:
            pieces.append(block[lo:hi])
        i += 1
        if last_seen:
            if pos + size < len(raw):
                raise _refuse("data", name, store.url, "bytes follow its last block")
            break
    if not last_seen and (end is None or i * block_size < end):
        raise _refuse("data", name, store.url,
                      f"truncated: it ends before {'its last block' if end is None else f'byte {end}'}")
    return b"".join(pieces)
