"""Partitions as Arrow tables: the columnar side of bags.

A source that already holds columns (parquet files, ``from_arrow``) can hand
its partitions on as ``pyarrow.Table``\\ s instead of Python records. Stages
that understand tables (the columnar sort, ``to_parquet``) take them as is;
any other op first turns the table into records with ``TableToRecords``, in
the format the user asked for (dicts or tuples).
"""
from __future__ import annotations

import io

from ..errors import FieldError
from ..runtime.storage import open_store
from ..runtime.storage.paths import display

#: Arrow types whose order Arrow's sort kernels define the way Python orders their values.
_SORTABLE = ("is_integer", "is_floating", "is_string", "is_large_string", "is_binary", "is_large_binary",
             "is_fixed_size_binary", "is_boolean", "is_timestamp", "is_date", "is_time", "is_duration",
             "is_decimal")


def sortable(atype) -> bool:
    import pyarrow.types as pt
    return any(getattr(pt, check)(atype) for check in _SORTABLE)


class StoreFile(io.RawIOBase):
    """A read-only seekable file over a stored object, read with ranged GETs.

    Lets pyarrow read a parquet footer and only the column chunks it needs
    from S3 or Redis, instead of fetching the whole object.
    """

    def __init__(self, store, key: str):
        self.store, self.key = store, key
        self.length = store.size(key)
        self.pos = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.length}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer):
        n = min(len(buffer), self.length - self.pos)
        if n <= 0:
            return 0
        data = self.store.get(self.key, self.pos, self.pos + n)
        buffer[:len(data)] = data
        self.pos += len(data)
        return len(data)


def open_parquet(store_url: str, key: str):
    """A source pyarrow.parquet reads: a local path, or ranged reads of a stored object."""
    if store_url.startswith("file://"):
        return "/" + key.lstrip("/")
    return StoreFile(open_store(store_url), key)


def parquet_metadata(store_url: str, key: str):
    import pyarrow.parquet as pq
    return pq.read_metadata(open_parquet(store_url, key))


def common_schema(schemas: list, columns=None):
    """The schema all partitions share (names and types), or None if they differ."""
    if columns is not None:
        schemas = [s.__class__([s.field(c) for c in columns if c in s.names]) for s in schemas]
    first = schemas[0]
    if any(s.names != first.names or s.types != first.types for s in schemas[1:]):
        return None
    return first


# -- readers: a partition as one table ------------------------------------------------
class ReadParquetTable:
    """File i as one pyarrow Table (only ``columns``, when given)."""

    def __init__(self, files: list[tuple[str, str]], columns=None):
        self.files, self.columns = files, list(columns) if columns else None

    def project(self, columns: list[str]) -> "ReadParquetTable":
        """The same files, reading only ``columns`` (the column chunks, not the whole file)."""
        return ReadParquetTable(self.files, columns)

    def __call__(self, ctx):
        import pyarrow.parquet as pq
        store_url, key = self.files[ctx.task]
        ctx.where = display(store_url, key)
        source = open_parquet(store_url, key)
        if self.columns is None and not isinstance(source, str):
            import pyarrow as pa
            source = pa.BufferReader(open_store(store_url).get(key))  # whole file: one GET
        return pq.read_table(source, columns=self.columns)


class Projected:
    """Any table reader, keeping only some columns (for readers that cannot skip them)."""

    def __init__(self, read, columns: list[str]):
        self.read, self.columns = read, list(columns)

    def __call__(self, ctx):
        return self.read(ctx).select(self.columns)


def project(read, columns: list[str]):
    return read.project(columns) if hasattr(read, "project") else Projected(read, columns)


# -- tables and records ----------------------------------------------------------------
def records_of(table, as_tuples: bool):
    if as_tuples:
        return zip(*(col.to_pylist() for col in table.columns))
    return iter(table.to_pylist())


class TableToRecords:
    """The first op after a table reader: the table's rows as dicts or tuples."""

    def __init__(self, as_tuples: bool):
        self.as_tuples = as_tuples

    def __call__(self, table):
        return records_of(table, self.as_tuples)


def table_of_records(records: list, what: str):
    """A pyarrow Table of dict records (columns by name) or tuple records (f0, f1, ...)."""
    import pyarrow as pa
    if not records:
        return pa.table({})
    first = records[0]
    if isinstance(first, dict):
        bad = next((r for r in records if not isinstance(r, dict)), None)
        rows = records
    elif isinstance(first, tuple):
        bad = next((r for r in records if not isinstance(r, tuple) or len(r) != len(first)), None)
        rows = None
    else:
        bad = first
    if bad is not None:
        raise TypeError(f"{what}: records must be all dicts or all tuples of one length to become "
                        f"a table; got {bad!r} (after {first!r})")
    try:
        if rows is not None:
            return pa.Table.from_pylist(rows)
        return pa.table({f"f{j}": [r[j] for r in records] for j in range(len(first))})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise TypeError(f"{what}: the records do not fit one Arrow schema ({exc}); "
                        f"first record {first!r}") from None


def column_for(key, schema, as_tuples: bool, where: str) -> str:
    """The column a sort key names: a field name for dicts, a position for tuples."""
    names = list(schema.names)
    if as_tuples:
        if not isinstance(key, int) or isinstance(key, bool) or not -len(names) <= key < len(names):
            raise FieldError(f"sort: records of {where} are tuples of {len(names)} fields {names}; "
                             f"key must be a position 0..{len(names) - 1}, got {key!r}")
        return names[key]
    if not isinstance(key, str) or key not in names:
        raise FieldError(f"sort: the records of {where} have no field {key!r}; their fields are {names}")
    return key


# -- sink ---------------------------------------------------------------------------
class WriteParquet:
    """Sink: one parquet file per partition (tables as is, records via table_of_records)."""

    takes_tables = True

    def __init__(self, targets: list[tuple[str, str]], compression):
        self.targets, self.compression = targets, compression

    def __call__(self, ctx, data):
        import pyarrow as pa
        import pyarrow.parquet as pq
        table = data if isinstance(data, pa.Table) else table_of_records(list(data), "to_parquet")
        store_url, key = self.targets[ctx.task]
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression=self.compression)
        open_store(store_url).put(key, sink.getvalue().to_pybytes())
        return [display(store_url, key)]
