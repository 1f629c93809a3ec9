"""Logical nodes of a bag plan.

User-level nodes (``ReduceBy``, ``Frequencies``, ``Reduction`` ...) say what
to compute. The rules in ``logical.rules`` rewrite them into the few shapes
the planner lowers: ``Narrow`` ops (fused into stages by the planner),
``Shuffle`` (a hash-shuffle boundary), ``TreeReduce`` (a gather),
``Repartition``, ``HashJoin`` and sources. ``Fused`` only appears in the
view explain() prints (rule ``fuse_narrow``).
"""
from __future__ import annotations

import functools

from ..tasks import bag_ops as t
from . import offline
from .expr import Expr, funcname

no_default = t.no_default


def describe_op(op) -> str:
    """How an op reads in plans and stage labels: ``map(parse)``."""
    name = type(op).__name__
    label = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    fn = getattr(op, "fn", None) or getattr(op, "predicate", None) or getattr(op, "key", None)
    if callable(fn):
        return f"{label}({funcname(fn)})"
    if isinstance(op, t.Pluck):
        return f"pluck({op.key!r})"
    if isinstance(op, (t.TopKRecords, t.Slice)):
        return f"{label}({getattr(op, 'k', getattr(op, 'n', ''))})"
    return label


class BagExpr(Expr):
    """A node whose value is a bag of ``npartitions`` partitions."""

    @property
    def npartitions(self) -> int:
        raise NotImplementedError

    @property
    def projected_bytes(self) -> int | None:
        """About how many bytes this bag holds (what a shuffle of it moves), if known.

        Sources know their size; other nodes pass on their input's, an upper
        bound for the filters and combiners that shrink it.
        """
        frame = self.operands[0] if self.operands else None
        return frame.projected_bytes if isinstance(frame, BagExpr) else None

    #: True for a source whose size explain() left unread (remote files): see logical.offline.
    size_unread = False


# -- sources -------------------------------------------------------------------
class FromData(BagExpr):
    """Partitions the driver holds (from_sequence, from_partitions): shipped via storage."""

    _parameters = ("partitions",)

    @property
    def npartitions(self):
        return len(self.partitions)

    def _describe(self):
        return f"FromData(npartitions={self.npartitions}, records={sum(map(len, self.partitions))})"

    @functools.cached_property
    def projected_bytes(self):
        from ..runtime.codec import nbytes_estimate
        return sum(nbytes_estimate(list(p)) for p in self.partitions)


class FromSequence(BagExpr):
    """Records the driver holds (from_sequence without npartitions): the planner cuts them by size."""

    _parameters = ("items",)

    @property
    def npartitions(self):
        raise NotImplementedError("from_sequence's partitions are cut by the planner: ask planner.npartitions")

    def _describe(self):
        return f"FromSequence(records={len(self.items)})"

    @functools.cached_property
    def projected_bytes(self):
        from ..runtime.codec import nbytes_estimate
        return nbytes_estimate(list(self.items))


class FromArrow(BagExpr):
    """pyarrow Tables the driver holds (from_arrow): partitions stay tables until a record op."""

    _parameters = ("tables", "as_tuples")

    @property
    def npartitions(self):
        return len(self.tables)

    @property
    def projected_bytes(self):
        return sum(t.nbytes for t in self.tables)

    @property
    def schema(self):
        from ..tasks.tables import common_schema
        return common_schema([t.schema for t in self.tables])

    def _describe(self):
        return f"FromArrow(npartitions={self.npartitions}, records={sum(t.num_rows for t in self.tables)})"


class Range(BagExpr):
    """The integers 0..n-1 in ``nparts`` partitions (bag.range)."""

    _parameters = ("n", "nparts")

    @property
    def npartitions(self):
        return self.nparts

    @property
    def projected_bytes(self):
        return 8 * self.n


class ReadText(BagExpr):
    """Lines of text files; the planner cuts them into splits by size (planner/sizing.py).

    ``listing`` is the files as read_text() listed them (dask lists at that
    point too); None when the store could not be reached then, and
    compute() lists. ``store_query`` carries storage_options into the
    remote stores' URLs (an S3 endpoint, timeouts).
    """

    _parameters = ("urlpath", "blocksize", "encoding", "errors", "compression", "files_per_partition",
                   "linedelimiter", "include_path", "store_query", "listing")
    _defaults = {"files_per_partition": None, "linedelimiter": None, "include_path": False, "store_query": "",
                 "listing": None}

    @functools.cached_property
    def files(self) -> list[tuple]:
        """Every file named, listed once: (store URL, key, size, compression)."""
        if self.listing is not None:
            return list(self.listing)
        from ..runtime.storage.paths import expand_sized
        from ..tasks.text_io import infer_compression
        return [(store_url, key, size, infer_compression(key, self.compression))
                for store_url, key, size in expand_sized(self.urlpath, "read_text", self.store_query, order="name")]

    @property
    def unlisted(self) -> bool:
        """True while explain() plans over remote files it has not listed (see logical.offline)."""
        return self.listing is None and "files" not in self.__dict__ and offline.skips(self.urlpath)

    size_unread = unlisted

    @property
    def npartitions(self):
        raise NotImplementedError("read_text's partitions are cut by the planner: ask planner.npartitions")

    @property
    def projected_bytes(self):
        if self.unlisted:
            return None
        return sum(f[2] for f in self.files)


