"""Lazy bags: dask.bag's API, run as stages of stateless tasks over storage.

Every method returns a new lazy ``Bag`` (or ``Item`` for one value); nothing
runs until ``compute()``. Method names, arguments and results follow
dask.bag wherever it has the method, so code ports by changing the import.
Where graphwren differs on purpose, the method's docstring says so.
The readers (read_text, read_parquet, read_avro, from_url) live in
``bag_io.py``, the ``.str`` accessor in ``bag_str.py``, results made on
the driver (to_dataframe, to_arrow, lazy writes) in ``bag_lazy.py``.
"""
from __future__ import annotations

import builtins
import itertools
import math
import operator
import shutil
import subprocess
import random as _random
import warnings
from typing import Callable, Iterable

from .. import config
from .. import planner
from . import delayed as dl
from ..logical import bag as e
from ..logical import bag_multi as em
from ..logical.delayed import FromDelayed
from ..logical import offline
from ..planner.outputs import Partitions
from ..tasks import aggregates as agg
from ..tasks import bag_multi as tm
from ..tasks import bag_ops as t
from ..tasks.avro import WriteAvro, fastavro
from ..tasks.tables import WriteParquet
from ..tasks.text_io import WriteText, output_targets
from . import bag_lazy, scheduler
from .io_options import apply_storage_options, parse_bytes
from .bag_str import StringAccessor

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


def _lazy_kind(value) -> str:
    """How an argument of map/map_partitions travels: an Item's (or Delayed's) value, a Bag's partition,
    or a constant."""
    if isinstance(value, (Item, dl.Delayed)):
        return tm.ITEM
    if isinstance(value, Bag):
        return tm.BAG
    return tm.CONST


def _aligned(combine_cls, func, args: tuple, kwargs: dict, what: str) -> "Bag":
    """Bags among ``args``/``kwargs`` aligned partition by partition, Items broadcast (dask's bag.map)."""
    _check_callable(func, what)
    frames: list = []
    items: list = []

    def spec(value):
        kind = _lazy_kind(value)
        if kind == tm.CONST:
            return (kind, value)
        if isinstance(value, dl.Delayed):   # broadcast like an Item, as dask's map does
            value = Item.from_delayed(value)
        pool = frames if kind == tm.BAG else items
        names = [x.name for x in pool]
        if value.expr.name not in names:
            pool.append(value.expr)
            names.append(value.expr.name)
        return (kind, names.index(value.expr.name))

    arg_spec = [spec(a) for a in args]
    kw_spec = {k: spec(v) for k, v in kwargs.items()}
    if not frames:
        raise ValueError(f"{what}: at least one argument must be a Bag")
    return Bag(em.Aligned(tuple(frames), tuple(items), combine_cls(func, arg_spec, kw_spec)))


def _takes_collections(args, kwargs) -> bool:
    return any(isinstance(v, (Bag, dl.Delayed)) for v in (*args, *kwargs.values()))


