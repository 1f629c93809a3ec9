"""Bag I/O: read_text (local, globs, lists, S3, byte-range blocks, gzip), parquet/arrow, to_textfiles."""
from __future__ import annotations

import gzip
import io

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphwren as gw

db = gw.bag
HYP = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def lines_of(data: bytes, encoding="utf-8") -> list[str]:
    """What dask (and open() in text mode) yields: lines with universal newlines translated to \\n."""
    return io.StringIO(data.decode(encoding), newline=None).readlines()


def s3_put(url: str, data: bytes) -> None:
    bucket, key = url[len("s3://"):].split("/", 1)
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=data)


SAMPLE = b"alpha\nbeta\n\ngamma delta epsilon zeta eta theta\r\niota\nk\n" + b"x" * 100 + b"\nlast line"


# -- read_text, local --------------------------------------------------------------------------
@pytest.mark.parametrize("content", [SAMPLE, SAMPLE + b"\n", b"one long line without newline" * 3, b"\n\n\n",
                                     b"a\r\nb\r\n", b"x"],
                         ids=["no-trailing-nl", "trailing-nl", "one-line", "only-newlines", "crlf", "one-byte"])
def test_read_text_blocks_concatenate_to_the_lines(tmp_path, content):
    path = tmp_path / "f.txt"
    path.write_bytes(content)
    expect = lines_of(content)
    for blocksize in (1, 2, 3, 7, 64, len(content) + 10, None):
        b = db.read_text(str(path), blocksize=blocksize)
        assert b.compute() == expect, blocksize
        if blocksize is not None and blocksize < len(content):
            assert b.npartitions == -(-len(content) // blocksize)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet="ab\n\r é", max_size=60), blocksize=st.integers(1, 20))
def test_read_text_random_blocks(tmp_path, text, blocksize):
    path = tmp_path / "r.txt"
    data = text.encode("utf-8")
    path.write_bytes(data)
    assert db.read_text(str(path), blocksize=blocksize).compute() == lines_of(data)


def test_read_text_globs_lists_empty_files_and_encodings(tmp_path):
    (tmp_path / "a.txt").write_text("1\n2\n")
    (tmp_path / "b.txt").write_text("3\n")
    (tmp_path / "c.txt").write_bytes(b"")
    (tmp_path / "l1.txt").write_bytes("é\nà\n".encode("latin-1"))
    assert db.read_text(str(tmp_path / "*.txt"), encoding="latin-1").compute() == ["1\n", "2\n", "3\n", "é\n", "à\n"]
    assert db.read_text(f"file://{tmp_path}/[ab].txt").compute() == ["1\n", "2\n", "3\n"]
    assert db.read_text([str(tmp_path / "b.txt"), str(tmp_path / "a.txt")]).compute() == ["3\n", "1\n", "2\n"]
    assert db.read_text(str(tmp_path / "c.txt"), blocksize=4).compute() == []
    assert db.read_text(str(tmp_path / "l1.txt"), encoding="latin-1", blocksize=2).compute() == ["é\n", "à\n"]


def test_read_text_gzip(tmp_path):
    raw = b"one\ntwo\r\nthree"
    (tmp_path / "z.txt.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "z.bin").write_bytes(gzip.compress(raw))
    assert db.read_text(str(tmp_path / "z.txt.gz")).compute() == lines_of(raw)
    assert db.read_text(str(tmp_path / "z.txt.gz"), compression="infer", blocksize=2).compute() == lines_of(raw)
    assert db.read_text(str(tmp_path / "z.bin"), compression="gzip").compute() == lines_of(raw)
    b = db.read_text(str(tmp_path / "z.txt.gz"), compression="gzip", blocksize=3)
    assert b.npartitions == 1  # a gzip stream cannot be split
    assert b.compute() == lines_of(raw)
    with pytest.raises(ValueError, match="compression"):
        db.read_text(str(tmp_path / "z.bin"), compression="zip").compute()


def test_read_text_feeds_a_pipeline(tmp_path):
    (tmp_path / "w.txt").write_text("b a\na c a\n")
    counts = db.read_text(str(tmp_path / "w.txt"), blocksize=3).flat_map(str.split).frequencies(sort=True)
    assert counts.compute() == [("a", 3), ("b", 1), ("c", 1)] or counts.compute() == [("a", 3), ("c", 1), ("b", 1)]


# -- read_text, errors ---------------------------------------------------------------------------
def test_missing_files_and_empty_globs(tmp_path):
    with pytest.raises(FileNotFoundError, match="matches no file"):
        db.read_text(str(tmp_path / "*.nothing")).compute()
    with pytest.raises(FileNotFoundError, match="no such file"):
        db.read_text(str(tmp_path / "missing.txt")).compute()
    with pytest.raises(ValueError, match="blocksize"):
        db.read_text(str(tmp_path / "*.x"), blocksize=0).compute()
    with pytest.raises(ValueError, match="empty list"):
        db.read_text([]).compute()


def test_undecodable_bytes_name_the_file_and_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine line\n" * 5 + b"ok \xff\xfe here\n" + b"more\n")
    for blocksize in (None, 16):
        with pytest.raises(ValueError) as info:
            db.read_text(str(path), blocksize=blocksize).compute()
        msg = str(info.value)
        assert "bad.txt" in msg and "byte 53" in msg and "utf-8" in msg
    assert db.read_text(str(path), errors="replace").count().compute() == 7


# -- S3 --------------------------------------------------------------------------------------------
def test_read_text_and_from_s3_with_globs_and_ranged_blocks(s3_url):
    s3_put(f"{s3_url}/in/a.txt", SAMPLE)
    s3_put(f"{s3_url}/in/b.txt", b"b1\r\nb2\n")
    s3_put(f"{s3_url}/in/c.txt.gz", gzip.compress(b"c1\nc2"))
    s3_put(f"{s3_url}/other/d.txt", b"nope\n")
    expect = lines_of(SAMPLE) + ["b1\n", "b2\n"]
    for blocksize in (1, 7, 64, None):
        b = db.read_text(f"{s3_url}/in/*.txt", blocksize=blocksize)
        assert b.compute() == expect, blocksize
    assert db.read_text(f"{s3_url}/in/*.txt", blocksize=7).npartitions == -(-len(SAMPLE) // 7) + 1
    assert db.from_s3(f"{s3_url}/in/c.txt.gz").compute() == ["c1\n", "c2"]
    assert db.from_s3([f"{s3_url}/in/b.txt", f"{s3_url}/other/d.txt"], blocksize=3).compute() == ["b1\n", "b2\n", "nope\n"]
    with pytest.raises(ValueError, match="s3://"):
        db.from_s3("/local/path.txt")


def test_s3_missing_objects(s3_url):
    with pytest.raises(FileNotFoundError, match="matches no file"):
        db.read_text(f"{s3_url}/nothing/*.txt").compute()
    with pytest.raises(FileNotFoundError, match="no such file"):
        db.from_s3(f"{s3_url}/missing.txt").compute()


def test_s3_undecodable_bytes(s3_url):
    s3_put(f"{s3_url}/bad.txt", b"abc\n\x80\n")
    with pytest.raises(ValueError, match=r"bad\.txt.*byte 4"):
        db.from_s3(f"{s3_url}/bad.txt", blocksize=2).compute()


# -- parquet and arrow ------------------------------------------------------------------------------
def test_read_parquet_and_from_arrow(tmp_path):
    t1 = pa.table({"k": ["a", "b"], "v": [1, 2]})
    t2 = pa.table({"k": ["c"], "v": [3]})
    pq.write_table(t1, tmp_path / "p1.parquet")
    pq.write_table(t2, tmp_path / "p2.parquet")
    b = db.read_parquet(str(tmp_path / "*.parquet"))
    assert b.npartitions == 2
    assert b.compute() == [{"k": "a", "v": 1}, {"k": "b", "v": 2}, {"k": "c", "v": 3}]
    assert db.read_parquet(str(tmp_path / "*.parquet"), format="tuple").compute() == [("a", 1), ("b", 2), ("c", 3)]
    assert db.read_parquet(str(tmp_path / "p1.parquet"), columns=["v"]).pluck("v").sum().compute() == 3
    assert db.from_arrow([t1, t2], format="tuple").compute() == [("a", 1), ("b", 2), ("c", 3)]
    assert db.from_arrow(t1).pluck("k").compute() == ["a", "b"]
    with pytest.raises(ValueError):
        db.read_parquet(str(tmp_path / "*.parquet"), format="json")
    with pytest.raises(FileNotFoundError):
        db.read_parquet(str(tmp_path / "*.nope")).compute()


def test_read_parquet_from_s3(s3_url):
    buf = io.BytesIO()
    pq.write_table(pa.table({"x": [1, 2, 3]}), buf)
    s3_put(f"{s3_url}/pq/x.parquet", buf.getvalue())
    assert db.read_parquet(f"{s3_url}/pq/*.parquet").pluck("x").compute() == [1, 2, 3]


# -- to_textfiles ------------------------------------------------------------------------------------
def test_to_textfiles_local_star_directory_and_gzip(tmp_path):
    b = db.from_sequence([f"line {i}" for i in range(10)], npartitions=3)
    out = b.to_textfiles(str(tmp_path / "star" / "part-*.txt"))
    assert len(out) == 3 and all("part-" in p for p in out)
    assert sorted(p.name for p in (tmp_path / "star").iterdir()) == ["part-0.txt", "part-1.txt", "part-2.txt"]
    assert [s.rstrip("\n") for s in db.read_text(str(tmp_path / "star" / "part-*.txt")).compute()] == b.compute()
    b.to_textfiles(str(tmp_path / "dir"))
    assert sorted(p.name for p in (tmp_path / "dir").iterdir()) == ["0.part", "1.part", "2.part"]
    assert [s.rstrip("\n") for s in db.read_text(str(tmp_path / "dir" / "*.part")).compute()] == b.compute()
    b.to_textfiles(str(tmp_path / "gz" / "*.txt.gz"), name_function=lambda i: f"{i:03d}")
    assert gzip.decompress((tmp_path / "gz" / "000.txt.gz").read_bytes()).startswith(b"line 0\n")
    assert [s.rstrip("\n") for s in db.read_text(str(tmp_path / "gz" / "*.txt.gz")).compute()] == b.compute()


def test_to_textfiles_s3_round_trip(s3_url):
    b = db.from_sequence(["a", "b", "c", "d"], npartitions=2).map(str.upper)
    out = b.to_textfiles(f"{s3_url}/out/*.txt")
    assert out == [f"{s3_url}/out/0.txt", f"{s3_url}/out/1.txt"]
    assert db.read_text(f"{s3_url}/out/*.txt").map(str.strip).compute() == ["A", "B", "C", "D"]
