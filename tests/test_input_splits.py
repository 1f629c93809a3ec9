"""Input splits come from sizes: small files packed, big files cut, every byte read once, in order."""
from __future__ import annotations

import collections
import gzip
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphwren import bag as db
from graphwren import config
from graphwren.planner import sizing as inputs

MiB = 1024**2


def settings_for(workers=2, backend="local", max_task_memory=2 * 1024**3):
    return {"workers": workers, "backend": backend, "lambda_max_workers": 1000, "max_task_memory": max_task_memory}


def files_of(sizes, compressed=()):
    return [("file:///", f"d/f{i}", size, "gzip" if i in compressed else None) for i, size in enumerate(sizes)]


def covered(splits):
    """(key, start, end) of every piece, in split order."""
    return [(p[1], p[2], p[3]) for split in splits for p in split]


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(0, 40 * MiB), min_size=1, max_size=60), workers=st.integers(1, 64),
       compressed=st.sets(st.integers(0, 59), max_size=10))
def test_every_byte_is_in_one_piece_in_file_order(sizes, workers, compressed):
    files = files_of(sizes, compressed)
    splits = inputs.text_splits(files, None, None, settings_for(workers))
    assert all(splits) and all(p for split in splits for p in split)
    pieces = covered(splits)
    # Pieces follow the listing: file by file, each file's ranges contiguous from 0 to its size.
    expect_key = [f[1] for f in files]
    seen_keys = list(dict.fromkeys(k for k, _, _ in pieces))
    assert seen_keys == expect_key
    for (_, _, size, comp), key in zip(files, expect_key):
        ranges = [(s, e) for k, s, e in pieces if k == key]
        assert ranges[0][0] == 0 and ranges[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        if comp is not None:
            assert ranges == [(0, size)]   # a compressed file is never cut


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(0, 40 * MiB), min_size=1, max_size=60), workers=st.integers(1, 64))
def test_no_split_is_over_the_target_unless_it_is_one_whole_file(sizes, workers):
    files = files_of(sizes)
    s = settings_for(workers)
    target = inputs.split_target(sum(sizes), len(sizes), s)
    for split in inputs.text_splits(files, None, None, s):
        size = sum(p[3] - p[2] for p in split) + inputs.OPEN_COST * len(split)
        # evened out: within one file of the mean share, which is at most the target
        biggest = max(p[3] - p[2] for p in split) + inputs.OPEN_COST
        assert size <= target + biggest or len(split) == 1


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(0, 200 * MiB), min_size=1, max_size=60), workers=st.integers(1, 64),
       memory=st.sampled_from([400 * MiB, 2 * 1024**3]))
def test_no_split_holds_more_bytes_than_a_task_may_read(sizes, workers, memory):
    s = settings_for(workers, max_task_memory=memory)
    for split in inputs.text_splits(files_of(sizes), None, None, s):
        assert sum(p[3] - p[2] for p in split) <= inputs.split_cap(s) or len(split) == 1


def test_the_shapes_users_have():
    s = settings_for(workers=2)
    many_small = inputs.text_splits(files_of([17_000] * 1_800), None, None, s)
    assert 4 <= len(many_small) <= 16          # a few splits per worker, not 1,800
    one_big = inputs.text_splits(files_of([78 * MiB]), None, None, s)
    assert len(one_big) >= 2 * 2                # one file keeps both workers busy
    equal = inputs.text_splits(files_of([5 * MiB] * 16), None, None, s)
    assert 4 <= len(equal) <= 16
    tiny = inputs.text_splits(files_of([100, 200, 300]), None, None, s)
    assert len(tiny) == 3                       # the open cost keeps tiny inputs one split per file
    # Even splits, one round of work per split for each worker's share: no lone half-size split
    assert [len(split) for split in equal] == [2] * 8
    tiny_files = inputs.text_splits(files_of([1_500] * 20_000), None, None, s)
    assert [len(split) for split in tiny_files] == [2_500] * 8   # open costs are requests, not memory: uncapped


def test_the_target_follows_the_backend_and_the_memory_bound():
    total, n = 10 * 1024**3, 10
    local = inputs.split_target(total, n, settings_for(workers=2))
    assert local == inputs.MAX_SPLIT * (total + n * inputs.OPEN_COST) // total   # the cap, and the open costs
    small_memory = inputs.split_target(total, n, settings_for(workers=2, max_task_memory=400 * MiB))
    assert inputs.split_cap(settings_for(workers=2, max_task_memory=400 * MiB)) <= (400 * MiB - 160 * MiB) // 4
    assert small_memory < local
    lam = inputs.split_target(100 * MiB, 1, settings_for(backend="lambda"))
    assert lam == inputs.LAMBDA_MIN_SPLIT       # 1000 Lambdas do not each read 100 KiB


