"""Zarr storage against real stores (a directory, moto's S3 server, redis-server), read back by zarr-python itself."""
from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

import graphwren.array as da
from graphwren import config, planner
from graphwren.collections.array_base import ArrayError
from graphwren.errors import ProjectedMemoryError
from graphwren.runtime import codec
from graphwren.runtime.storage import open_store
from graphwren.tasks.array_zarr import KZarrRead, ZarrWriter, _whole_raw_chunk


def _target(store_url: str, name: str) -> str:
    if store_url.startswith("redis"):
        return f"{store_url}?prefix={name}"
    return f"{store_url}/{name}"


def _copy_to_dir(url: str, path) -> str:
    """Every key under ``url`` as a file under ``path``: what zarr-python's own LocalStore then reads."""
    store = open_store(url)
    for key in store.list(""):
        os.makedirs(os.path.dirname(os.path.join(path, key)), exist_ok=True)
        with open(os.path.join(path, key), "wb") as f:
            f.write(store.get(key))
    return str(path)


def test_to_zarr_writes_plain_zarr_that_zarr_python_reads(store_url, tmp_path):
    x = np.random.default_rng(0).random((9, 7))
    A = da.from_array(x, chunks=(4, 3))
    url = _target(store_url, "A")
    written = (A * 2).to_zarr(url, storage=store_url)
    assert written == x.nbytes
    keys = open_store(url).list("")
    assert "zarr.json" in keys and "c/2/1" in keys and len([k for k in keys if k.startswith("c/")]) == 9
    assert json.loads(open_store(url).get("zarr.json"))["chunk_grid"]["configuration"]["chunk_shape"] == [4, 3]
    z = zarr.open_array(_copy_to_dir(url, tmp_path / "copy"), mode="r")     # zarr's own store, no graphwren
    np.testing.assert_array_equal(z[:], x * 2)
    D = da.from_zarr(url)
    assert D.chunks == A.chunks and D.dtype == A.dtype
    np.testing.assert_allclose((D + 1).compute(storage=store_url), x * 2 + 1)
    np.testing.assert_allclose((D @ D.T).compute(), (x * 2) @ (x * 2).T)


def test_from_zarr_reads_what_zarr_python_wrote(store_url, tmp_path):
    local = tmp_path / "Z"
    z = zarr.create_array(str(local), shape=(10, 6, 3), chunks=(3, 4, 2), dtype="i4")
    z[:] = np.arange(180, dtype="i4").reshape(10, 6, 3)
    url = _target(store_url, "Z")
    store = open_store(url)
    for root, _, files in os.walk(local):
        for name in files:
            path = os.path.join(root, name)
            store.put(os.path.relpath(path, local), open(path, "rb").read())
    Z = da.from_zarr(url)
    assert Z.chunks == ((3, 3, 3, 1), (4, 2), (2, 1)) and Z.dtype == np.int32
    want = np.arange(180, dtype="i4").reshape(10, 6, 3)
    np.testing.assert_array_equal(Z.sum(axis=2).compute(storage=store_url), want.sum(axis=2))
    np.testing.assert_array_equal(da.from_zarr(url, chunks=(5, 5, 3)).compute(), want)   # blocks across chunks


def test_irregular_chunks_are_rechunked_to_zarrs_grid_and_overwrite_is_explicit(tmp_path):
    x = np.arange(63.0).reshape(9, 7)
    url = f"file://{tmp_path}/R"
    da.from_array(x, chunks=((2, 7), (3, 4))).to_zarr(url)
    assert zarr.open_array(f"{tmp_path}/R").chunks == (7, 4)
    np.testing.assert_array_equal(zarr.open_array(f"{tmp_path}/R")[:], x)
    with pytest.raises(ArrayError, match="overwrite=True"):
        da.ones((2, 2)).to_zarr(url)
    da.ones((3, 2), chunks=1).to_zarr(url, overwrite=True)
    np.testing.assert_array_equal(da.from_zarr(url).compute(), np.ones((3, 2)))


def test_store_and_load_are_thin_aliases(tmp_path):
    url = f"file://{tmp_path}/C"
    A = da.random((12, 12), chunks=4, seed=1)
    summary = (A @ A).store(url)
    assert summary["format"] == "zarr" and summary["shape"] == [12, 12] and summary["chunks"] == [[4] * 3] * 2
    a = A.compute()
    np.testing.assert_allclose(da.load(url).compute(), a @ a)
    assert "from_zarr(" in da.load(url).sum().explain()
    (A + 1).store(url, compressors=None)    # store overwrites, as it always did; chunks raw
    np.testing.assert_allclose(da.load(url).compute(), a + 1)
    with pytest.raises(ArrayError, match="reads its own target"):
        (da.load(url) + 1).store(url)


