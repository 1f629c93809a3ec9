"""Partition codec: partitions travel between stateless tasks as Arrow IPC bytes.

A partition is one of

* a Python ``list`` of records (any picklable objects),
* a ``numpy.ndarray`` (an array block),
* a ``pyarrow.Table``.

``encode(part)`` turns it into one Arrow IPC *stream* (schema, record
batches, end-of-stream marker) and ``decode(data)`` turns such bytes back
into a partition equal to the original, with exact Python types. The
layout is named in the schema metadata under ``graphwren.layout``:

``typed``
    A list whose records are all primitives of one exact type (``int``
    within int64, ``float``, ``str``, ``bytes``, ``bool``), or all tuples of
    one length whose positions each hold one exact primitive type. One
    typed Arrow column per position; ``None`` is stored as a null (that is
    exact: a null only ever decodes to ``None``). ``graphwren.shape`` is
    ``"scalar"`` (one column, records are the values) or ``"tuple"``.
    Decoding is ``Array.to_pylist()`` per column plus ``zip``.
``pickle``
    Anything else: one ``large_binary`` column, each value a plain
    ``pickle`` (protocol 5) of a slice of up to ``PICKLE_CHUNK`` records.
    A slice plain pickle refuses (lambdas, closures, local classes) is
    pickled with cloudpickle instead; ``pickle.loads`` reads both.
``ndarray``
    The array's memory as one flat fixed-width column (native Arrow type
    for native-endian integers and floats, ``uint8`` for bool,
    ``fixed_size_binary(itemsize)`` otherwise, e.g. complex, datetime,
    fixed-width strings) plus ``graphwren.dtype`` / ``graphwren.shape`` /
    ``graphwren.order`` metadata. C- and F-contiguous arrays are written
    straight from their memory (F order is kept); other views are copied
    to C order first.

    **Decoding is zero-copy**: the returned array is a view into the
    buffer passed to ``decode`` (it keeps that buffer alive). When that
    buffer is immutable (``bytes``, a read-only memoryview) the array is
    **read-only**; call ``.copy()`` before writing to it.
``ndarray-pickle``
    Arrays the column layout cannot hold exactly (object or structured
    dtypes, ``ndarray`` subclasses such as ``np.matrix`` or masked
    arrays): the whole array as one pickle.
``table``
    A ``pyarrow.Table`` as is; its own schema metadata is kept and the
    graphwren keys are removed again on decode.

``encode_buckets(parts)`` writes R partitions into one object and returns
the byte offsets of each, so a reducer fetches bucket r with one ranged
read and ``decode``\\ s it alone (the shuffle layout: one object per map
task). Each bucket is padded to a multiple of ``BUCKET_ALIGN`` bytes
(zeros after the end-of-stream marker, which readers never look at) so
array buffers stay aligned inside the shared object.
"""
from __future__ import annotations

import gc
import json
import pickle
import sys
from operator import itemgetter

import numpy as np
import pyarrow as pa

__all__ = ["encode", "decode", "encode_buckets", "nbytes_estimate"]

PICKLE_PROTOCOL = 5
PICKLE_CHUNK = 1000  # records per pickled value in the `pickle` layout
BUCKET_ALIGN = 64  # bucket start offsets in encode_buckets are multiples of this
_CHECK_BLOCK = 65536  # records per type-check block when detecting the typed layout

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_K_LAYOUT = b"graphwren.layout"
_K_SHAPE = b"graphwren.shape"
_K_DTYPE = b"graphwren.dtype"
_K_ORDER = b"graphwren.order"
_OUR_KEYS = (_K_LAYOUT, _K_SHAPE, _K_DTYPE, _K_ORDER)

# exact Python type -> Arrow type of its typed column
_PRIMITIVES = {
    int: pa.int64(),
    float: pa.float64(),
    str: pa.large_string(),
    bytes: pa.large_binary(),
    bool: pa.bool_(),
}
_NoneType = type(None)


# ----------------------------------------------------------------------------- API


def encode(part) -> bytes:
    """Encode a partition (list of records, ndarray or pyarrow.Table) as Arrow IPC bytes."""
    sink = pa.BufferOutputStream()
    _write(part, sink)
    return sink.getvalue().to_pybytes()


