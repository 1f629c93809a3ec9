"""Partitions as Arrow tables: the columnar side of bags.

A source that already holds columns (parquet files, ``from_arrow``) can hand
its partitions on as ``pyarrow.Table``\\ s instead of Python records. Stages
that understand tables (the columnar sort, ``to_parquet``) take them as is;
any other op first turns the table into records with ``TableToRecords``, in
the format the user asked for (dicts or tuples).
"""
from __future__ import annotations

import io
import itertools

from ..errors import FieldError, MissingKey
from ..runtime.prefetch import Prefetcher
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

    def __init__(self, store, key: str, length: int | None = None):
        self.store, self.key = store, key
        self.length = store.size(key) if length is None else length  # the listing's size saves a HEAD
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


def open_parquet(store_url: str, key: str, size: int | None = None):
    """A source pyarrow.parquet reads: a local path, or ranged reads of a stored object."""
    if store_url.startswith("file://"):
        return "/" + key.lstrip("/")
    return StoreFile(open_store(store_url), key, size)


def parquet_metadata(store_url: str, key: str, size: int | None = None):
    """One file's footer (pyarrow FileMetaData), read alone: a ranged read of the file's last bytes.

    None for a file of 0 bytes (it holds no rows, as Spark reads it); a
    missing file or one that is not parquet is an error naming it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    if size == 0:
        return None
    try:
        return pq.read_metadata(open_parquet(store_url, key, size))
    except (FileNotFoundError, MissingKey):
        raise FileNotFoundError(f"read_parquet: no such file {display(store_url, key)!r}") from None
    except (pa.ArrowInvalid, OSError) as exc:
        if size is None and "size is 0 bytes" in str(exc):
            return None
        raise ValueError(f"read_parquet: {display(store_url, key)} is not a parquet file ({exc})") from None


#: The most footers planning reads: over this, it samples SAMPLE_FOOTERS and tasks read their own footers.
MAX_PLAN_FOOTERS = 1_000
SAMPLE_FOOTERS = 16
#: Footers read at once from a remote store: each is a request or two of latency, not of bandwidth.
_footer_reader = Prefetcher(16, "gw-footer")


def read_footers(files: list[tuple]) -> list:
    """The footers of ``files`` ((store URL, key, size) as listed), in order, 16 at a time from remote stores."""
    if all(f[0].startswith("file://") for f in files):
        return [parquet_metadata(*f) for f in files]
    return _footer_reader.map(lambda f: parquet_metadata(*f), files)


def _selects(path: str, columns) -> bool:
    return columns is None or any(path == c or path.startswith(c + ".") for c in columns)


def row_group_bytes(footer, columns=None) -> list[int]:
    """Bytes each row group decodes to (its column chunks' uncompressed sizes), of ``columns`` only when given."""
    if footer is None:
        return []
    out = []
    for g in range(footer.num_row_groups):
        rg = footer.row_group(g)
        if columns is None:
            out.append(rg.total_byte_size)
        else:
            out.append(sum(rg.column(j).total_uncompressed_size for j in range(rg.num_columns)
                           if _selects(rg.column(j).path_in_schema, columns)))
    return out


def column_data_bytes(footer) -> int:
    """Bytes of a file that are column data (its column chunks as stored), not footer or magic."""
    if footer is None:
        return 0
    return sum(footer.row_group(g).column(j).total_compressed_size
               for g in range(footer.num_row_groups) for j in range(footer.row_group(g).num_columns))


def row_group_midpoints(footer) -> list[int]:
    """The byte offset of each row group's middle in its file (Spark assigns a row group to the byte range
    holding its middle, so ranges that tile a file read every row group once)."""
    out = []
    for g in range(footer.num_row_groups):
        rg = footer.row_group(g)
        chunks = [rg.column(j) for j in range(rg.num_columns)]
        if not chunks:
            out.append(0)
            continue
        start = min(c.dictionary_page_offset if c.has_dictionary_page else c.data_page_offset for c in chunks)
        out.append(start + sum(c.total_compressed_size for c in chunks) // 2)
    return out


def in_range(midpoints: list[int], start: int, end: int) -> list[int]:
    """The row groups whose middle lies in the byte range [start, end)."""
    return [g for g, mid in enumerate(midpoints) if start <= mid < end]


def common_schema(schemas: list, columns=None):
    """The schema all partitions share (names and types), or None if they differ."""
    schemas = [s for s in schemas if s is not None]
    if not schemas:
        return None
    if columns is not None:
        import pyarrow as pa
        schemas = [pa.schema([s.field(c) for c in columns if c in s.names]) for s in schemas]
    first = schemas[0]
    if any(s.names != first.names or s.types != first.types for s in schemas[1:]):
        return None
    return first


# -- readers: a partition as one table ------------------------------------------------
#: A piece of a parquet split: (store URL, key, file size, kind, lo, hi). kind ROWS: row groups lo..hi-1
#: (hi None: the whole file); kind BYTES: the row groups whose middle lies in bytes [lo, hi) (the task reads
#: the footer: planning left it unread).
ROWS, BYTES = "rows", "bytes"


class ReadParquetSplit:
    """Split i as one pyarrow Table: row-group ranges of the parquet files packed into it (only ``columns``).

    Files whose schemas differ cannot be one table: such a split is a list of
    tables, one per run of equal schemas (records read alike; see TableToRecords).
    """

    def __init__(self, splits: list[list[tuple]], columns=None):
        self.splits, self.columns = splits, list(columns) if columns else None

    def project(self, columns: list[str]) -> "ReadParquetSplit":
        """The same splits, reading only ``columns`` (the column chunks, not the whole file)."""
        return ReadParquetSplit(self.splits, columns)

    def __call__(self, ctx):
        tables = []
        for piece in self.splits[ctx.task]:
            ctx.where = display(piece[0], piece[1])
            table = self.read_piece(piece)
            if table is not None:
                tables.append(table)
        return join_tables(tables)

    def read_piece(self, piece: tuple):
        """One piece as a table, or None for a file of 0 bytes."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        store_url, key, size, kind, lo, hi = piece
        if size == 0:
            return None
        source = open_parquet(store_url, key, size)
        whole = kind == ROWS and lo == 0 and hi is None
        try:
            if whole and self.columns is None and not isinstance(source, str):
                source = pa.BufferReader(open_store(store_url).get(key))  # whole file, every column: one GET
            # pre_buffer: the column chunks of a row-group range are read in coalesced ranged GETs
            # (2 instead of 19 for 3 row groups of 6 columns), not one GET per chunk
            pf = pq.ParquetFile(source, pre_buffer=True)
        except (FileNotFoundError, MissingKey):
            raise FileNotFoundError(f"read_parquet: no such file {display(store_url, key)!r}") from None
        except pa.ArrowInvalid as exc:
            raise ValueError(f"read_parquet: {display(store_url, key)} is not a parquet file ({exc})") from None
        if whole:
            return pf.read(columns=self.columns)
        groups = range(lo, hi) if kind == ROWS else in_range(row_group_midpoints(pf.metadata), lo, hi)
        return pf.read_row_groups(list(groups), columns=self.columns)


def join_tables(tables: list):
    """One table of equal-schema tables (no copy); a list of tables where schemas change (in order)."""
    import pyarrow as pa
    if not tables:
        return pa.table({})
    runs = [[tables[0]]]
    for table in tables[1:]:
        first = runs[-1][0].schema
        if table.schema.names == first.names and table.schema.types == first.types:  # as common_schema
            runs[-1].append(table)
        else:
            runs.append([table])
    # "default" promotion only reconciles what names and types leave open (nullability, metadata)
    joined = [run[0] if len(run) == 1 else pa.concat_tables(run, promote_options="default") for run in runs]
    return joined[0] if len(joined) == 1 else joined


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
    if isinstance(table, list):  # a split over files of different schemas: each run of files as itself
        return itertools.chain.from_iterable(records_of(t, as_tuples) for t in table)
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
        if isinstance(data, list) and data and all(isinstance(t, pa.Table) for t in data):
            data = pa.concat_tables(data, promote_options="permissive")  # a split over files of different schemas
        table = data if isinstance(data, pa.Table) else table_of_records(list(data), "to_parquet")
        store_url, key = self.targets[ctx.task]
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression=self.compression)
        open_store(store_url).put(key, sink.getvalue().to_pybytes())
        return [display(store_url, key)]
