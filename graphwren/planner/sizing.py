"""How many tasks a stage gets, from bytes: input splits, and reducers after a shuffle.

Input splits come from sizes, not from files: small files packed together, large files cut into blocks.

Spark's file splitting is the model. Every file counts for its size plus an
open cost (a request, and the per-file work of a task), and a split takes
files, in listing order, until it reaches the target size; a file bigger
than the target is cut into newline-aligned blocks of its own (a compressed
file cannot be cut: it stays whole). The target keeps every worker busy with
a few splits each, never goes under the open cost (tiny inputs stay one
split per file) and never over what one task's memory allows.
``blocksize=`` or ``files_per_partition=`` given by the user win over it.
"""
from __future__ import annotations

from ..logical import offline
from ..runtime.backends import planned_workers
from ..tasks.text_io import infer_compression
from . import memory
from .explain import human_bytes

#: What a file costs beyond its bytes when packing splits (Spark's openCostInBytes, scaled to this engine).
OPEN_COST = 64 * 1024
#: Splits per worker: a few, so a slow split does not leave the others idle at the end of a stage.
SPLITS_PER_WORKER = 4
#: The largest split, whatever the data: bigger ones gain nothing and lose parallelism.
MAX_SPLIT = 128 * 1024**2
#: Bytes a reducer is planned to read (Spark's advisory partition size): the map side's output
#: is at most what it read, so this many input bytes per reducer is an upper bound on its work.
REDUCER_BYTES = 64 * 1024**2
#: The smallest split on Lambda: under this, an invocation's start costs more than its read.
LAMBDA_MIN_SPLIT = 8 * 1024**2


