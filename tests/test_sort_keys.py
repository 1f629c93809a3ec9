"""The columnar sort's key encodings order exactly as Python orders the values."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphwren.tasks.sort import numpy_keys, quantile_picks


def _numpy_order(values, atype, reverse):
    keys = numpy_keys(pa.array(values, atype), reverse)
    return None if keys is None else np.argsort(keys, kind="stable").tolist()


def _python_order(values, reverse):
    return sorted(range(len(values)), key=values.__getitem__, reverse=reverse)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=6), max_size=40), st.booleans())
def test_bytes_keys_order_like_python(values, reverse):
    order = _numpy_order(values, pa.binary(), reverse)
    if order is None:  # padding would be unsafe: a value ends in a zero byte
        assert any(v.endswith(b"\0") for v in values) and len({len(v) for v in values}) > 1
    else:
        assert order == _python_order(values, reverse)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=5), max_size=40), st.booleans())
def test_text_keys_order_like_python(values, reverse):
    order = _numpy_order(values, pa.large_string(), reverse)
    if order is not None:
        assert order == _python_order(values, reverse)
    else:
        assert any(v.endswith("\0") for v in values)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-2**63, 2**63 - 1), max_size=40), st.booleans())
def test_int_keys_order_like_python(values, reverse):
    assert _numpy_order(values, pa.int64(), reverse) == _python_order(values, reverse)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(allow_nan=False), max_size=40), st.booleans())
def test_float_keys_order_like_python(values, reverse):
    assert _numpy_order(values, pa.float64(), reverse) == _python_order(values, reverse)


def test_equal_length_bytes_need_no_copy_and_nan_falls_back_to_arrow():
    values = [b"ab\0", b"ab\1", b"\0\0\0"]
    array = pa.array(values, pa.binary())
    keys = numpy_keys(array, False)
    assert keys.dtype == np.dtype("S3") and np.argsort(keys, kind="stable").tolist() == [2, 0, 1]
    assert numpy_keys(array.slice(1), False).tobytes() == b"ab\1\0\0\0"  # a sliced array
    assert numpy_keys(pa.array([1.0, float("nan")]), False) is None
    assert numpy_keys(pa.array([1, 2], pa.timestamp("s")), False) is None


@pytest.mark.parametrize("weights,n_out,expected", [
    ([1.0] * 10, 5, [2, 4, 6, 8]),
    ([], 4, []),
    ([1.0] * 10, 1, []),
    ([100.0, 1.0, 1.0], 3, [0, 0]),  # one heavy sample: repeated picks leave empty partitions, never wrong ones
])
def test_quantile_picks(weights, n_out, expected):
    assert quantile_picks(np.array(weights), n_out).tolist() == expected
