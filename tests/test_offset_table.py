"""A large shuffle's offset table: the layout, its tags, and readers that fetch only their columns.

Above ``records.COLUMN_OFFSETS`` bucket offsets the driver writes them to a
column-major table and the manifest names it; every reader then GETs its
two columns, not the M x (R + 1) numbers. The end-to-end tests lower the
limit to 0 in the driver's process, so a small job takes the table path
through real stores and real worker processes.
"""
from __future__ import annotations

import collections

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import graphwren as gw
from graphwren import config
from graphwren.errors import IntegrityError
from graphwren.runtime import integrity, offset_table, records
from graphwren.runtime.driver import Driver
from graphwren.runtime.storage import open_store

from test_stats import M, R, WORDS, shuffle_plan, winner

pytestmark = pytest.mark.usefixtures("isolated_config")
KEY = bytes(range(32))


@st.composite
def tables(draw):
    m = draw(st.integers(1, 40))
    r = draw(st.integers(0, 12))
    sizes = draw(st.lists(st.lists(st.integers(0, 2**40), min_size=r, max_size=r), min_size=m, max_size=m))
    offsets = np.array([[0, *np.cumsum(row, dtype=np.int64)] for row in sizes], dtype=np.int64).reshape(m, r + 1)
    lo = draw(st.integers(0, r))
    hi = draw(st.integers(lo, r))
    return offsets, lo, hi


@settings(max_examples=60, deadline=None)
@given(tables())
def test_a_ranged_read_of_columns_gives_every_tasks_offsets(case):
    offsets, lo, hi = case
    m = offsets.shape[0]
    blob = offset_table.encode(KEY, "j/s/offsets.00", offsets)
    assert len(blob) == offsets.shape[1] * offset_table.stride(m)
    start, end = offset_table.byte_range(m, lo, hi)
    assert offset_table.stride(m) % integrity.ALIGN == 0
    got = offset_table.decode(KEY, "j/s/offsets.00", blob[start:end], m, lo, hi, "mem://")
    np.testing.assert_array_equal(got, offsets[:, lo:hi + 1].T)


def test_a_changed_truncated_or_foreign_table_is_refused():
    offsets = np.arange(5 * 4, dtype=np.int64).reshape(5, 4)
    name = "j/s/offsets.aa"
    blob = bytearray(offset_table.encode(KEY, name, offsets))
    start, end = offset_table.byte_range(5, 1, 2)
    changed = bytearray(blob)
    changed[start + 3] ^= 1
    with pytest.raises(IntegrityError, match="column 1 of offset table 'j/s/offsets.aa'"):
        offset_table.decode(KEY, name, bytes(changed[start:end]), 5, 1, 2, "mem://")
    with pytest.raises(IntegrityError, match=r"columns 1..2 returned .* truncated"):
        offset_table.decode(KEY, name, bytes(blob[start:end - 8]), 5, 1, 2, "mem://")
    # the same bytes under another table's name (another manifest's nonce), or another column's place
    with pytest.raises(IntegrityError, match="bad tag"):
        offset_table.decode(KEY, "j/s/offsets.bb", bytes(blob[start:end]), 5, 1, 2, "mem://")
    with pytest.raises(IntegrityError, match="bad tag"):
        offset_table.decode(KEY, name, bytes(blob[start:end]), 5, 0, 1, "mem://")


def test_only_a_large_shuffle_takes_the_table():
    assert not records.offsets_in_columns(1000, 64)           # 65,000 offsets: in the manifest
    assert records.offsets_in_columns(1000, 65)                # 66,000: a table
    assert not records.offsets_in_columns(10_000, None)        # no buckets, no offsets
    assert not records.offsets_in_columns(None, 10)            # tasks unknown at planning


def test_readers_fetch_their_columns_not_the_whole_table(store_url, monkeypatch):
    monkeypatch.setattr(records, "COLUMN_OFFSETS", 0)
    driver = Driver(config.resolve({"storage": store_url, "progress": False, "inline_limit": 0}))
    got = {}
    job = driver.run(shuffle_plan(), lambda s, t, part: got.__setitem__(t, part), keep=True)
    assert dict(kv for part in got.values() for kv in part) == collections.Counter(WORDS)

    store, key = open_store(store_url), integrity.job_key(job)
    name = records.manifest_key(job, "map")
    manifest, _ = records.unpack(integrity.unseal(key, name, store.get(name), store_url, "manifest"))
    assert "o" not in manifest["tasks"][0] and manifest["columns"]["r"] == R and manifest["columns"]["m"] == M
    table = records.offsets_key(job, "map", manifest["columns"]["x"])
    offsets = offset_table.decode(key, table, store.get(table), M, 0, R, store_url).T
    for t in range(R):
        s = winner(driver.record, "count", t)["stats"]
        assert s["records_in"] == sum(int(w[1:]) % R == t for w in WORDS)
        start, end = offset_table.byte_range(M, t, t + 1)   # two columns: the bucket's start and end
        ranges = int(sum(row[t + 1] - row[t] for row in offsets))
        func = 0 if s["cached_fn"] else store.size(records.func_key(job, "count"))
        manifest_read = 1 - s["cached_manifests"]
        assert s["bytes_read"] == manifest_read * store.size(name) + (end - start) + ranges + func
        ops = s["requests"][store_url.split("://")[0]]
        assert ops["get"] == manifest_read + 1 + M + (0 if s["cached_fn"] else 1)
    store.delete(f"{job}/")


@pytest.mark.parametrize("workload", ["frequencies", "sort", "two-level"])
def test_bag_shuffles_through_the_table_match_python(workload, tmp_path, monkeypatch):
    monkeypatch.setattr(records, "COLUMN_OFFSETS", 0)
    words = [f"w{(i * 13) % 97}" for i in range(3000)] + ["hot"] * 3000   # one skewed key
    # small outputs ride inline in their commit records (their offsets still come from the table)
    inline = {"inline_limit": 0} if workload != "frequencies" else {}
    with gw.config.set(storage=f"file://{tmp_path}/s", workers=2, progress=False, **inline):
        bag = gw.bag.from_sequence(words, npartitions=12)
        if workload == "frequencies":
            assert dict(bag.frequencies().compute()) == collections.Counter(words)
        elif workload == "sort":
            assert bag.sort(npartitions=5).compute() == sorted(words)
        else:   # a two-level exchange: its merges read runs of adjacent buckets, several columns at once
            with gw.config.set(exchange_levels="2"):
                got = bag.foldby(lambda w: w, lambda n, _: n + 1, 0, lambda a, b: a + b, 0).compute()
            assert dict(got) == collections.Counter(words)