def decode(data):
    """Decode bytes (or a memoryview / any buffer) made by `encode` back into a partition.

    ndarrays come back as zero-copy views into ``data`` (read-only when ``data``
    is immutable, e.g. ``bytes``).
    """
    buf = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
    reader = pa.ipc.open_stream(buf)
    meta = reader.schema.metadata or {}
    layout = meta.get(_K_LAYOUT)
    if layout == b"typed":
        with _gc_paused():
            return _decode_typed(reader, meta)
    if layout == b"pickle":
        with _gc_paused():
            return _decode_pickle(reader)
    if layout == b"ndarray":
        return _decode_ndarray(reader, meta)
    if layout == b"ndarray-pickle":
        return _decode_pickle_single(reader)
    if layout == b"table":
        table = reader.read_all()
        rest = {k: v for k, v in (table.schema.metadata or {}).items() if k not in _OUR_KEYS}
        return table.replace_schema_metadata(rest or None)
    raise ValueError(
        f"not a graphwren partition (schema metadata has layout {layout!r}); "
        "was it written by graphwren.runtime.codec.encode?"
    )


def encode_buckets(parts: list) -> tuple[bytes, list[int]]:
    """Encode R partitions into one object; bucket r is ``data[offsets[r]:offsets[r+1]]``.

    Returns ``(data, offsets)`` with ``len(offsets) == R + 1``. Every bucket
    is a complete encoding that `decode` reads on its own.
    """
    sink = pa.BufferOutputStream()
    offsets = [0]
    for part in parts:
        _write(part, sink)
        pad = -sink.tell() % BUCKET_ALIGN
        if pad:
            sink.write(b"\0" * pad)
        offsets.append(sink.tell())
    return sink.getvalue().to_pybytes(), offsets


