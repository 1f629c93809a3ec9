"""explain() needs no credentials: remote sources are planned from their arguments, compute() lists them."""
from __future__ import annotations

import collections
import math
import os

import boto3
import pyarrow as pa
import pytest

from graphwren import bag as db
from graphwren.logical import offline

NOWHERE = "http://127.0.0.1:1"   # nothing listens on port 1: any S3 request would fail


@pytest.fixture
def no_aws(monkeypatch, tmp_path):
    """A bogus S3 endpoint and no credentials of any kind."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", NOWHERE)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def physical(text: str) -> str:
    return text.split("== Physical plan", 1)[1]


def test_word_count_over_an_s3_glob_explains_with_no_endpoint(no_aws):
    counts = db.read_text("s3://bucket/corpus/*.txt", blocksize=64 * 2**20).flat_map(str.split).frequencies()
    text = physical(counts.explain())
    assert "? tasks" in text and "size unknown" in text and "columnar" in text
    assert "compute() lists s3://bucket/corpus/*.txt" in text


def test_a_parquet_sort_explains_columnar_and_the_redis_choice_with_no_endpoint(no_aws):
    redis = "redis://127.0.0.1:1/0"
    out = db.read_parquet("s3://bucket/sort-input/*.parquet").sort(key="key", npartitions=16)
    text = physical(out.explain(shuffle_redis=redis))
    assert "[columnar: column 'key' only]" in text and "pick 15 range boundaries" in text
    assert "16 tasks  sort by 'key' [columnar]" in text
    assert f"shuffle_redis {redis} if the shuffle projects" in text
    assert "footers" in text  # the note says the columnar path is checked at compute


def test_known_counts_are_still_shown_without_a_listing(no_aws):
    text = physical(db.read_text(["s3://bucket/a.txt", "s3://bucket/b.txt"]).count().explain())
    assert "stage 0: ? tasks  read_text(2 files, size unknown)" in text   # sizes decide the splits
    text = physical(db.read_text(["s3://bucket/a.txt", "s3://bucket/b.txt"], files_per_partition=1)
                    .count().explain())
    assert "stage 0: 2 tasks  read_text(2 files, size unknown)" in text
    text = physical(db.read_parquet(["s3://bucket/a.parquet", "s3://bucket/b.parquet"], format="tuple")
                    .sort(0, npartitions=2).explain())
    assert "? tasks  read_parquet(2 files, size unknown)" in text and "columnar" in text  # row groups decide
    text = physical(db.read_parquet(["s3://bucket/a.parquet", "s3://bucket/b.parquet"], format="tuple",
                                    npartitions=3).sort(0, npartitions=2).explain())
    assert "3 tasks  read_parquet(2 files, size unknown)" in text and "columnar" in text


def test_redis_sources_and_a_tree_reduce_of_unknown_width(no_aws):
    text = physical(db.read_text("redis://127.0.0.1:1/0/logs/*.txt").map(len).sum().explain())
    assert "? tasks" in text and "tree combines if over 16 partitions" in text


def test_the_unknown_count_stays_unknown_through_arithmetic():
    n = offline.UNKNOWN
    for value in (n - 1, n + 1, 3 * n, n // 2, 16 / n, math.ceil(n / 16)):
        assert offline.is_unknown(value) and f"{value}" == "?"
    assert not offline.is_unknown(5)


def test_read_text_lists_an_s3_glob_when_called_and_explain_uses_that_listing(s3_url):
    lines = [f"w{i % 7} w{i % 3}\n" for i in range(300)]
    s3 = boto3.client("s3")
    bucket, prefix = s3_url[len("s3://"):].split("/", 1)
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"{prefix}/in/{i}.txt", Body="".join(lines[i::3]).encode())
    counts = db.read_text(f"{s3_url}/in/*.txt", blocksize=256).flat_map(str.split).frequencies()
    s3.put_object(Bucket=bucket, Key=f"{prefix}/in/3.txt", Body=b"late\n")   # after read_text: not read (dask)
    before = physical(counts.explain())       # read_text listed the files: explain knows, and lists nothing
    assert "? tasks" not in before and "size unknown" not in before
    assert dict(counts.compute()) == collections.Counter(w for line in lines for w in line.split())


def test_a_sort_explained_offline_computes_on_the_columnar_path(s3_url):
    rows = [{"key": (i * 7919) % 1000, "value": i} for i in range(400)]
    db.from_arrow([pa.Table.from_pylist(rows[i:i + 100]) for i in range(0, 400, 100)]).to_parquet(f"{s3_url}/in/")
    out = db.read_parquet(f"{s3_url}/in/*.parquet").sort(key="key", npartitions=3)
    assert "columnar" in out.explain()
    assert out.compute() == sorted(rows, key=lambda r: r["key"])
    assert "[columnar" in out.explain()