def split_target(total_bytes: int, nfiles: int, settings: dict) -> int:
    """Bytes per split for this much input on this backend (see the module docstring)."""
    workers = planned_workers(settings)
    cost = total_bytes + nfiles * OPEN_COST
    target = -(-cost // max(1, workers * SPLITS_PER_WORKER))   # rounded up: exactly that many splits fit
    floor = LAMBDA_MIN_SPLIT if settings.get("backend") == "lambda" else OPEN_COST
    cap = split_cap(settings)
    # The cap bounds a split's bytes, not its open costs (they are requests, not memory): 20,000 files of
    # 1.5 KB count 1.3 GB of open cost for 30 MB of text, and capping that would cut them into more splits
    # than the workers need, each one more partial result for the reducers to merge.
    return max(floor, min(target, cap * cost // max(1, total_bytes)))


def split_cap(settings: dict) -> int:
    """The most bytes of data one split may hold: what a task's memory allows, and no more than MAX_SPLIT."""
    return min(MAX_SPLIT, memory.largest_bag_read(memory.bound(settings)))


def reducers(shuffled_bytes: int | None, n_in: int, settings: dict | None = None) -> tuple[int, str]:
    """(reducer count, why) for a hash shuffle of about ``shuffled_bytes`` from ``n_in`` map tasks.

    ``REDUCER_BYTES`` per reducer, and no more reducers than map tasks (the
    map side's output is at most what it read, so that many were enough to
    read it); but when a reducer's share would not fit one task's memory
    (``settings``' bound), the shuffle is cut into as many more as it takes.
    """
    if shuffled_bytes is None or offline.is_unknown(n_in):
        return n_in, "as many as map tasks: the size is unknown"
    n = max(1, min(-(-shuffled_bytes // REDUCER_BYTES), max(n_in, 1)))
    why = f"~{human_bytes(shuffled_bytes)} at most, {human_bytes(REDUCER_BYTES)} per reducer"
    if settings is not None:
        fits = memory.largest_bag_read(memory.bound(settings))
        needed = -(-shuffled_bytes // fits)
        if needed > n:
            n = needed
            why = (f"~{human_bytes(shuffled_bytes)} at most, cut so each reducer's "
                   f"~{human_bytes(shuffled_bytes / n)} fits a task's {human_bytes(memory.bound(settings))}")
    return n, why


def text_splits(files: list[tuple], blocksize: int | None, files_per_partition: int | None,
                settings: dict) -> list[list[tuple]]:
    """The pieces ``(store URL, key, start, end, compression)`` of each split, in order.

    ``files`` are ``(store URL, key, size, compression)`` as listed.
    """
    if blocksize is not None:   # as dask: each file on its own, cut every blocksize bytes
        return [[piece] for f in files for piece in _cut(f, blocksize)]
    if files_per_partition is not None:
        return [[_whole(f) for f in files[i:i + files_per_partition]]
                for i in range(0, len(files), files_per_partition)]
    target = split_target(sum(f[2] for f in files), len(files), settings)
    return pack_files(files, target, min(target, split_cap(settings)))


def pack_files(files: list[tuple], target: int, cap: int | None = None) -> list[list[tuple]]:
    """Files ``(store URL, key, size, compression)`` packed into splits of about ``target`` bytes, big plain
    files cut into equal blocks of their own (none over the target): the pieces of each split, in order.
    ``cap`` (the target unless given) bounds a split's bytes without its open costs.

    A run of files between two big ones is packed into as few splits as the
    target allows, then evened out: 16 files of 5 MB with a target of two
    and a bit make 8 splits of two, not 5 of two and 6 of one.
    """
    cap = target if cap is None else min(cap, target)
    splits: list[list[tuple]] = []
    run: list[tuple] = []
    for f in files:
        size = f[2]
        if size > cap and f[3] is None:   # a big plain file: blocks of its own
            splits.extend(_packed(run, target, cap))
            run = []
            nblocks = -(-size // cap)
            splits.extend([piece] for piece in _cut(f, -(-size // nblocks)))  # equal blocks, none over the cap
            continue
        run.append(f)
    splits.extend(_packed(run, target, cap))
    return splits


def _packed(files: list[tuple], target: int, cap: int) -> list[list[tuple]]:
    """Small files in listing order cut into the fewest splits the target allows, evened out: file i goes
    to split floor(k x (the cost before its middle) / the run's cost), so each split costs within one file
    of the mean (16 files of 5 MB under a target of two and a bit: 8 splits of two, not 11 of one or two).
    A split over ``cap`` bytes is then cut greedily under it."""
    if not files:
        return []
    costs = [f[2] + OPEN_COST for f in files]
    total = sum(costs)
    k = max(1, -(-total // target))
    splits: list[list[tuple]] = []
    before, last = 0, -1
    for f, cost in zip(files, costs):
        g = min(k - 1, (2 * before + cost) * k // (2 * total))
        if g != last:
            splits.append([])
            last = g
        splits[-1].append(_whole(f))
        before += cost
    return [piece for split in splits for piece in _under_cap(split, cap)]


def _under_cap(split: list[tuple], cap: int) -> list[list[tuple]]:
    if sum(p[3] for p in split) <= cap:
        return [split]
    out: list[list[tuple]] = [[]]
    nbytes = 0
    for p in split:
        if out[-1] and nbytes + p[3] > cap:
            out.append([])
            nbytes = 0
        out[-1].append(p)
        nbytes += p[3]
    return out


def source_gets(files: list[tuple], splits: list[list[tuple]]) -> dict[str, int]:
    """{store: GETs} the readers of ``splits`` make (``ReadTextBlock``): one per piece (a whole file or a
    block of one), and one more for a block that ends inside a file, to finish its last line. Files
    without a final newline cost one more request each, not counted: the listing does not say which."""
    size = {(f[0], f[1]): f[2] for f in files}
    gets: dict[str, int] = {}
    for split in splits:
        for store_url, key, start, end, comp in split:
            where = store_url.split("?", 1)[0]
            gets[where] = gets.get(where, 0) + 1 + (comp is None and end < size.get((store_url, key), end))
    return gets


def _whole(f: tuple) -> tuple:
    store_url, key, size, comp = f
    return (store_url, key, 0, size, comp)


def _cut(f: tuple, blocksize: int) -> list[tuple]:
    store_url, key, size, comp = f
    if comp is not None or size <= blocksize:
        return [_whole(f)]
    return [(store_url, key, start, min(start + blocksize, size), None) for start in range(0, size, blocksize)]


def describe(files: list[tuple], splits: list[list[tuple]]) -> str:
    """How explain() shows the split decision: ``read_text(1,786 files, 30 MiB, packed into 8 splits of ~3.8 MiB)``."""
    total = sum(f[2] for f in files)
    n, k = len(files), len(splits)
    what = f"{n:,} file{'s' if n != 1 else ''}, {human_bytes(total)}"
    if k == n and all(len(s) == 1 and s[0][2] == 0 and s[0][3] == f[2] for s, f in zip(splits, files)):
        how = "one split per file" if n > 1 else "one split"
    elif k < n:
        how = f"packed into {k:,} splits of ~{human_bytes(total / k)}"
    else:
        how = f"in {k:,} splits of ~{human_bytes(total / k)}"
    return f"read_text({what}, {how})"


def unlisted_text(urlpath, blocksize, files_per_partition, compression) -> tuple[int, str]:
    """(split count, label) for explain() over remote files it did not list: known only without a glob,
    and only where sizes do not decide (files_per_partition, or compressed files read whole)."""
    paths = offline.paths_of(urlpath)
    if any(map(offline.has_glob, paths)):
        return offline.UNKNOWN, "read_text(? files, size unknown)"
    n = len(paths)
    label = f"read_text({n} file{'s' if n != 1 else ''}, size unknown)"
    if files_per_partition is not None:
        return -(-n // files_per_partition), label
    if blocksize is not None and all(infer_compression(p, compression) for p in paths):
        return n, label
    return offline.UNKNOWN, label


def sequence_partitions(nbytes: int, nitems: int, settings: dict) -> tuple[int, str]:
    """(partition count, why) for ``nitems`` records the driver holds, about ``nbytes`` encoded (from_sequence).

    Records handed to from_sequence are often work to do (paths, parameters)
    rather than data, so their bytes set only the floor of parallelism: a few
    partitions per worker (one per Lambda invocation the backend may run at
    once), more when the bytes need them to stay within split_target's cap,
    and never more than one record per partition.
    """
    if nitems <= 0:
        return 1, "no records"
    workers = planned_workers(settings)
    per_worker = 1 if settings.get("backend") == "lambda" else SPLITS_PER_WORKER
    busy = workers * per_worker
    cap = split_target(nbytes, 1, settings)
    by_bytes = -(-nbytes // cap)
    if by_bytes > busy:
        n, why = by_bytes, f"at most {human_bytes(cap)} each"
    else:
        n, why = busy, f"{per_worker} per worker" if per_worker > 1 else "one per worker"
    if n >= nitems:
        return nitems, "one record each"
    return n, why