def test_user_choices_win():
    files = files_of([10 * MiB, 100, 100, 3 * MiB])
    by_block = inputs.text_splits(files, 4 * MiB, None, settings_for())
    assert [len(s) for s in by_block] == [1] * 6 and covered(by_block)[:3] == [
        ("d/f0", 0, 4 * MiB), ("d/f0", 4 * MiB, 8 * MiB), ("d/f0", 8 * MiB, 10 * MiB)]
    by_files = inputs.text_splits(files, None, 3, settings_for())
    assert [[p[1] for p in s] for s in by_files] == [["d/f0", "d/f1", "d/f2"], ["d/f3"]]


# -- end to end: the answers do not depend on how files are split ---------------------------------------------
def write_corpus(root, nfiles, lines_per_file, last_newline=True):
    texts = []
    for i in range(nfiles):
        lines = [f"w{(i * 7 + j) % 13} x{j % 5} caf\u00e9" if j % 4 == 0 else f"w{(i + j) % 11} y{j % 3}"
                 for j in range(lines_per_file)]
        text = "\n".join(lines) + ("\n" if last_newline or i % 2 == 0 else "")
        (root / f"part-{i:04d}.txt").write_text(text)
        texts.append(text)
    return texts


@pytest.mark.parametrize("nfiles,lines,last_newline", [(300, 3, False), (1, 20_000, True), (40, 400, False)])
def test_word_count_and_lines_match_plain_python(tmp_path, nfiles, lines, last_newline):
    texts = write_corpus(tmp_path, nfiles, lines, last_newline)
    expect_lines = [line for text in texts for line in text.splitlines(keepends=True)]
    run = dict(storage=f"file://{tmp_path}/store", progress=False)
    b = db.read_text(str(tmp_path / "part-*.txt"))
    assert b.compute(**run) == expect_lines                    # every line once, in file order
    words = collections.Counter(w for line in expect_lines for w in line.split())
    assert dict(b.flat_map(str.split).frequencies().compute(**run)) == words   # the columnar path
    assert dict(b.map(str.upper).flat_map(str.split).frequencies().compute(**run)) == \
        collections.Counter(w.upper() for line in expect_lines for w in line.split())
    assert b.npartitions == len(db.read_text(str(tmp_path / "part-*.txt")).map_partitions(lambda p: [1])
                                .compute(**run))


def test_small_files_pack_and_one_big_file_is_cut(tmp_path):
    write_corpus(tmp_path, 200, 5)
    many = db.read_text(str(tmp_path / "part-*.txt"))
    workers = config.resolve()["workers"]
    # Greedy packing: any two neighbouring splits hold more than the target, so at most twice the aim.
    assert many.npartitions <= 2 * inputs.SPLITS_PER_WORKER * max(workers, 1) + 1
    assert "packed into" in many.explain()
    big = tmp_path / "big" / "one.txt"
    big.parent.mkdir()
    big.write_text("".join(f"line {i} of the one big file\n" for i in range(400_000)))
    one = db.read_text(str(big))
    assert one.npartitions >= 2 and "1 file" in one.explain()
    assert one.count().compute(storage=f"file://{tmp_path}/store", progress=False) == 400_000


def test_gzip_files_are_packed_whole_and_dask_choices_still_work(tmp_path):
    for i in range(6):
        with gzip.open(tmp_path / f"g{i}.txt.gz", "wt") as f:
            f.write("".join(f"g{i} line {j}\n" for j in range(50)))
    run = dict(storage=f"file://{tmp_path}/store", progress=False)
    b = db.read_text(str(tmp_path / "g*.txt.gz"))
    assert b.count().compute(**run) == 300
    assert db.read_text(str(tmp_path / "g*.txt.gz"), files_per_partition=4).npartitions == 2
    assert db.read_text(str(tmp_path / "g*.txt.gz"), blocksize=10).npartitions == 6
    with pytest.raises(ValueError, match="not both"):
        db.read_text(str(tmp_path / "g*.txt.gz"), blocksize=10, files_per_partition=2)
    with pytest.raises(ValueError, match="files_per_partition"):
        db.read_text(str(tmp_path / "g*.txt.gz"), files_per_partition=0)


def test_a_file_gone_between_planning_and_reading_is_named(tmp_path):
    from graphwren import planner
    from graphwren.planner.outputs import Partitions
    write_corpus(tmp_path, 3, 50)
    run = config.resolve({"storage": f"file://{tmp_path}/store", "progress": False, "task_retries": 0})
    planned = planner.plan(db.read_text(str(tmp_path / "part-*.txt")).count().expr, run)
    (tmp_path / "part-0001.txt").unlink()
    with pytest.raises(Exception, match="part-0001.txt") as info:
        planner.execute(planned, run, Partitions())
    assert "part-0001.txt" in str(info.value)


def test_a_missing_plain_path_is_named_at_planning(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file.*nope.txt"):
        db.read_text(str(tmp_path / "nope.txt")).count().compute(storage=f"file://{tmp_path}/s", progress=False)


# -- from_sequence without npartitions: sized by the planner ------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(nbytes=st.integers(0, 10 * 1024**3), nitems=st.integers(0, 10**7), workers=st.integers(1, 64),
       backend=st.sampled_from(["local", "lambda"]))
