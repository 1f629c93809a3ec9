"""Lazy bags: dask.bag's API, run as stages of stateless tasks over storage.

Every method returns a new lazy ``Bag`` (or ``Item`` for one value); nothing
runs until ``compute()``. Method names, arguments and results follow
dask.bag wherever it has the method, so code ports by changing the import.
"""
from __future__ import annotations

import builtins
import itertools
import math
import operator
import shutil
import subprocess
import warnings
from typing import Callable, Iterable

from .. import config
from .. import planner
from . import delayed as dl
from ..logical import bag as e
from ..logical.delayed import FromDelayed
from ..logical import offline
from ..planner.outputs import Partitions
from ..tasks import aggregates as agg
from ..tasks import bag_ops as t
from ..tasks.tables import WriteParquet
from ..tasks.text_io import WriteText, output_targets

no_default = t.no_default


def _check_npartitions(n, what: str, allow_none: bool = True):
    if n is None and allow_none:
        return None
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{what}: npartitions must be a positive integer, got {n!r}")
    return n


def _check_callable(fn, what: str):
    if not callable(fn):
        raise TypeError(f"{what} needs a function, got {type(fn).__name__} {fn!r}")
    return fn


class Bag:
    """A lazy collection of Python records in partitions."""

    def __init__(self, expr: e.BagExpr):
        self.expr = expr

    # -- narrow ----------------------------------------------------------------
    def _narrow(self, op) -> "Bag":
        return Bag(e.Narrow(self.expr, op))

    def map(self, func: Callable, *args, **kwargs) -> "Bag":
        return self._narrow(t.Map(_check_callable(func, "map"), args, kwargs))

    def starmap(self, func: Callable, *args, **kwargs) -> "Bag":
        return self._narrow(t.Starmap(_check_callable(func, "starmap"), args, kwargs))

    def filter(self, predicate: Callable) -> "Bag":
        return self._narrow(t.Filter(_check_callable(predicate, "filter")))

    def remove(self, predicate: Callable) -> "Bag":
        return self._narrow(t.Remove(_check_callable(predicate, "remove")))

    def flat_map(self, func: Callable) -> "Bag":
        return self._narrow(t.FlatMap(_check_callable(func, "flat_map")))

    def flatten(self) -> "Bag":
        return self._narrow(t.Flatten())

    def map_partitions(self, func: Callable, *args, **kwargs) -> "Bag":
        return self._narrow(t.MapPartitions(_check_callable(func, "map_partitions"), args, kwargs))

    def pluck(self, key, default=no_default) -> "Bag":
        return self._narrow(t.Pluck(key, default))

    # -- wide ------------------------------------------------------------------
    def reduceby(self, key, binop: Callable, initial=no_default, npartitions: int | None = None) -> "Bag":
        """(key, reduced value) pairs, as PySpark's reduceByKey / toolz.reduceby."""
        _check_callable(binop, "reduceby binop")
        n = _check_npartitions(npartitions, "reduceby")
        return Bag(e.ReduceBy(self.expr, key, binop, initial, binop, no_default, n, "reduceby"))

    def foldby(self, key, binop: Callable, initial=no_default, combine: Callable | None = None,
               combine_initial=no_default, split_every=None, npartitions: int | None = None) -> "Bag":
        """dask.bag's foldby: binop folds records per partition, combine merges across."""
        _check_callable(binop, "foldby binop")
        n = _check_npartitions(npartitions, "foldby")
        return Bag(e.ReduceBy(self.expr, key, binop, initial, combine or binop, combine_initial, n, "foldby"))

    def groupby(self, grouper: Callable, npartitions: int | None = None, **_ignored) -> "Bag":
        grouper = grouper if callable(grouper) else operator.itemgetter(grouper)  # a field name, as dask
        return Bag(e.GroupBy(self.expr, grouper, _check_npartitions(npartitions, "groupby")))

    def frequencies(self, split_every=None, sort: bool = False, npartitions: int | None = None) -> "Bag":
        return Bag(e.Frequencies(self.expr, bool(sort), _check_npartitions(npartitions, "frequencies")))

    def distinct(self, key: Callable | None = None, npartitions: int | None = None) -> "Bag":
        if key is not None and not callable(key):
            key = operator.itemgetter(key)  # a field name, as dask
        return Bag(e.Distinct(self.expr, key, _check_npartitions(npartitions, "distinct")))

    def reduction(self, perpartition: Callable, aggregate: Callable, split_every=None,
                  out_type=None, name=None) -> "Item | Bag":
        item = Item(e.Reduction(self.expr, _check_callable(perpartition, "reduction"),
                                _check_callable(aggregate, "reduction"), split_every, name or "reduction"))
        return item if out_type in (None, Item) else Bag(item.expr)

    def count(self) -> "Item":
        return Item(e.Reduction(self.expr, agg.count, sum, None, "count"))

    def sum(self, split_every=None) -> "Item":
        return Item(e.Reduction(self.expr, builtins.sum, builtins.sum, split_every, "sum"))

    def min(self, split_every=None) -> "Item":
        return Item(e.Reduction(self.expr, agg.min_chunk, agg.min_aggregate, split_every, "min"))

    def max(self, split_every=None) -> "Item":
        return Item(e.Reduction(self.expr, agg.max_chunk, agg.max_aggregate, split_every, "max"))

    def mean(self) -> "Item":
        return Item(e.Reduction(self.expr, agg.moments, agg.mean_aggregate, None, "mean"))

    def var(self, ddof: int = 0) -> "Item":
        return Item(e.Reduction(self.expr, agg.moments, agg.VarAggregate(ddof), None, "var"))

    def std(self, ddof: int = 0) -> "Item":
        return Item(e.Reduction(self.expr, agg.moments, agg.VarAggregate(ddof, sqrt=True), None, "std"))

    def all(self) -> "Item":
        return Item(e.Reduction(self.expr, builtins.all, builtins.all, None, "all"))

    def any(self) -> "Item":
        return Item(e.Reduction(self.expr, builtins.any, builtins.any, None, "any"))

    def topk(self, k: int, key=None, split_every=None) -> "Bag":
        if not isinstance(k, int) or k < 0:
            raise ValueError(f"topk: k must be a non-negative integer, got {k!r}")
        return Bag(e.TopK(self.expr, k, key, split_every))

    def sort(self, key=None, reverse: bool = False, npartitions: int | None = None) -> "Bag":
        """Globally ordered records: partition i's keys <= partition i+1's; stable for equal keys.

        ``key`` is None (compare records), a field (a name for dicts, a position
        for tuples) or a function. A field of an Arrow source (read_parquet,
        from_arrow) sorts columnar, with Arrow kernels and no object per record.
        """
        if not (key is None or callable(key) or (isinstance(key, (str, int)) and not isinstance(key, bool))):
            raise TypeError(f"sort: key must be None, a field name, a position or a function, "
                            f"got {type(key).__name__} {key!r}")
        if not isinstance(reverse, bool):
            raise TypeError(f"sort: reverse must be True or False, got {reverse!r}")
        return Bag(e.Sort(self.expr, key, reverse, _check_npartitions(npartitions, "sort")))

    def repartition(self, npartitions: int) -> "Bag":
        return Bag(e.Repartition(self.expr, _check_npartitions(npartitions, "repartition", allow_none=False)))

    def join(self, other, on_self: Callable, on_other: Callable | None = None,
             npartitions: int | None = None) -> "Bag":
        """(other record, self record) for every pair with equal keys, as dask.bag.join."""
        _check_callable(on_self, "join on_self")
        on_other = on_other or on_self
        right = other.expr if isinstance(other, Bag) else tuple(other)
        return Bag(e.Join(self.expr, right, on_self, on_other, _check_npartitions(npartitions, "join")))

    # -- running -----------------------------------------------------------------
    @property
    def npartitions(self) -> int:
        """How many partitions the bag has: for files, as the planner cuts them into splits."""
        return planner.npartitions(self.expr, config.resolve())

    def _run(self, settings: dict, expr=None, sink=None, ntasks=None, keep=None, description="compute"):
        settings = config.resolve(settings)
        planned = planner.plan(expr if expr is not None else self.expr, settings, sink=sink, ntasks=ntasks)
        output = Partitions()
        try:
            job = planner.execute(planned, settings, output, keep=keep, description=description)
        finally:
            if expr is None:   # this bag's own plan ran: explain() shows what adaptivity changed
                self._adapted = planned.adapted
        return output.value(), planned, job, settings

    def compute(self, **settings) -> list:
        """Run the plan; the records of every partition, in partition order."""
        parts, *_ = self._run(settings)
        return list(itertools.chain.from_iterable(parts))

    def __iter__(self):
        return iter(self.compute())

    def take(self, k: int, npartitions: int = 1, compute: bool = True, warn: bool = True, **settings) -> tuple:
        """The first k records, reading only the first ``npartitions`` partitions (-1: all)."""
        if npartitions != -1:
            _check_npartitions(npartitions, "take", allow_none=False)
            if npartitions > self.npartitions:
                raise ValueError(f"only {self.npartitions} partitions, take received {npartitions}")
        parts, *_ = self._run(settings, expr=e.Narrow(self.expr, t.Slice(k)),
                              ntasks=None if npartitions == -1 else npartitions, description="take")
        out = tuple(itertools.islice(itertools.chain.from_iterable(parts), k))
        if warn and len(out) < k:
            warnings.warn(f"Insufficient elements for `take`. {k} elements requested, only {len(out)} "
                          f"elements available. Try passing larger `npartitions` to `take`.")
        return out

    def persist(self, **settings) -> "Bag":
        """Compute once and keep the partitions in storage; the new bag reads them back.

        They stay as a kept job until ``graphwren clean`` removes it; only this
        process can read them (see ``gw.persist``, which persists several at once).
        """
        (expr,), planned = dl.persist_run([self.expr], settings)   # stage names unique to the job: persisted bags meet
        self._adapted = planned.adapted   # explain() shows what adaptivity changed
        return type(self)(expr)

    def to_textfiles(self, path: str, name_function: Callable | None = None, compression="infer",
                     encoding: str = "utf-8", compute: bool = True, **settings) -> list[str]:
        """One file per partition, one line per record (records must be str)."""
        targets = output_targets(path, self.npartitions, name_function)
        parts, *_ = self._run(settings, sink=WriteText(targets, encoding, compression), description="to_textfiles")
        return [p[0] for p in parts]

    def to_parquet(self, path: str, name_function: Callable | None = None, compression: str | None = "snappy",
                   compute: bool = True, **settings) -> list[str]:
        """One parquet file per partition (part.00000.parquet ... in ``path``); their URLs.

        Records must be dicts (columns by name) or tuples (columns f0, f1, ...);
        a columnar bag (read_parquet, from_arrow, a columnar sort) is written as is.
        """
        n = self.npartitions
        width = max(5, len(str(n - 1)))
        name_function = name_function or (lambda i: f"part.{i:0{width}d}")
        if "*" not in path:
            path = path.rstrip("/") + "/*.parquet"
        sink = WriteParquet(output_targets(path, n, name_function), compression)
        parts, *_ = self._run(settings, sink=sink, description="to_parquet")
        return [p[0] for p in parts]

    def explain(self, cost: bool = False, **settings) -> str:
        """What will run, before paying for it: logical, optimized and physical plans; with ``cost``,
        the projected tasks, GB-seconds, requests and dollars per stage on the configured backend."""
        return planner.explain(self.expr, config.resolve(settings), getattr(self, "_adapted", None), cost=cost)

    def to_delayed(self, optimize_graph: bool = True) -> list:
        """One Delayed per partition, each computing to that partition's list (dask's; the graph is
        always optimized)."""
        return dl.bag_partitions(self.expr, self.npartitions)

    def __graphwren_delayed__(self):
        # a bag as an argument of a delayed call (or in delayed(bag)): its records, as one list
        return dl.bag_value(self.expr, item=False)

    def visualize(self, filename: str = "graphwren.png", **settings) -> str:
        """Write the stage graph as an image with graphviz's ``dot`` (or as .dot text)."""
        settings = config.resolve(settings)
        with offline.planning():
            plan = planner.plan(self.expr, config.resolve(settings), explaining=True).plan
        lines = ["digraph stages {", "  rankdir=LR; node [shape=box];"]
        for s in plan.stages:
            lines.append(f'  "{s.name}" [label="{s.label}\\n{s.ntasks} tasks"];')
            lines += [f'  "{edge.source}" -> "{s.name}" [label="{edge.kind}"];' for edge in s.inputs]
        dot = "\n".join(lines + ["}"]) + "\n"
        if filename.endswith(".dot"):
            with open(filename, "w") as f:
                f.write(dot)
            return filename
        if shutil.which("dot") is None:
            raise RuntimeError("visualize needs graphviz's `dot` program (apt-get install graphviz), "
                               "or a filename ending in .dot to write the graph as text")
        fmt = filename.rsplit(".", 1)[-1] if "." in filename else "png"
        subprocess.run(["dot", f"-T{fmt}", "-o", filename], input=dot.encode(), check=True)
        return filename

    def __repr__(self) -> str:
        return f"graphwren.Bag<{self.expr._describe()}>"