class Bag:
    """A lazy collection of Python records in partitions."""

    def __init__(self, expr: e.BagExpr):
        self.expr = expr

    # -- narrow ----------------------------------------------------------------
    def _narrow(self, op) -> "Bag":
        return Bag(e.Narrow(self.expr, op))

    def map(self, func: Callable, *args, **kwargs) -> "Bag":
        """func(record, *args, **kwargs) per record. A Bag argument is aligned partition by partition
        (same partition count and lengths, as dask); an Item argument passes its computed value."""
        if _takes_collections(args, kwargs):
            return _aligned(tm.AlignedMap, func, (self, *args), kwargs, "map")
        return self._narrow(t.Map(_check_callable(func, "map"), args, kwargs))

    def starmap(self, func: Callable, *args, **kwargs) -> "Bag":
        """func(*record, **kwargs) per record; an Item keyword passes its value (dask). Unlike dask,
        extra positional ``args`` are accepted and passed after the record's fields."""
        if _takes_collections(args, kwargs):
            return _aligned(tm.AlignedMap, tm.StarCall(_check_callable(func, "starmap"), len(args)),
                            (self, *args), kwargs, "starmap")
        return self._narrow(t.Starmap(_check_callable(func, "starmap"), args, kwargs))

    def filter(self, predicate: Callable) -> "Bag":
        return self._narrow(t.Filter(_check_callable(predicate, "filter")))

    def remove(self, predicate: Callable) -> "Bag":
        return self._narrow(t.Remove(_check_callable(predicate, "remove")))

    def flat_map(self, func: Callable) -> "Bag":
        """Every item of func(record) (not in dask.bag, which writes ``b.map(func).flatten()``)."""
        return self._narrow(t.FlatMap(_check_callable(func, "flat_map")))

    def flatten(self) -> "Bag":
        return self._narrow(t.Flatten())

    def map_partitions(self, func: Callable, *args, **kwargs) -> "Bag":
        """func(partition as a list, *args, **kwargs) per partition; Bag arguments give their
        partition i, Item arguments their value (dask)."""
        if _takes_collections(args, kwargs):
            return _aligned(tm.AlignedPartitions, func, (self, *args), kwargs, "map_partitions")
        return self._narrow(t.MapPartitions(_check_callable(func, "map_partitions"), args, kwargs))

    @property
    def str(self) -> StringAccessor:
        """String methods per record (``b.str.lower()``, ``b.str.match('*x')``), as dask's accessor."""
        return StringAccessor(self)

    def random_sample(self, prob: float, random_state=None) -> "Bag":
        """Each record kept with probability ``prob``; the same ``random_state`` gives dask's sample."""
        if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0 <= prob <= 1:
            raise ValueError(f"random_sample: prob must be a number in the interval [0, 1], got {prob!r}")
        if not isinstance(random_state, _random.Random):
            random_state = _random.Random(random_state)
        # dask's random_state_data_python: one seed from the Random, numpy's generator makes the states
        return self._narrow(tm.RandomSample(float(prob), random_state.randint(0, 1 << 32)))

    def unzip(self, n: int) -> tuple:
        """n bags, the i-th holding field i of every record (records are tuples)."""
        return tuple(self.pluck(i) for i in builtins.range(n))

    def accumulate(self, binop: Callable, initial=no_default) -> "Bag":
        """Running binop over the whole bag in order (itertools.accumulate), partitions kept.

        It is sequential, so one task reads every partition and computes it;
        ``initial`` opens the first partition, as in dask. An empty partition
        passes the running value on (dask would start again from ``[]``).
        """
        return Bag(em.Accumulate(self.expr, _check_callable(binop, "accumulate"), initial))

    def product(self, other: "Bag") -> "Bag":
        """Every (self record, other record) pair; partition i*m + j pairs self's i with other's j (dask)."""
        if not isinstance(other, Bag):
            raise TypeError(f"product needs a Bag, got {type(other).__name__}")
        return Bag(em.Product(self.expr, other.expr))

    def pluck(self, key, default=no_default) -> "Bag":
        return self._narrow(t.Pluck(key, default))

    # -- wide ------------------------------------------------------------------
    def reduceby(self, key, binop: Callable, initial=no_default, npartitions: int | None = None) -> "Bag":
        """(key, reduced value) pairs, as PySpark's reduceByKey / toolz.reduceby.

        Not in dask.bag (its foldby(key, binop) does the same): kept for
        PySpark and toolz code. ``key`` is a function or a field name.
        """
        _check_callable(binop, "reduceby binop")
        n = _check_npartitions(npartitions, "reduceby")
        return Bag(e.ReduceBy(self.expr, key, binop, initial, binop, no_default, n, "reduceby"))

    def foldby(self, key, binop: Callable, initial=no_default, combine: Callable | None = None,
               combine_initial=no_default, split_every=None, npartitions: int | None = None) -> "Bag":
        """dask.bag's foldby: binop folds records per partition, combine merges across.

        ``npartitions=`` (not in dask) sets the reducer count; dask's
        ``split_every`` is accepted and not needed (one hash shuffle).
        """
        _check_callable(binop, "foldby binop")
        n = _check_npartitions(npartitions, "foldby")
        return Bag(e.ReduceBy(self.expr, key, binop, initial, combine or binop, combine_initial, n, "foldby"))

    def groupby(self, grouper: Callable, method=None, npartitions: int | None = None, blocksize=2**20,
                max_branch=None, shuffle=None) -> "Bag":
        """(key, [records]) per key. graphwren always hash-shuffles through storage, so dask's
        ``method``, ``shuffle``, ``max_branch`` and ``blocksize`` are accepted and not used."""
        grouper = grouper if callable(grouper) else operator.itemgetter(grouper)  # a field name, as dask
        return Bag(e.GroupBy(self.expr, grouper, _check_npartitions(npartitions, "groupby")))

    def frequencies(self, split_every=None, sort: bool = False, npartitions: int | None = None) -> "Bag":
        """(value, count) pairs, most frequent first with ``sort=True``; ``npartitions=`` is graphwren's."""
        return Bag(e.Frequencies(self.expr, bool(sort), _check_npartitions(npartitions, "frequencies")))

    def distinct(self, key: Callable | None = None, npartitions: int | None = None) -> "Bag":
        """One record per distinct record (or key, a function or a field name); ``npartitions=`` is graphwren's."""
        if key is not None and not callable(key):
            key = operator.itemgetter(key)  # a field name, as dask
        return Bag(e.Distinct(self.expr, key, _check_npartitions(npartitions, "distinct")))

    def reduction(self, perpartition: Callable, aggregate: Callable, split_every=None,
                  out_type=None, name=None) -> "Item | Bag":
        """perpartition(partition as a list) per partition, aggregate(list of those) over a tree.

        As dask: with ``out_type=Bag`` the aggregate's result (a sequence)
        is the one partition of the returned bag.
        """
        item = Item(e.Reduction(self.expr, _check_callable(perpartition, "reduction"),
                                _check_callable(aggregate, "reduction"), split_every, name or "reduction", True))
        return item if out_type in (None, Item) else Bag(e.Narrow(item.expr, t.Flatten()))

    def fold(self, binop: Callable, combine: Callable | None = None, initial=no_default, split_every=None,
             out_type=None) -> "Item | Bag":
        """reduce(binop) in each partition (from ``initial`` if given), then reduce(combine) across.

        Without ``initial``, empty partitions are skipped (dask's reduce would
        raise on them); a bag with no record at all raises TypeError.
        """
        _check_callable(binop, "fold binop")
        combine = _check_callable(combine or binop, "fold combine")
        red = e.Reduction(self.expr, agg.FoldChunk(binop, initial), agg.FoldAggregate(combine), split_every, "fold")
        out = e.Narrow(red, t.Map(agg.RequireValue("fold() of an empty bag with no initial value", TypeError)))
        return Item(out) if out_type in (None, Item) else Bag(e.Narrow(out, t.Flatten()))

    def count(self, split_every=None) -> "Item":
        return Item(e.Reduction(self.expr, agg.count, sum, split_every, "count"))

    def sum(self, split_every=None) -> "Item":
        return Item(e.Reduction(self.expr, builtins.sum, builtins.sum, split_every, "sum"))

    def min(self, split_every=None) -> "Item":
        return self._required(e.Reduction(self.expr, agg.min_chunk, agg.min_aggregate, split_every, "min"),
                              "min() of an empty bag")

    def max(self, split_every=None) -> "Item":
        return self._required(e.Reduction(self.expr, agg.max_chunk, agg.max_aggregate, split_every, "max"),
                              "max() of an empty bag")

    @staticmethod
    def _required(expr, message: str) -> "Item":
        return Item(e.Narrow(expr, t.Map(agg.RequireValue(message, ValueError))))

    # mean/var/std gather every partition's exact sums in one step (no tree: the sums are small), and
    # round once at the end: the exactly rounded value, where dask's float sums may differ in the last bit.
    def mean(self) -> "Item":
        """The exactly rounded mean (exact sums, one rounding), whatever the partitioning."""
        return Item(e.Reduction(self.expr, agg.moments, agg.mean_aggregate, False, "mean"))

    def var(self, ddof: int = 0) -> "Item":
        """The exactly rounded variance (sum of (x - mean)**2 / (n - ddof)), from exact sums."""
        return Item(e.Reduction(self.expr, agg.moments, agg.VarAggregate(ddof), False, "var"))

    def std(self, ddof: int = 0) -> "Item":
        """sqrt of the exactly rounded variance."""
        return Item(e.Reduction(self.expr, agg.moments, agg.VarAggregate(ddof, sqrt=True), False, "std"))

    def all(self, split_every=None) -> "Item":
        return Item(e.Reduction(self.expr, builtins.all, builtins.all, split_every, "all"))

    def any(self, split_every=None) -> "Item":
        return Item(e.Reduction(self.expr, builtins.any, builtins.any, split_every, "any"))

    def topk(self, k: int, key=None, split_every=None) -> "Bag":
        if not isinstance(k, int) or k < 0:
            raise ValueError(f"topk: k must be a non-negative integer, got {k!r}")
        return Bag(e.TopK(self.expr, k, key, split_every))

    def sort(self, key=None, reverse: bool = False, npartitions: int | None = None) -> "Bag":
        """Globally ordered records: partition i's keys <= partition i+1's; stable for equal keys.

        Not in dask.bag (which has no sort): TeraSort's sample, range
        boundaries, range shuffle, per-partition sort.

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

    def repartition(self, npartitions: int | None = None, partition_size=None) -> "Bag":
        """The same records in ``npartitions`` partitions, or in partitions of about ``partition_size``
        bytes (a number or a string like "5MB"). As dask, partition_size= computes the bag once to measure
        its partitions (list and records by sys.getsizeof) and counts partitions as dask does; the
        records are then spread evenly over that many partitions, in order."""
        if (npartitions is None) == (partition_size is None):
            raise ValueError("repartition: give exactly one of npartitions= or partition_size=")
        if partition_size is not None:
            npartitions = _count_for_size(self, parse_bytes(partition_size, "repartition partition_size"))
        return Bag(e.Repartition(self.expr, _check_npartitions(npartitions, "repartition", allow_none=False)))

    def join(self, other, on_self: Callable, on_other: Callable | None = None,
             npartitions: int | None = None) -> "Bag":
        """(other record, self record) for every pair with equal keys, as dask.bag.join.

        ``other`` is a list (shipped to every partition, as dask) or a Bag:
        dask joins only a one-partition bag, graphwren hash-shuffles both.
        """
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
        settings = config.resolve(scheduler.settings_for(settings))
        planned = planner.plan(expr if expr is not None else self.expr, settings, sink=sink, ntasks=ntasks)
        output = Partitions()
        try:
            job = planner.execute(planned, settings, output, keep=keep, description=description)
        finally:
            if expr is None:   # this bag's own plan ran: explain() shows what adaptivity changed
                self._adapted = planned.adapted
        return output.value(), planned, job, settings

    def compute(self, **settings) -> list:
        """Run the plan; the records of every partition, in partition order.

        Settings are graphwren's (``storage=``, ``workers=``...); dask's
        ``scheduler=`` and ``num_workers=`` are accepted too (see
        ``collections/scheduler.py`` for how they map onto backends).
        """
        parts, *_ = self._run(settings)
        return list(itertools.chain.from_iterable(parts))

    def __iter__(self):
        return iter(self.compute())

    def take(self, k: int, npartitions: int = 1, compute: bool = True, warn: bool = True, **settings) -> tuple:
        """The first k records, reading only the first ``npartitions`` partitions (-1: all).

        ``compute=False`` returns a lazy one-partition Bag of them, as dask.
        """
        if npartitions != -1:
            _check_npartitions(npartitions, "take", allow_none=False)
            if npartitions > self.npartitions:
                raise ValueError(f"only {self.npartitions} partitions, take received {npartitions}")
        if not compute:
            return Bag(em.Take(self.expr, k, None if npartitions == -1 else npartitions))
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
        (expr,), planned = dl.persist_run([self.expr], scheduler.settings_for(settings))   # stage names unique to the job: persisted bags meet
        self._adapted = planned.adapted   # explain() shows what adaptivity changed
        return type(self)(expr)

    def _write(self, sink_of: Callable, description: str, compute: bool, settings: dict):
        """Run a writer now (its files' URLs), or, with compute=False, a LazyWrite that runs it later."""
        def run(more: dict):
            parts, *_ = self._run({**settings, **more}, sink=sink_of(), description=description)
            return [p[0] for p in parts]
        lazy = bag_lazy.LazyWrite(self, run, description)
        return lazy.compute() if compute else lazy

    def to_textfiles(self, path: str, name_function: Callable | None = None, compression="infer",
                     encoding: str = "utf-8", compute: bool = True, storage_options=None,
                     last_endline: bool = False, **settings) -> list[str]:
        """One file per partition, one line per record (records must be str); the files' URLs.

        ``compute=False`` returns a ``LazyWrite`` whose compute() writes (dask
        returns delayed objects). ``storage_options`` as read_text's.
        """
        n = self.npartitions
        targets = [(apply_storage_options(u, storage_options, "to_textfiles"), k)
                   for u, k in output_targets(path, n, name_function)]
        return self._write(lambda: WriteText(targets, encoding, compression, last_endline), "to_textfiles", compute,
                           settings)

    def to_avro(self, filename: str, schema: dict, name_function: Callable | None = None, storage_options=None,
                codec: str = "null", sync_interval: int = 16000, metadata: dict | None = None,
                compute: bool = True, **settings) -> list[str]:
        """One avro file per partition (records are dicts that fit ``schema``); needs fastavro."""
        fastavro()   # the extra's error now, not from a worker
        if not isinstance(schema, dict):
            raise TypeError(f"to_avro: schema must be a dict (an avro record schema), got {type(schema).__name__}")
        n = self.npartitions
        targets = [(apply_storage_options(u, storage_options, "to_avro"), k)
                   for u, k in output_targets(filename, n, name_function)]
        return self._write(lambda: WriteAvro(targets, schema, codec, sync_interval, metadata), "to_avro", compute,
                           settings)

    def to_dataframe(self, meta=None, columns=None, optimize_graph: bool = True) -> "bag_lazy.LazyFrame":
        """A lazy pandas DataFrame: compute() gives one frame of every partition's records (needs pandas).

        Records are dicts, tuples or scalars, as dask. dask returns a dask
        DataFrame; graphwren returns a lazy value whose compute() is the
        pandas frame dask's compute() would give (each partition's index
        from 0, as dask). Without ``meta`` the columns and dtypes come from
        the first record at compute() (dask computes it at once).
        """
        if meta is not None and columns is not None:
            raise ValueError("to_dataframe: give meta= or columns=, not both (as dask)")
        bag_lazy.pandas()
        return bag_lazy.LazyFrame(self, meta, columns)

    def to_arrow(self) -> "bag_lazy.LazyTable":
        """A lazy pyarrow Table: compute() gives one table of every partition (dicts by name, tuples as f0...).

        Not in dask.bag. Partitions of read_parquet and from_arrow stay tables throughout.
        """
        return bag_lazy.LazyTable(self)

    def to_parquet(self, path: str, name_function: Callable | None = None, compression: str | None = "snappy",
                   compute: bool = True, **settings) -> list[str]:
        """One parquet file per partition (part.00000.parquet ... in ``path``); their URLs.

        Records must be dicts (columns by name) or tuples (columns f0, f1, ...);
        a columnar bag (read_parquet, from_arrow, a columnar sort) is written as is.
        Not in dask.bag. ``compute=False`` returns a LazyWrite.
        """
        n = self.npartitions
        width = max(5, len(str(n - 1)))
        name_function = name_function or (lambda i: f"part.{i:0{width}d}")
        if "*" not in path:
            path = path.rstrip("/") + "/*.parquet"
        targets = output_targets(path, n, name_function)
        return self._write(lambda: WriteParquet(targets, compression), "to_parquet", compute, settings)

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

    def visualize(self, filename: str = "mydask", format: str | None = None,  # noqa: A002 - dask's name
                  optimize_graph: bool = False, **settings) -> str:
        """Write the stage graph as an image with graphviz's ``dot`` (or as .dot text); the file's name.

        As dask: a name without an extension gets ``format`` (default png).
        graphwren draws the physical plan's stages, not dask's task graph.
        """
        if "." not in filename.rsplit("/", 1)[-1]:
            filename = f"{filename}.{format or 'png'}"
        settings = config.resolve(scheduler.settings_for(settings))
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

    def apply(self, func: Callable) -> "Item":
        """func(value), lazily (dask's Item.apply)."""
        return Item(e.Narrow(self.expr, t.Map(_check_callable(func, "apply"))))

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
    """One partition per given list (not in dask.bag: it is from_delayed's job there, for data already split)."""
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


def read_parquet(urlpath, columns: list[str] | None = None, format: str = "dict",  # noqa: A002
                 npartitions: int | None = None) -> Bag:
    """Records of parquet files: dicts, or tuples with format='tuple' (not in dask.bag).

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
    """Records of pyarrow Tables, one partition per table; they stay tables until a record op (not in dask.bag)."""
    if format not in ("dict", "tuple"):
        raise ValueError(f"from_arrow: format must be 'dict' or 'tuple', got {format!r}")
    tables = tuple([tables] if not isinstance(tables, (list, tuple)) else tables)
    if not tables:
        raise ValueError("from_arrow needs at least one table")
    return Bag(e.FromArrow(tables, format == "tuple"))


def _count_for_size(bag: Bag, size: int) -> int:
    """How many partitions of at most ``size`` bytes dask's repartition_size would make, from measured sizes."""
    sizes = Bag(e.Narrow(bag.expr, t.MapPartitions(tm.partition_nbytes))).compute()
    pieces = [s / k for s in sizes for k in [1 + s // size] for _ in builtins.range(k)]
    count, filled = 0, None
    for piece in pieces:   # dask's iter_chunks: neighbours concatenated while they fit
        if filled is None or filled + piece > size:
            count, filled = count + 1, piece
        else:
            filled += piece
    return max(1, count)


# -- module functions ------------------------------------------------------------------
def map(func: Callable, *args, **kwargs) -> Bag:  # noqa: A001 - dask.bag.map
    """func over the records of the Bag arguments, aligned by partition; Items and constants broadcast."""
    return _aligned(tm.AlignedMap, func, args, kwargs, "map")


def map_partitions(func: Callable, *args, **kwargs) -> Bag:
    """func over partition i of every Bag argument (as lists); Items and constants broadcast."""
    return _aligned(tm.AlignedPartitions, func, args, kwargs, "map_partitions")


def zip(*bags: Bag) -> Bag:  # noqa: A001 - dask.bag.zip
    """Tuples of the bags' records, partition by partition (a longer partition's extra is dropped, as dask)."""
    if not bags or not all(isinstance(b, Bag) for b in bags):
        raise TypeError("zip needs one or more Bags")
    return Bag(em.Aligned(tuple(b.expr for b in bags), (), tm.ZipRecords()))


def concat(bags: Iterable[Bag]) -> Bag:
    """Every bag's partitions, one bag after another."""
    bags = list(bags)
    if not bags or not all(isinstance(b, Bag) for b in bags):
        raise TypeError("concat needs a non-empty list of Bags")
    return Bag(em.Concat(tuple(b.expr for b in bags)))


def to_textfiles(b: Bag, path: str, name_function: Callable | None = None, compression="infer",
                 encoding: str = "utf-8", compute: bool = True, storage_options=None, last_endline: bool = False,
                 **settings):
    """Module form of Bag.to_textfiles, as dask.bag.to_textfiles."""
    return b.to_textfiles(path, name_function, compression, encoding, compute, storage_options, last_endline,
                          **settings)


def assert_eq(a, b, scheduler: str = "sync") -> None:
    """Assert that two bags, items or values compute to equal results (dask.bag.assert_eq)."""
    if isinstance(a, Bag):
        a = a.compute(scheduler=scheduler)
    if isinstance(b, Bag):
        b = b.compute(scheduler=scheduler)
    assert a == b, f"{a!r} != {b!r}"


__all__ = ["Bag", "Item", "assert_eq", "from_sequence", "from_partitions", "from_delayed", "range", "read_parquet",
           "from_arrow", "map", "map_partitions", "zip", "concat", "to_textfiles"]

