"""store()/load() against real stores: a directory, moto's S3 server and redis-server."""
from __future__ import annotations

import json

import numpy as np
import pytest

from graphwren.collections import array as ga
from graphwren.collections.array import ArrayError
from graphwren.runtime import codec
from graphwren.runtime.storage import open_store


def _target(store_url: str, name: str) -> str:
    if store_url.startswith("redis"):
        return f"{store_url}?prefix={name}"
    return f"{store_url}/{name}"


def test_store_and_load_roundtrip(store_url):
    x = np.random.default_rng(0).random((9, 7))
    A = ga.from_numpy(x, chunks=(4, 3))
    url = _target(store_url, "A")
    header = (A * 2).store(url, storage=store_url)
    assert header["shape"] == [9, 7] and header["chunks"] == [[4, 4, 1], [3, 3, 1]]
    store = open_store(url)
    assert json.loads(store.get("_array.json"))["dtype"] == "<f8"
    block = codec.decode(store.get("block/2.1"))           # one Arrow object per block
    np.testing.assert_array_equal(block, x[8:9, 3:6] * 2)
    D = ga.load(url)
    assert D.chunks == A.chunks and D.dtype == A.dtype
    np.testing.assert_allclose((D + 1).compute(storage=store_url), x * 2 + 1)
    np.testing.assert_allclose((D @ D.T).compute(), (x * 2) @ (x * 2).T)


def test_store_matmul_result_stays_in_storage(tmp_path):
    url = f"file://{tmp_path}/C"
    A = ga.random((12, 12), chunks=4, seed=1)
    (A @ A).store(url)
    a = A.compute()
    np.testing.assert_allclose(ga.load(url).compute(), a @ a)
    assert "load(" in ga.load(url).sum().explain()
    with pytest.raises(ArrayError, match="reads its own target"):
        (ga.load(url) + 1).store(url)


def test_store_int64_and_1d(tmp_path):
    url = f"file://{tmp_path}/v"
    ga.arange(10, chunks=3, dtype=np.int64).store(url)
    got = ga.load(url).compute()
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.arange(10))


def test_load_errors(tmp_path):
    with pytest.raises(ArrayError, match="no graphwren array there"):
        ga.load(f"file://{tmp_path}/nothing")
    url = f"file://{tmp_path}/B"
    ga.ones((4, 4), chunks=2).store(url)
    open_store(url).delete("block/1.0")
    with pytest.raises(ArrayError, match=r"block \(1, 0\) \(block/1.0\) of the array is missing"):
        ga.load(url)