class ReadParquet(BagExpr):
    """Records of parquet files; the planner packs their row groups into splits by size (planner/parquet_splits.py)."""

    _parameters = ("urlpath", "columns", "as_tuples", "nparts")
    _defaults = {"nparts": None}

    @functools.cached_property
    def files(self) -> list[tuple]:
        """Every file named, listed once: (store URL, key, size); a glob's sizes come with its listing."""
        from ..runtime.storage.paths import expand_sized
        return expand_sized(self.urlpath, "read_parquet")

    @property
    def unlisted(self) -> bool:
        """True while explain() plans over remote files it has not listed (see logical.offline)."""
        return "files" not in self.__dict__ and offline.skips(self.urlpath)

    @property
    def size_unread(self) -> bool:
        """True while explain() plans over remote files whose footers it has not read."""
        return "footers" not in self.__dict__ and offline.skips(self.urlpath)

    @property
    def npartitions(self):
        if self.nparts is not None:
            return self.nparts
        raise NotImplementedError("read_parquet's partitions are cut by the planner: ask planner.npartitions")

    @functools.cached_property
    def footers(self) -> list:
        """Every file's parquet metadata (None for a 0-byte file): only the footers are read, in parallel."""
        from ..tasks.tables import read_footers
        return read_footers(self.files)

    @property
    def footers_at_plan(self) -> bool:
        """Whether planning reads every footer: already read, or few enough files (else a sample: see below)."""
        from ..tasks.tables import MAX_PLAN_FOOTERS
        return "footers" in self.__dict__ or len(self.files) <= MAX_PLAN_FOOTERS

    @functools.cached_property
    def listing_model(self) -> tuple[float, int]:
        """(decoded bytes of ``columns`` per byte of column data, bytes per file that are not column data).

        From an evenly spaced sample of footers, for globs too large to read
        every footer at plan time: a file of ``size`` bytes then decodes to
        about ``(size - overhead) * ratio`` (see ``estimated_bytes``). The
        footer and magic are taken out first: in small files they outweigh the data.
        """
        from ..tasks.tables import SAMPLE_FOOTERS, column_data_bytes, read_footers, row_group_bytes
        sized = [f for f in self.files if f[2]]
        step = max(1, len(sized) // SAMPLE_FOOTERS)
        sample = sized[::step][:SAMPLE_FOOTERS]
        footers = read_footers(sample)
        data = sum(map(column_data_bytes, footers))
        decoded = sum(sum(row_group_bytes(m, self.columns)) for m in footers)
        overhead = (sum(f[2] for f in sample) - data) // max(1, len(sample))
        return (decoded / data if data else 1.0), max(0, overhead)

    def estimated_bytes(self, size: int) -> int:
        """About how many bytes a file of ``size`` stored bytes decodes to (listing_model)."""
        ratio, overhead = self.listing_model
        return int(max(0, size - overhead) * ratio)

    @property
    def projected_bytes(self):
        if self.size_unread:
            return None
        if self.footers_at_plan:
            from ..tasks.tables import row_group_bytes
            return sum(sum(row_group_bytes(m, self.columns)) for m in self.footers)
        return sum(self.estimated_bytes(f[2]) for f in self.files)

    @property
    def schema(self):
        """The files' one Arrow schema (of ``columns``), None when files disagree, UNREAD in explain()."""
        return offline.UNREAD if self.size_unread else self._schema

    @functools.cached_property
    def _schema(self):
        from ..tasks.tables import common_schema
        return common_schema([m.schema.to_arrow_schema() if m is not None else None for m in self.footers],
                             self.columns)


class Persisted(BagExpr):
    """Partitions already committed in storage by an earlier compute (persist())."""

    _parameters = ("store", "job", "stage", "nparts")

    @property
    def npartitions(self):
        return self.nparts


# -- narrow ----------------------------------------------------------------------
class Narrow(BagExpr):
    """One record-level op over each partition: partition i in, partition i out."""

    _parameters = ("frame", "op")

    @property
    def npartitions(self):
        return self.frame.npartitions

    def _describe(self):
        return describe_op(self.op)


class Fused(BagExpr):
    """A chain of narrow ops run in one pass (made by the fusion rule)."""

    _parameters = ("frame", "ops")

    @property
    def npartitions(self):
        return self.frame.npartitions

    def _describe(self):
        return "Fused(" + " | ".join(describe_op(op) for op in self.ops) + ")"


# -- what users ask for (rewritten by the optimizer) ----------------------------------
class ReduceBy(BagExpr):
    """reduceby/foldby: records reduced per key (rule combine_reduceby adds the map-side combine)."""

    _parameters = ("frame", "key", "binop", "initial", "combine", "combine_initial", "nparts", "opname")

    @property
    def npartitions(self):
        return self.nparts or self.frame.npartitions


class Frequencies(BagExpr):
    """(value, count) per distinct value, by count if ``sort`` (rule combine_frequencies)."""

    _parameters = ("frame", "sort", "nparts")

    @property
    def npartitions(self):
        return 1 if self.sort else (self.nparts or self.frame.npartitions)


class Distinct(BagExpr):
    """One record per distinct key (rule combine_distinct)."""

    _parameters = ("frame", "key", "nparts")

    @property
    def npartitions(self):
        return self.nparts or self.frame.npartitions


class GroupBy(BagExpr):
    """(key, [records]) per key (rule groupby_to_shuffle)."""

    _parameters = ("frame", "key", "nparts")

    @property
    def npartitions(self):
        return self.nparts or self.frame.npartitions


class Reduction(BagExpr):
    """perpartition on every partition, then aggregate on the list of results: one value."""

    _parameters = ("frame", "perpartition", "aggregate", "split_every", "opname", "as_list")
    _defaults = {"opname": "reduction", "as_list": False}   # as_list: perpartition gets a list (dask's reduction)

    @property
    def npartitions(self):
        return 1

    def _describe(self):
        return f"{self.opname}(perpartition={funcname(self.perpartition)}, aggregate={funcname(self.aggregate)})"


class Sort(BagExpr):
    """Globally ordered by key: partition i's keys are <= partition i+1's; stable."""

    _parameters = ("frame", "key", "reverse", "nparts")

    @property
    def npartitions(self):
        return self.nparts or self.frame.npartitions

    def _describe(self):
        from ..tasks.sort import describe_key
        return (f"Sort(key={describe_key(self.key)}{', reverse' if self.reverse else ''}, "
                f"npartitions={self.nparts or 'as the input'})")


class TopK(BagExpr):
    """The k largest records, by key if given, in one partition (rule topk_to_tree)."""

    _parameters = ("frame", "k", "key", "split_every")

    @property
    def npartitions(self):
        return 1


class Join(BagExpr):
    """``other`` is a bag expression (hash join) or a tuple of records (broadcast)."""

    _parameters = ("frame", "other", "on_self", "on_other", "nparts")

    @property
    def npartitions(self):
        if isinstance(self.other, BagExpr):
            return self.nparts or max(self.frame.npartitions, self.other.npartitions)
        return self.frame.npartitions


# -- physical shapes the lowering knows ---------------------------------------------
class Shuffle(BagExpr):
    """Every record goes to partition portable_hash(key(record)) % nparts.

    ``nparts`` None (the user gave none) keeps the input's partition count; the
    planner resolves it, and under a ``HashJoin`` sizes both sides alike.
    """

    _parameters = ("frame", "key", "nparts", "first", "opname")
    _defaults = {"nparts": None, "first": False, "opname": "shuffle"}

    @property
    def npartitions(self):
        return self.nparts or self.frame.npartitions

    def _describe(self):
        key = "record[0]" if self.first else funcname(self.key)
        # None reads "auto": the planner picks it (the larger side's count under a HashJoin).
        return f"Shuffle(key={key}, npartitions={'auto' if self.nparts is None else self.nparts})"


class TreeReduce(BagExpr):
    """Gather every partition's records into one task (in a tree if many)."""

    _parameters = ("frame", "combine", "split_every")

    @property
    def npartitions(self):
        return 1

    def _describe(self):
        return f"TreeReduce(combine={describe_op(self.combine)}, split_every={self.split_every})"


class Repartition(BagExpr):
    """The same records in ``nparts`` partitions: neighbours concatenated or partitions split."""

    _parameters = ("frame", "nparts")

    @property
    def npartitions(self):
        return self.nparts


class HashJoin(BagExpr):
    """Bucket i of both shuffled sides joined in one task (both sides shuffled into as many buckets)."""

    _parameters = ("left", "right", "on_self", "on_other")

    @property
    def npartitions(self):
        # Shuffles without nparts are sized to the larger side, as the planner does.
        return max(self.left.npartitions, self.right.npartitions)