class Item(Bag):
    """A lazy single value (count, sum, ...): compute() returns the value itself."""

    def compute(self, **settings):
        parts, *_ = self._run(settings)
        return parts[0][0]

    def to_delayed(self, optimize_graph: bool = True):
        """The value as a Delayed (dask's Item.to_delayed)."""
        return dl.Delayed(dl.bag_value(self.expr, item=True))

    @staticmethod
    def from_delayed(value) -> "Item":
        """An Item whose value is the Delayed's (dask's Item.from_delayed)."""
        return Item(FromDelayed(dl.delayed_nodes(value, "Item.from_delayed")[:1], True))

    def __graphwren_delayed__(self):
        return dl.bag_value(self.expr, item=True)

    def __repr__(self) -> str:
        return f"graphwren.Item<{self.expr._describe()}>"


# -- constructors ----------------------------------------------------------------------
def from_sequence(seq: Iterable, partition_size: int | None = None, npartitions: int | None = None) -> Bag:
    """A bag of the records of ``seq``, shipped to the tasks through storage.

    Without ``npartitions`` or ``partition_size`` (which cut as dask does) the
    planner chooses the count: a few partitions per worker, more if their
    bytes need it, never more than there are records (sizing.sequence_partitions).
    """
    seq = list(seq)
    _check_npartitions(npartitions, "from_sequence")
    if partition_size is not None:
        _check_npartitions(partition_size, "from_sequence partition_size")
        npartitions = max(1, math.ceil(len(seq) / partition_size))
    if npartitions is None:
        return Bag(e.FromSequence(tuple(seq)))
    size = max(1, math.ceil(len(seq) / npartitions))  # as dask: full partitions, the last one shorter
    parts = tuple(tuple(seq[i:i + size]) for i in builtins.range(0, len(seq), size)) or ((),)
    return Bag(e.FromData(parts))


