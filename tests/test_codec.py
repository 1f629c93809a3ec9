"""Round-trip tests for graphwren.runtime.codec (Arrow IPC partition codec)."""
from __future__ import annotations

import math
import pickle
from collections import namedtuple

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from graphwren.runtime import codec
from graphwren.runtime.codec import decode, encode, encode_buckets, nbytes_estimate

settings.register_profile("codec", max_examples=60, deadline=None)
settings.load_profile("codec")

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


# ----------------------------------------------------------------------------- helpers


def same(a, b) -> bool:
    """Deep equality with exact types; NaN equals NaN, 0.0 and -0.0 differ."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def layout(data) -> bytes:
    return pa.ipc.open_stream(pa.py_buffer(data)).schema.metadata[b"graphwren.layout"]


def roundtrip(part):
    data = encode(part)
    assert isinstance(data, bytes)
    return decode(data), data


def check_list(records, expect_layout=None):
    out, data = roundtrip(records)
    assert type(out) is list
    assert same(out, records), (records, out)
    if expect_layout is not None:
        assert layout(data) == expect_layout
    return data


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        type(b) is np.ndarray
        and a.dtype == b.dtype
        and a.shape == b.shape
        and a.tobytes(order="C") == b.tobytes(order="C")  # bitwise: NaN payloads too
    )


def buffer_of(data) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


# ----------------------------------------------------------------------------- strategies

surrogates = st.integers(0xD800, 0xDFFF).map(chr)
texts = st.one_of(
    st.text(),
    st.lists(st.one_of(st.characters(), surrogates), max_size=8).map("".join),
)
int64s = st.integers(INT64_MIN, INT64_MAX)
floats = st.floats(allow_nan=True, allow_infinity=True)
primitive_strategies = {
    int: st.integers(),  # unbounded: values beyond int64 must fall back to pickle
    float: floats,
    str: texts,
    bytes: st.binary(),
    bool: st.booleans(),
}
primitives = st.one_of(st.none(), *primitive_strategies.values())
nested = st.recursive(
    primitives,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=5), int64s), inner, max_size=4),
    ),
    max_leaves=12,
)


def typed_ok(kind, values) -> bool:
    """Whether a list of one primitive kind may use the typed layout at all."""
    if kind is int:
        return all(INT64_MIN <= v <= INT64_MAX for v in values if v is not None)
    if kind is str:
        return not any(0xD800 <= ord(c) <= 0xDFFF for v in values if v is not None for c in v)
    return True


# ----------------------------------------------------------------------------- lists: typed layout


@pytest.mark.parametrize("kind", list(primitive_strategies), ids=lambda k: k.__name__)
@given(data=st.data())
def test_list_of_one_primitive_type(kind, data):
    values = data.draw(st.lists(primitive_strategies[kind], min_size=1, max_size=50))
    expect = b"typed" if typed_ok(kind, values) else b"pickle"
    check_list(values, expect)


@pytest.mark.parametrize("kind", list(primitive_strategies), ids=lambda k: k.__name__)
@given(data=st.data())
def test_list_of_one_primitive_type_with_none(kind, data):
    values = data.draw(st.lists(st.one_of(st.none(), primitive_strategies[kind]), min_size=1, max_size=50))
    check_list(values, b"typed" if typed_ok(kind, values) else b"pickle")


@given(st.lists(floats, min_size=1))
def test_floats_nan_inf_signed_zero_are_exact(values):
    values = values + [float("nan"), -0.0, 0.0, float("inf"), -float("inf"), None]
    check_list(values, b"typed")


def test_ints_at_the_int64_edges():
    check_list([INT64_MIN, INT64_MAX, 0, -1], b"typed")
    check_list([INT64_MAX + 1], b"pickle")
    check_list([0, INT64_MIN - 1], b"pickle")
    check_list([1, 2, 3] * 30000 + [2**64], b"pickle")  # mismatch after the first check block


def test_lone_surrogate_goes_to_pickle():
    check_list(["ok", "bad \ud800 here", "é✓𝄞"], b"pickle")
    check_list(["é✓𝄞", "\x00nul"], b"typed")


def test_bool_and_int_are_never_mixed():
    for values in ([1, True], [True, 1], [0, False, 1], [1.0, 1], [b"a", "a"]):
        check_list(values, b"pickle")
    out, _ = roundtrip([True, False, None])
    assert [type(v) for v in out] == [bool, bool, type(None)]
    out, _ = roundtrip([1, 0])
    assert [type(v) for v in out] == [int, int]


def test_all_none_list():
    check_list([None, None, None])


tuple_kinds = st.lists(st.sampled_from(list(primitive_strategies)), min_size=1, max_size=4)


@given(data=st.data())
def test_tuples_of_primitives_with_mixed_per_position_types(data):
    kinds = data.draw(tuple_kinds)
    nullable = data.draw(st.booleans())
    row = st.tuples(
        *[st.one_of(st.none(), primitive_strategies[k]) if nullable else primitive_strategies[k] for k in kinds]
    )
    records = data.draw(st.lists(row, min_size=1, max_size=40))
    columns = list(zip(*records))
    ok = all(typed_ok(k, col) for k, col in zip(kinds, columns))
    check_list(records, b"typed" if ok else b"pickle")


def test_tuple_layout_is_typed_columns():
    records = [("a", 1, 2.5, b"x", True), ("b", None, float("nan"), b"", False)]
    data = check_list(records, b"typed")
    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    assert table.schema.metadata[b"graphwren.shape"] == b"tuple"
    assert [f.type for f in table.schema] == [
        pa.large_string(),
        pa.int64(),
        pa.float64(),
        pa.large_binary(),
        pa.bool_(),
    ]
    assert table.column(1).null_count == 1


def test_tuples_with_inconsistent_position_types_go_to_pickle():
    check_list([(1, "a"), ("a", 1)], b"pickle")
    check_list([(1, True), (1, 2)], b"pickle")
    check_list([(1, (2, 3)), (1, (2, 3))], b"pickle")  # nested tuple is not a primitive
    check_list([(), ()], b"pickle")


@given(st.lists(st.lists(int64s, max_size=4).map(tuple), min_size=1, max_size=30))
def test_tuples_of_different_lengths(records):
    lengths = {len(r) for r in records}
    check_list(records, b"typed" if len(lengths) == 1 and 0 not in lengths else b"pickle")


def test_tuples_stay_tuples_and_lists_stay_lists():
    out, _ = roundtrip([(1, 2), (3, 4)])
    assert all(type(r) is tuple for r in out)
    out, _ = roundtrip([[1, 2], [3, 4]])
    assert all(type(r) is list for r in out)
    out, _ = roundtrip([(1, [2]), [3, (4,)]])
    assert type(out[0]) is tuple and type(out[0][1]) is list
    assert type(out[1]) is list and type(out[1][1]) is tuple


Point = namedtuple("Point", "x y")


class MyInt(int):
    pass


def test_subclasses_of_primitives_and_tuples_keep_their_type():
    check_list([Point(1, 2), Point(3, 4)], b"pickle")
    out, _ = roundtrip([Point(1, 2), Point(3, 4)])
    assert all(type(p) is Point for p in out)
    check_list([MyInt(1), MyInt(2)], b"pickle")
    out, _ = roundtrip([MyInt(1), MyInt(2)])
    assert all(type(v) is MyInt for v in out)


def test_empty_list():
    out, data = roundtrip([])
    assert out == [] and type(out) is list


# ----------------------------------------------------------------------------- lists: pickle layout


@given(st.lists(nested, max_size=40))
def test_arbitrary_nested_records(records):
    check_list(records)


@given(st.lists(st.dictionaries(st.text(max_size=5), primitives, max_size=4), min_size=1, max_size=30))
def test_dicts_use_pickle(records):
    check_list(records, b"pickle")


def test_pickle_chunks_of_about_1000_records():
    records = [{"i": i, "s": str(i)} for i in range(2500)]
    data = check_list(records, b"pickle")
    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    assert table.num_rows == 3  # 1000 + 1000 + 500
    assert [len(pickle.loads(v.as_py())) for v in table.column(0)] == [1000, 1000, 500]


def test_mixed_types_and_ragged():
    records = [1, "a", None, 2.5, b"b", True, (1, "x"), [1, [2, [3]]], {"k": (1,)}, set([1]), frozenset(), []]
    check_list(records, b"pickle")


def make_adder(k):
    return lambda x: x + k


def test_lambdas_and_closures_round_trip_via_cloudpickle():
    base = 10

    def closure(x):
        return x * base

    class Local:
        def __init__(self, v):
            self.v = v

    records = [lambda x: x + 1, closure, make_adder(5), (1, lambda: "hi"), Local(7)] + list(range(5))
    with pytest.raises(Exception):
        pickle.dumps(records[0])  # the fallback really is needed
    out, data = roundtrip(records)
    assert layout(data) == b"pickle"
    assert out[0](1) == 2
    assert out[1](3) == 30
    assert out[2](1) == 6
    assert out[3][0] == 1 and out[3][1]() == "hi"
    assert out[4].v == 7 and type(out[4]).__name__ == "Local"
    assert out[5:] == list(range(5))


# ----------------------------------------------------------------------------- ndarrays

dtypes = st.sampled_from(
    [np.float32, np.float64, np.int64, np.int32, np.bool_, np.complex128, np.uint8, np.int8, np.float16]
).map(np.dtype)
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)


@given(dtypes.flatmap(lambda dt: hnp.arrays(dt, shapes)))
def test_ndarray_round_trip(arr):
    out, data = roundtrip(arr)
    assert same_array(arr, out)
    assert layout(data) == b"ndarray"


@given(dtypes.flatmap(lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=6))))
def test_ndarray_views_fortran_and_transposed(arr):
    for view in (np.asfortranarray(arr), arr.T, arr[::-1], arr[:, ::2], np.swapaxes(arr, 0, 1)[..., :1]):
        out, data = roundtrip(view)
        assert same_array(view, out)
        if view.size:
            assert np.shares_memory(out, buffer_of(data))


def test_fortran_order_is_kept():
    arr = np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4))
    out, _ = roundtrip(arr)
    assert out.flags.f_contiguous and not out.flags.c_contiguous
    assert same_array(arr, out)


@pytest.mark.parametrize(
    "arr",
    [
        np.array(3.5),
        np.array(True),
        np.array(1 + 2j),
        np.zeros((0,)),
        np.zeros((3, 0, 2), dtype=np.int32),
        np.array([np.nan, -0.0, np.inf]),
        np.array(["ab", "c"]),
        np.array([b"ab", b"c"]),
        np.array([1, 2], dtype=">i4"),
        np.array(["2024-01-01", "NaT"], dtype="datetime64[ns]"),
        np.arange(10, dtype=np.uint64),
    ],
    ids=repr,
)
def test_ndarray_edge_cases(arr):
    out, _ = roundtrip(arr)
    assert same_array(arr, out)


def test_ndarray_object_structured_and_subclasses_fall_back_to_pickle():
    for arr in (
        np.array([{"a": 1}, None], dtype=object),
        np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
    ):
        out, data = roundtrip(arr)
        assert layout(data) == b"ndarray-pickle"
        assert out.dtype == arr.dtype and out.tolist() == arr.tolist()
    masked = np.ma.masked_array([1, 2, 3], mask=[0, 1, 0])
    out, _ = roundtrip(masked)
    assert type(out) is np.ma.MaskedArray and out.mask.tolist() == [False, True, False]


def test_ndarray_decode_is_zero_copy_and_read_only():
    arr = np.random.default_rng(0).standard_normal((64, 32))
    data = encode(arr)
    out = decode(data)
    assert np.shares_memory(out, buffer_of(data))
    assert not out.flags.writeable
    with pytest.raises(ValueError):
        out[0, 0] = 1.0
    # from an Arrow buffer: the array's memory lies inside it (no copy)
    buf = pa.py_buffer(data)
    out = decode(buf)
    start = out.__array_interface__["data"][0]
    assert buf.address <= start and start + out.nbytes <= buf.address + buf.size
    # from a memoryview slice (what a ranged read of a shuffle object gives)
    blob, offsets = encode_buckets([[1, 2], arr, []])
    view = memoryview(blob)[offsets[1] : offsets[2]]
    out = decode(view)
    assert same_array(arr, out) and np.shares_memory(out, buffer_of(blob))
    assert out.flags.aligned


def test_ndarray_decode_from_writable_buffer_is_still_a_view():
    arr = np.arange(100, dtype=np.int32)
    raw = bytearray(encode(arr))
    out = decode(memoryview(raw))
    assert np.shares_memory(out, np.frombuffer(raw, dtype=np.uint8))


# ----------------------------------------------------------------------------- pyarrow tables

table_columns = st.lists(
    st.one_of(
        st.lists(st.one_of(st.none(), int64s), min_size=5, max_size=5).map(lambda v: pa.array(v, pa.int64())),
        st.lists(st.one_of(st.none(), st.text()), min_size=5, max_size=5).map(lambda v: pa.array(v, pa.string())),
        st.lists(floats, min_size=5, max_size=5).map(lambda v: pa.array(v, pa.float64())),
        st.lists(st.lists(st.booleans(), max_size=3), min_size=5, max_size=5).map(pa.array),
    ),
    max_size=4,
)


@given(table_columns, st.one_of(st.none(), st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5))))
def test_table_round_trip(columns, metadata):
    table = pa.Table.from_arrays(columns, names=[f"c{i}" for i in range(len(columns))])
    table = table.replace_schema_metadata(metadata)
    out, data = roundtrip(table)
    assert isinstance(out, pa.Table)
    assert layout(data) == b"table"
    assert out.schema.equals(table.schema, check_metadata=True)
    assert out.num_rows == table.num_rows
    assert same(out.to_pylist(), table.to_pylist())  # Table.equals says NaN != NaN


def test_table_with_many_chunks_and_empty_table():
    table = pa.concat_tables([pa.table({"a": [1, 2]}), pa.table({"a": [3]})])
    out, _ = roundtrip(table)
    assert out.equals(table) and out.column("a").to_pylist() == [1, 2, 3]
    empty = pa.table({"a": pa.array([], pa.int64()), "b": pa.array([], pa.string())})
    out, _ = roundtrip(empty)
    assert out.equals(empty) and out.schema == empty.schema


# ----------------------------------------------------------------------------- buckets

parts = st.one_of(
    st.lists(int64s, max_size=10),
    st.lists(st.tuples(st.text(max_size=4), int64s), max_size=10),
    st.lists(nested, max_size=5),
    st.just([]),
    hnp.arrays(dtypes, shapes),
)


@given(st.lists(parts, max_size=8))
def test_encode_buckets(bucket_parts):
    data, offsets = encode_buckets(bucket_parts)
    assert isinstance(data, bytes)
    assert len(offsets) == len(bucket_parts) + 1
    assert offsets[0] == 0 and offsets[-1] == len(data)
    assert all(a <= b for a, b in zip(offsets, offsets[1:]))
    for r, part in enumerate(bucket_parts):
        chunk = data[offsets[r] : offsets[r + 1]]
        for blob in (chunk, memoryview(data)[offsets[r] : offsets[r + 1]]):
            out = decode(blob)
            if isinstance(part, np.ndarray):
                assert same_array(part, out)
            else:
                assert same(out, part)


def test_encode_buckets_with_empty_buckets():
    bucket_parts = [[], [("a", 1)], [], [], np.zeros((0, 4)), [{"x": 1}], []]
    data, offsets = encode_buckets(bucket_parts)
    assert len(offsets) == 8
    decoded = [decode(data[offsets[r] : offsets[r + 1]]) for r in range(7)]
    assert decoded[0] == [] and decoded[2] == [] and decoded[3] == [] and decoded[6] == []
    assert decoded[1] == [("a", 1)] and decoded[5] == [{"x": 1}]
    assert same_array(bucket_parts[4], decoded[4])
    assert all(o % codec.BUCKET_ALIGN == 0 for o in offsets)
    assert encode_buckets([]) == (b"", [0])


def test_bucket_equals_standalone_encoding_plus_padding():
    bucket_parts = [[1, 2, 3], ["a"]]
    data, offsets = encode_buckets(bucket_parts)
    for r, part in enumerate(bucket_parts):
        alone = encode(part)
        chunk = data[offsets[r] : offsets[r + 1]]
        assert chunk[: len(alone)] == alone and set(chunk[len(alone) :]) <= {0}


# ----------------------------------------------------------------------------- errors and estimates


def test_bad_partition_type_is_a_clear_error():
    for bad in ((1, 2), {1: 2}, "abc", 3, np.float64(1.0), pa.array([1])):
        with pytest.raises(TypeError, match="partition must be"):
            encode(bad)


def test_decode_rejects_foreign_bytes():
    with pytest.raises(Exception):
        decode(b"not arrow at all")
    sink = pa.BufferOutputStream()
    plain = pa.table({"a": [1]})
    with pa.ipc.new_stream(sink, plain.schema) as writer:
        writer.write_table(plain)
    with pytest.raises(ValueError, match="not a graphwren partition"):
        decode(sink.getvalue())


def test_decode_restores_gc_state():
    import gc

    assert gc.isenabled()
    decode(encode([{"a": 1}] * 10))
    decode(encode([(1, "a")] * 10))
    assert gc.isenabled()
    gc.disable()
    try:
        decode(encode([{"a": 1}]))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_nbytes_estimate():
    arr = np.zeros((100, 100))
    assert nbytes_estimate(arr) == arr.nbytes
    table = pa.table({"a": list(range(1000))})
    assert nbytes_estimate(table) == table.nbytes
    assert nbytes_estimate([]) == 0
    records = [{"i": i, "s": "x" * 50} for i in range(10_000)]
    estimate = nbytes_estimate(records)
    actual = len(encode(records))
    assert actual / 3 < estimate < actual * 3
    assert nbytes_estimate([lambda: 1] * 10) > 0  # unpicklable sample still estimates
    with pytest.raises(TypeError):
        nbytes_estimate("abc")