def test_sequence_partitions_keep_workers_busy_within_the_split_cap_and_never_exceed_the_records(
        nbytes, nitems, workers, backend):
    s = settings_for(workers, backend)
    n, why = inputs.sequence_partitions(nbytes, nitems, s)
    assert 1 <= n <= max(nitems, 1) and why
    busy = workers * (1 if backend == "lambda" else inputs.SPLITS_PER_WORKER)
    if backend == "lambda":
        busy = 1000   # settings_for's lambda_max_workers: the backend's concurrency
    assert n >= min(nitems, busy)                     # every worker gets work while there are records
    cap = inputs.split_target(nbytes, 1, s)
    assert n == max(nitems, 1) or -(-nbytes // n) <= cap   # none over the cap unless one record each


def test_from_sequence_is_sized_by_the_planner_and_dask_choices_still_win(tmp_path):
    run = dict(storage=f"file://{tmp_path}/store", progress=False)
    s = settings_for(workers=2)
    from graphwren import planner
    big = db.from_sequence(range(10**6))
    n = planner.npartitions(big.expr, {**config.resolve(), **s})
    assert n == 2 * inputs.SPLITS_PER_WORKER          # not 10**6 partitions, nor 1 on 2 workers
    assert big.sum().compute(**run) == sum(range(10**6))
    text = big.sum().explain(**run)
    assert re.search(r"from_sequence\(1,000,000 records, [\d.]+ \w+, in \d+ partitions: 4 per worker\)", text), text
    few = db.from_sequence(["a", "b", "c"])
    assert few.npartitions == 3 and few.compute(**run) == ["a", "b", "c"]   # never more than the records
    assert db.from_sequence([]).compute(**run) == [] and db.from_sequence([]).npartitions == 1
    # a sequence too large for split_target's cap gets more partitions than the workers need
    huge, _ = inputs.sequence_partitions(10 * inputs.MAX_SPLIT, 10**6, s)
    assert huge == 10
    # records come back in order, the partitions' sizes within one of each other
    parts = db.from_sequence(range(1003)).map_partitions(lambda p: [list(p)]).compute(**run)
    assert [x for p in parts for x in p] == list(range(1003))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    # dask's cuts when asked: full partitions, the last one shorter
    assert db.from_sequence(range(10), npartitions=4).map_partitions(lambda p: [len(list(p))]).compute(**run) \
        == [3, 3, 3, 1]
    assert db.from_sequence(range(10), partition_size=4).npartitions == 3


def test_a_glob_of_100000_files_plans_from_one_listing_in_file_order(tmp_path):
    import os
    from graphwren.runtime import stats
    d = tmp_path / "logs"
    d.mkdir()
    for i in range(100_000):   # empty files, and one line in every 1,000th: cheap to make, all to be listed
        fd = os.open(d / f"f{i:06d}.log", os.O_WRONLY | os.O_CREAT, 0o644)
        if i % 1000 == 0:
            os.write(fd, f"w{i % 7} x\n".encode())
        os.close(fd)
    with stats.TaskMeter() as meter:   # counts every store request made on this thread
        b = db.read_text(str(d / "*.log"))
        text = b.count().explain(storage=f"file://{tmp_path}/store")
    assert meter.requests == {}   # the glob's one listing gave the sizes: no request per file
    assert "read_text(100,000 files" in text and "source reads: ~100,000 GETs of file:///" in text
    workers = config.resolve()["workers"]
    splits = inputs.text_splits(b.expr.files, None, None, config.resolve())
    assert len(splits) <= 2 * inputs.SPLITS_PER_WORKER * max(workers, 1)   # packed, not 100,000 tasks
    assert [p[1].rsplit("/", 1)[1] for split in splits for p in split] == [f"f{i:06d}.log" for i in range(100_000)]


def test_an_s3_object_gone_between_planning_and_reading_is_named(tmp_path, s3_endpoint, s3_url):
    from graphwren import planner
    from graphwren.planner.outputs import Partitions
    from graphwren.runtime.storage import open_store
    src = open_store(f"{s3_url}/src?endpoint={s3_endpoint}")
    for i in range(5):
        src.put(f"part-{i}.txt", f"a b {i}\n".encode())
    run = config.resolve({"storage": f"file://{tmp_path}/store", "progress": False, "task_retries": 0})
    bag = db.read_text(f"{s3_url}/src/part-*.txt", storage_options={"endpoint_url": s3_endpoint}, files_per_partition=5)
    planned = planner.plan(bag.count().expr, run)
    assert planned.plan.stages[0].ntasks == 1   # one split: the vanished object is read ahead with the others
    src.delete("part-3.txt")
    with pytest.raises(Exception, match=r"s3://gw-test/t/src/part-3\.txt"):
        planner.execute(planned, run, Partitions())