def from_partitions(partitions: Iterable[Iterable]) -> Bag:
    """One partition per given list (dask's from_delayed, for data already split)."""
    parts = tuple(tuple(p) for p in partitions)
    if not parts:
        raise ValueError("from_partitions needs at least one partition")
    return Bag(e.FromData(parts))


def from_delayed(values) -> Bag:
    """A bag with one partition per Delayed value, each computing to a list of records (dask's).

    The calls run in the same job as the bag's own stages, and a bag's
    ``to_delayed()`` partitions may come back this way.
    """
    nodes = dl.delayed_nodes(values, "from_delayed")
    if not nodes:
        raise ValueError("from_delayed needs at least one Delayed value")
    return Bag(FromDelayed(nodes))


def range(n: int, npartitions: int) -> Bag:  # noqa: A001 - dask.bag.range
    """range(n) generated inside the tasks."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"range: n must be a non-negative integer, got {n!r}")
    return Bag(e.Range(n, _check_npartitions(npartitions, "range", allow_none=False)))


def read_text(urlpath, blocksize: int | None = None, compression="infer", encoding: str = "utf-8",
              errors: str = "strict", include_path: bool = False, files_per_partition: int | None = None) -> Bag:
    """Lines (with their newline) of local files or s3:// objects; globs and lists allowed.

    The planner sizes the partitions from the files' sizes: small files are
    packed together, large ones cut into newline-aligned blocks read with
    ranged GETs, so every worker has a few. ``blocksize`` (bytes per block of
    each file, as dask) or ``files_per_partition`` (whole files per
    partition, as dask) choose instead. Nothing is listed until compute().
    """
    if include_path:
        raise NotImplementedError("read_text(include_path=True) is not supported yet")
    if blocksize is not None and (not isinstance(blocksize, int) or isinstance(blocksize, bool) or blocksize < 1):
        raise ValueError(f"read_text: blocksize must be a positive number of bytes, got {blocksize!r}")
    _check_npartitions(files_per_partition, "read_text files_per_partition")
    if blocksize is not None and files_per_partition is not None:
        raise ValueError("read_text: give blocksize= (cut files) or files_per_partition= (pack files), not both")
    return Bag(e.ReadText(urlpath if isinstance(urlpath, str) else tuple(urlpath), blocksize, encoding, errors,
                          compression, files_per_partition))


def from_s3(urlpath, **kwargs) -> Bag:
    """read_text for s3:// URLs (PyWren's name for it)."""
    paths = [urlpath] if isinstance(urlpath, str) else list(urlpath)
    bad = [p for p in paths if not p.startswith("s3://")]
    if bad:
        raise ValueError(f"from_s3 takes s3:// URLs, got {bad[0]!r}; use read_text for other paths")
    return read_text(urlpath, **kwargs)