def test_store_int64_1d_and_empty(tmp_path):
    url = f"file://{tmp_path}/v"
    da.arange(10, chunks=3, dtype=np.int64).store(url)
    got = da.load(url).compute()
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.arange(10))
    da.zeros((0, 4), chunks=2).to_zarr(f"file://{tmp_path}/e")
    assert da.from_zarr(f"file://{tmp_path}/e").compute().shape == (0, 4)


def test_load_reads_graphwrens_first_format(tmp_path):
    url = f"file://{tmp_path}/old"
    store = open_store(url)
    x = np.arange(12.0).reshape(3, 4)
    store.put("block/0.0", codec.encode(x[:2]))
    store.put("block/1.0", codec.encode(x[2:]))
    store.put("_array.json", json.dumps({"format": "graphwren.array", "version": 1, "shape": [3, 4],
                                         "dtype": "<f8", "chunks": [[2, 1], [4]], "token": "t"}).encode())
    np.testing.assert_array_equal(da.load(url).compute(), x)
    da.load(url).store(f"file://{tmp_path}/new")           # and converts to zarr
    np.testing.assert_array_equal(zarr.open_array(f"{tmp_path}/new")[:], x)


def test_zarr_errors_and_memory_bound(tmp_path):
    with pytest.raises(ArrayError, match="no zarr array there"):
        da.from_zarr(f"file://{tmp_path}/nothing")
    with pytest.raises(NotImplementedError, match="component="):
        da.ones(3).to_zarr(f"file://{tmp_path}/x", component="a/b")
    big = da.zeros((8192, 8192), chunks=4096)                 # 128 MiB blocks, written and compressed per task
    settings = config.resolve({"max_task_memory": 512 * 1024**2})
    planner.plan(big.expr, settings)                          # returning the blocks fits (~288 MiB a task)
    with pytest.raises(ProjectedMemoryError, match="max_task_memory"):   # writing them does not (~544 MiB)
        planner.plan(big.expr, settings, target=ZarrWriter(f"file://{tmp_path}/big", big.chunks))


_LAYOUTS = [dict(zarr_format=3, compressors=None), dict(zarr_format=2, compressors=None),
            dict(zarr_format=3), dict(zarr_format=2)]


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(0, 9), min_size=1, max_size=3), data=st.data())
def test_a_block_read_straight_from_its_chunk_equals_zarrs_read(tmp_path_factory, shape, data):
    """KZarrRead's raw-chunk path (a block that is one uncompressed chunk) against zarr's own read, on
    ragged edges, never-written chunks, big-endian and 1-byte types, v2 and v3, compressed (zarr's path)."""
    shape = tuple(shape)
    grid = tuple(data.draw(st.integers(1, max(1, n)), label="zarr chunk") for n in shape)
    layout = data.draw(st.sampled_from(_LAYOUTS), label="layout")
    dtype = np.dtype(data.draw(st.sampled_from(["<f8", ">f8", ">i4", "u1"]), label="dtype"))
    path = tmp_path_factory.mktemp("z")
    # 255 is never a value below, so zarr leaves no written chunk out as "empty"
    z = zarr.create_array(str(path), shape=shape, chunks=grid, dtype=dtype, fill_value=255, **layout)
    want = (np.arange(int(np.prod(shape))) % 251).astype(dtype).reshape(shape)
    partly = bool(want.size) and data.draw(st.booleans(), label="leave the last chunks unwritten")
    if partly:
        z[tuple(slice(0, max(0, n - g)) for n, g in zip(shape, grid))] = want[tuple(slice(0, max(0, n - g))
                                                                                for n, g in zip(shape, grid))]
    else:
        z[...] = want
    ref = z[...]
    blocks = tuple(data.draw(st.sampled_from([g, max(1, g - 1), g + 1]), label="block") for g in grid)
    chunks = tuple(tuple(min(b, n - o) for o in range(0, n, b)) or (0,) for b, n in zip(blocks, shape))
    kernel = KZarrRead(f"file://{path}", chunks, dtype.newbyteorder("="))
    raw = 0
    for idx in itertools.product(*(range(len(c)) for c in chunks)):
        region = tuple(slice(sum(c[:i]), sum(c[:i + 1])) for c, i in zip(chunks, idx))
        got = kernel.compute(None, idx)
        assert got.dtype == dtype.newbyteorder("=") and got.dtype.isnative
        np.testing.assert_array_equal(got, ref[region])
        raw += _whole_raw_chunk(zarr.open_array(str(path), mode="r"), f"file://{path}", region) is not None
    if layout.get("compressors", ...) is not None:
        assert raw == 0      # compressed: zarr decodes
    elif blocks == grid and not partly and want.size:
        assert raw == len(list(itertools.product(*(range(len(c)) for c in chunks))))   # every block is a chunk
