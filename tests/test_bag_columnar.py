"""The Arrow fast path for text must give exactly what the Python path gives."""
import collections

import pytest
from hypothesis import given, settings, strategies as st

import graphwren as gw
from graphwren.tasks import bag_ops as t
from graphwren.tasks.columnar import columnar_prefix

TEXTS = [
    "the cat\nthe dog\n",
    "  leading and trailing  \n\n\nblank lines\r\nand CRLF\r\n",
    "tabs\tand\x0bvertical\x0cfeeds",            # ASCII whitespace both sides agree on
    "unit\x1fseparator splits in python\n",     # \x1f: Python splits, Arrow would not -> fallback
    "caf\u00e9 na\u00efve \u2003em-space\n",       # non-ASCII -> fallback
    "",
    "MiXeD Case WORDS words\n",
]


def _write(tmp_path, texts):
    for i, text in enumerate(texts):
        (tmp_path / f"f{i}.txt").write_bytes(text.encode("utf-8"))
    return str(tmp_path / "*.txt")


def _python_lines(texts):
    out = []
    for text in texts:
        out += text.replace("\r\n", "\n").replace("\r", "\n").splitlines(keepends=True)
    return out


@pytest.mark.parametrize("chain", ["split", "lower-split", "split-upper", "split-len", "split-strip"])
def test_columnar_chains_match_python(tmp_path, chain):
    path = _write(tmp_path, TEXTS)
    fns = {"split": [], "lower-split": [("map", str.lower)], "split-upper": [], "split-len": [], "split-strip": []}
    b = gw.bag.read_text(path)
    lines = _python_lines(TEXTS)
    if chain == "lower-split":
        b, lines = b.map(str.lower), [l.lower() for l in lines]
    b = b.flat_map(str.split)
    words = [w for l in lines for w in l.split()]
    after = {"split-upper": str.upper, "split-len": len, "split-strip": str.strip}.get(chain)
    if after is not None:
        b, words = b.map(after), [after(w) for w in words]
    assert "columnar" in b.frequencies().explain()
    assert sorted(b.compute()) == sorted(words)
    assert dict(b.frequencies().compute()) == dict(collections.Counter(words))
    _ = fns


@settings(max_examples=20, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("ab \t\n\r\x0b\x0c\x1cZ\u00e9"), max_size=40), min_size=1, max_size=4),
       st.integers(1, 16))
def test_columnar_frequencies_any_text_any_blocksize(tmp_path_factory, texts, blocksize):
    root = tmp_path_factory.mktemp("col")
    path = _write(root, texts)
    lines = _python_lines(texts)
    expected = collections.Counter(w for l in lines for w in l.split())
    got = gw.bag.read_text(path, blocksize=blocksize).flat_map(str.split).frequencies().compute()
    assert dict(got) == dict(expected)


def test_prefix_recognition_is_conservative():
    assert columnar_prefix([t.FlatMap(str.split), t.CountValues()]) == 2
    assert columnar_prefix([t.Map(str.lower), t.FlatMap(str.split), t.Map(len)]) == 3
    assert columnar_prefix([t.FlatMap(lambda s: s.split())]) == 0          # not the builtin: Python path
    assert columnar_prefix([t.Map(str.lower)]) == 0                         # no split: nothing to gain
    assert columnar_prefix([t.FlatMap(str.split), t.Map(len), t.Map(str.lower)]) == 2
    assert columnar_prefix([t.FlatMap(str.split), t.Map(str.lower, args=(1,))]) == 1


def _universal_lines(texts):
    import io
    return [line for text in texts for line in io.StringIO(text, newline=None)]


@settings(max_examples=20, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("ab A\t\n\r\x0b\x1cZ\u00e9"), max_size=30), min_size=1, max_size=3),
       st.integers(1, 12), st.sampled_from(["strip", "lower-len", "upper"]))
def test_line_frequencies_run_columnar_with_python_results(tmp_path_factory, texts, blocksize, chain):
    root = tmp_path_factory.mktemp("lines")
    path = _write(root, texts)
    fns = {"strip": [str.strip], "lower-len": [str.lower, len], "upper": [str.upper]}[chain]
    b = gw.bag.read_text(path, blocksize=blocksize)
    for fn in fns:
        b = b.str.strip() if fn is str.strip else b.map(fn)
    expected = _universal_lines(texts)
    for fn in fns:
        expected = [fn(x) for x in expected]
    assert "[columnar" in b.frequencies().explain()
    assert dict(b.frequencies().compute()) == dict(collections.Counter(expected))


def test_line_prefix_needs_the_count():
    assert columnar_prefix([t.Map(str.strip), t.CountValues()]) == 2
    assert columnar_prefix([t.Map(str.lower), t.Map(len), t.CountValues()]) == 3
    assert columnar_prefix([t.Map(str.strip)]) == 0                         # lines back as Python strings: no gain
    assert columnar_prefix([t.Map(len), t.Map(str.lower), t.CountValues()]) == 0   # len ends the kernels