def read_parquet(urlpath, columns: list[str] | None = None, format: str = "dict",  # noqa: A002
                 npartitions: int | None = None) -> Bag:
    """Records of parquet files: dicts, or tuples with format='tuple'.

    The planner reads the files' footers and packs their row groups into
    splits by size: small files share a split, a file of many row groups
    spreads over several (planner/parquet_splits.py). ``npartitions`` cuts
    the row groups into that many splits of about equal bytes instead.
    """
    if format not in ("dict", "tuple"):
        raise ValueError(f"read_parquet: format must be 'dict' or 'tuple', got {format!r}")
    if isinstance(columns, str):
        raise TypeError(f"read_parquet: columns must be a list of column names, got the string {columns!r}")
    return Bag(e.ReadParquet(urlpath if isinstance(urlpath, str) else tuple(urlpath),
                             tuple(columns) if columns else None, format == "tuple",
                             _check_npartitions(npartitions, "read_parquet")))


def from_arrow(tables, format: str = "dict") -> Bag:  # noqa: A002
    """Records of pyarrow Tables, one partition per table; they stay tables until a record op."""
    if format not in ("dict", "tuple"):
        raise ValueError(f"from_arrow: format must be 'dict' or 'tuple', got {format!r}")
    tables = tuple([tables] if not isinstance(tables, (list, tuple)) else tables)
    if not tables:
        raise ValueError("from_arrow needs at least one table")
    return Bag(e.FromArrow(tables, format == "tuple"))


__all__ = ["Bag", "Item", "from_sequence", "from_partitions", "from_delayed", "range", "read_text", "from_s3",
           "read_parquet", "from_arrow"]