def nbytes_estimate(part) -> int:
    """A cheap estimate of a partition's encoded size in bytes (for explain and planning)."""
    if isinstance(part, np.ndarray):
        return int(part.nbytes)
    if isinstance(part, pa.Table):
        return int(part.nbytes)
    if isinstance(part, list):
        n = len(part)
        if n == 0:
            return 0
        step = max(1, n // 32)
        sample = part[::step][:32]
        try:
            per = len(pickle.dumps(sample, protocol=PICKLE_PROTOCOL)) / len(sample)
        except Exception:
            per = sum(sys.getsizeof(x) for x in sample) / len(sample)
        return int(per * n)
    raise TypeError(_bad_type(part))


# ----------------------------------------------------------------------------- writing


def _write(part, sink) -> None:
    if isinstance(part, list):
        table = _typed_table(part)
        if table is None:
            table = _pickle_table(part)
    elif isinstance(part, np.ndarray):
        table = _ndarray_table(part)
    elif isinstance(part, pa.Table):
        meta = dict(part.schema.metadata or {})
        meta[_K_LAYOUT] = b"table"
        table = part.replace_schema_metadata(meta)
    else:
        raise TypeError(_bad_type(part))
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


def _bad_type(part) -> str:
    return (
        "a partition must be a list of records, a numpy.ndarray or a pyarrow.Table, "
        f"not {type(part).__module__}.{type(part).__qualname__}"
    )


def _column_type(values):
    """The Arrow type for a list of values of one exact primitive type (None = null), or None."""
    kinds = set()
    for i in range(0, len(values), _CHECK_BLOCK):
        kinds.update(map(type, values[i : i + _CHECK_BLOCK]))
        kinds.discard(_NoneType)
        if len(kinds) > 1:
            return None
    if not kinds:
        return pa.null()
    (kind,) = kinds
    return _PRIMITIVES.get(kind)


def _to_array(values, atype):
    """pa.array, or None if the values cannot be held exactly (int64 overflow, lone surrogates)."""
    try:
        return pa.array(values, type=atype, from_pandas=False)
    except (OverflowError, UnicodeError, pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _typed_table(records: list):
    """The `typed` layout for records, or None when it does not apply (then: pickle)."""
    if not records:
        return None
    first = type(records[0])
    if first is tuple:
        width = len(records[0])
        if width == 0:
            return None
        for i in range(0, len(records), _CHECK_BLOCK):
            block = records[i : i + _CHECK_BLOCK]
            if set(map(type, block)) != {tuple} or set(map(len, block)) != {width}:
                return None
        arrays = []
        for j in range(width):
            column = list(map(itemgetter(j), records))
            atype = _column_type(column)
            if atype is None:
                return None
            array = _to_array(column, atype)
            if array is None:
                return None
            arrays.append(array)
        shape = b"tuple"
    elif first in _PRIMITIVES or first is _NoneType:
        atype = _column_type(records)
        if atype is None:
            return None
        array = _to_array(records, atype)
        if array is None:
            return None
        arrays = [array]
        shape = b"scalar"
    else:
        return None
    names = [f"f{j}" for j in range(len(arrays))]
    schema = pa.schema(
        [pa.field(n, a.type) for n, a in zip(names, arrays)],
        metadata={_K_LAYOUT: b"typed", _K_SHAPE: shape},
    )
    return pa.Table.from_arrays(arrays, schema=schema)


def _dumps(obj) -> bytes:
    try:
        return pickle.dumps(obj, protocol=PICKLE_PROTOCOL)
    except Exception:
        # lambdas, closures, local classes, ...: plain pickle refuses them by reference
        import cloudpickle

        return cloudpickle.dumps(obj, protocol=PICKLE_PROTOCOL)


def _pickle_table(records: list):
    chunks = [_dumps(records[i : i + PICKLE_CHUNK]) for i in range(0, len(records), PICKLE_CHUNK)]
    schema = pa.schema([pa.field("pickles", pa.large_binary())], metadata={_K_LAYOUT: b"pickle"})
    return pa.Table.from_arrays([pa.array(chunks, type=pa.large_binary())], schema=schema)


def _arrow_type_for(dtype: np.dtype):
    """Arrow type of the flat column holding an array of this dtype, or None (then: pickle)."""
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        return None
    if dtype.itemsize == 0:
        return None
    if dtype.kind == "b":
        return pa.uint8()
    if dtype.kind in "iuf" and dtype.isnative:
        try:
            return pa.from_numpy_dtype(dtype)
        except (pa.ArrowNotImplementedError, TypeError):
            pass
    return pa.binary(dtype.itemsize)  # fixed_size_binary: complex, datetime, 'S'/'U', big-endian


def _ndarray_table(arr: np.ndarray):
    atype = _arrow_type_for(arr.dtype) if type(arr) is np.ndarray else None
    if atype is None:
        schema = pa.schema([pa.field("pickle", pa.large_binary())], metadata={_K_LAYOUT: b"ndarray-pickle"})
        return pa.Table.from_arrays([pa.array([_dumps(arr)], type=pa.large_binary())], schema=schema)
    if arr.flags.c_contiguous:
        order = "C"
    elif arr.flags.f_contiguous:
        order = "F"
    else:
        arr = np.ascontiguousarray(arr)
        order = "C"
    flat = arr.ravel(order="K")  # a view for contiguous arrays: memory order, no copy
    data = pa.py_buffer(flat.view(np.uint8)) if arr.size else pa.py_buffer(b"")
    column = pa.Array.from_buffers(atype, arr.size, [None, data])
    schema = pa.schema(
        [pa.field("data", atype)],
        metadata={
            _K_LAYOUT: b"ndarray",
            _K_DTYPE: arr.dtype.str.encode(),
            _K_SHAPE: json.dumps(list(arr.shape)).encode(),
            _K_ORDER: order.encode(),
        },
    )
    return pa.Table.from_arrays([column], schema=schema)


# ----------------------------------------------------------------------------- reading


class _gc_paused:
    """Pause the cyclic GC while a decode allocates millions of containers.

    Building 1M tuples or dicts otherwise triggers dozens of full-heap
    collections that find nothing (decode of 1M dicts: ~1.5 s -> ~0.35 s).
    Only re-enables the GC if it was enabled on entry.
    """

    def __enter__(self):
        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        if self.was_enabled:
            gc.enable()
        return False


def _decode_typed(reader, meta) -> list:
    shape = meta.get(_K_SHAPE)
    out: list = []
    for batch in reader:
        columns = [column.to_pylist() for column in batch.columns]
        if shape == b"scalar":
            out.extend(columns[0])
        else:
            out.extend(zip(*columns))
    return out


def _decode_pickle(reader) -> list:
    out: list = []
    loads = pickle.loads
    for batch in reader:
        column = batch.column(0)
        if len(column) == 0:
            continue
        _, offsets_buf, data_buf = column.buffers()
        offsets = np.frombuffer(offsets_buf, dtype=np.int64, count=len(column) + 1, offset=column.offset * 8)
        view = memoryview(data_buf)
        bounds = offsets.tolist()
        for start, end in zip(bounds, bounds[1:]):
            out.extend(loads(view[start:end]))
    return out


def _decode_pickle_single(reader):
    table = reader.read_all()
    return pickle.loads(table.column(0)[0].as_py())


def _decode_ndarray(reader, meta) -> np.ndarray:
    dtype = np.dtype(meta[_K_DTYPE].decode())
    shape = tuple(json.loads(meta[_K_SHAPE]))
    order = meta[_K_ORDER].decode()
    size = 1
    for d in shape:
        size *= d
    if size == 0:
        return np.empty(shape, dtype=dtype, order=order)
    table = reader.read_all()
    column = table.column(0)
    if column.num_chunks != 1:
        raise ValueError(f"ndarray partition has {column.num_chunks} chunks, expected 1")
    chunk = column.chunk(0)
    data = chunk.buffers()[1]
    flat = np.frombuffer(data, dtype=dtype, count=size, offset=chunk.offset * dtype.itemsize)
    return flat.reshape(shape, order=order)
