"""The physical plan: the runtime's whole view of a job.

A plan is a DAG of stages. A stage is ``ntasks`` runs of one function; each
run gets a ``TaskContext`` and returns one partition, or a list of
``nbuckets`` partitions when the stage feeds a shuffle. An edge says which
upstream outputs each task reads. The runtime knows nothing of bags or
arrays: this module is the contract the planner lowers to.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import networkx as nx

#: Edge kinds and which upstream pieces task ``i`` of the downstream stage reads.
ONE_TO_ONE = "one-to-one"         # upstream task i, whole output
HASH_SHUFFLE = "hash shuffle"     # bucket i of every upstream task (buckets cut by key hash)
RANGE_SHUFFLE = "range shuffle"   # bucket i of every upstream task (buckets cut by key ranges)
GATHER = "gather"                 # every upstream output, whole (downstream has few tasks)
BROADCAST = "broadcast"           # every upstream output, whole, to each of many tasks
CUSTOM = "custom"                 # table[i] = [(upstream task, bucket or None), ...]


@dataclasses.dataclass
class Edge:
    """Stage ``source``'s outputs feeding a downstream stage."""

    source: str
    kind: str = ONE_TO_ONE
    table: list | tuple | None = None  # only for CUSTOM: the pieces each downstream task reads

    def __post_init__(self):
        if (self.kind == CUSTOM) != (self.table is not None):
            raise ValueError(f"edge from {self.source!r}: a table of pieces goes with kind CUSTOM, and only with it")

    def pieces(self, task: int, upstream_ntasks: int) -> list[tuple[int, int | None]]:
        """The (upstream task, bucket) pieces task ``task`` reads, in order."""
        if self.kind == ONE_TO_ONE:
            return [(task, None)]
        if self.kind in (HASH_SHUFFLE, RANGE_SHUFFLE):
            return [(j, task) for j in range(upstream_ntasks)]
        if self.kind in (GATHER, BROADCAST):
            return [(j, None) for j in range(upstream_ntasks)]
        if self.kind == CUSTOM:
            return [tuple(piece) for piece in self.table[task]]
        raise ValueError(f"unknown edge kind {self.kind!r}")


@dataclasses.dataclass(frozen=True)
class Adaptive:
    """Lets the driver re-plan a stage from its hash-shuffle inputs' measured buckets (see adaptive.py).

    The planner sets it only where the stage's task count may change: it reads
    hash shuffles its operation keeps per key, and every reader of its output
    takes whole buckets or whole outputs of any count.
    """

    target_bytes: int   # bytes one task is meant to read, at most (unless one bucket alone is bigger)
    # Input edges whose pieces of one bucket may be divided among several tasks, each reading every
    # other input's whole bucket: a join's sides. Empty for a reducer that needs a key's records together.
    split_inputs: tuple[int, ...] = ()

    def __post_init__(self):
        if isinstance(self.target_bytes, bool) or not isinstance(self.target_bytes, int) or self.target_bytes < 1:
            raise ValueError(f"Adaptive needs a positive whole number of bytes per task, got {self.target_bytes!r}")
        if any(not isinstance(i, int) or i < 0 for i in self.split_inputs):
            raise ValueError(f"Adaptive.split_inputs names input edges by index, got {self.split_inputs!r}")


@dataclasses.dataclass
class Stage:
    """N tasks running the same function over the same kind of input."""

    name: str
    ntasks: int
    fn: Callable[["TaskContext"], Any]   # noqa: F821 - defined in worker
    inputs: list[Edge] = dataclasses.field(default_factory=list)
    nbuckets: int | None = None          # output is a list of this many buckets
    storage: str | None = None           # store for this stage's keys; None -> job's
    storage_note: str = ""               # why that store (explain shows it)
    label: str = ""                      # what explain() shows: the fused operations
    estimated_bytes: int | None = None   # output size, where the planner knows it
    read_bytes: int | None = None        # bytes its tasks read in all (inputs and sources), where known
    peak_memory: int | None = None       # projected per-task peak, where known
    external: dict | None = None         # {"store", "job"}: outputs already committed there
    adaptive: Adaptive | None = None     # the driver may coalesce its buckets before it starts
    prefixes: int = 1                    # key prefixes its outputs spread over (S3's request rate is per prefix)
    source_gets: dict | None = None      # {store: GETs} its tasks make reading source files, where known

    def __post_init__(self):
        if self.ntasks < 1:
            raise ValueError(f"stage {self.name!r} needs at least one task, got {self.ntasks}")
        if self.adaptive is not None:
            kinds = [e.kind for e in self.inputs]
            # a broadcast is read whole by every task, whatever their count; any other edge pins it
            if HASH_SHUFFLE not in kinds or any(k not in (HASH_SHUFFLE, BROADCAST) for k in kinds):
                raise ValueError(f"adaptive stage {self.name!r} must read at least one hash shuffle and "
                                 f"otherwise only broadcasts; its inputs are {kinds}")
            bad = [i for i in self.adaptive.split_inputs if i >= len(kinds) or kinds[i] != HASH_SHUFFLE]
            if bad:
                raise ValueError(f"adaptive stage {self.name!r} may split only hash-shuffle inputs, but "
                                 f"split_inputs names input {bad[0]} of {kinds}")


@dataclasses.dataclass
class Plan:
    """Stages plus the few stages whose outputs the caller wants back."""

    stages: list[Stage]
    outputs: list[str]                            # stages whose partitions return to the caller
    data: dict[str, bytes] = dataclasses.field(default_factory=dict)  # uploaded as {job}/data/{name}

    def __post_init__(self):
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate stage names in plan: {names}")
        missing = [e.source for s in self.stages for e in s.inputs if e.source not in names]
        missing += [o for o in self.outputs if o not in names]
        if missing:
            raise ValueError(f"plan refers to unknown stages {sorted(set(missing))}")
        adaptive = {s.name for s in self.stages if s.adaptive is not None}
        pinned = [(e.source, s.name, e.kind) for s in self.stages for e in s.inputs
                  if e.source in adaptive and e.kind in (ONE_TO_ONE, CUSTOM)]
        if pinned:   # such a reader names the adaptive stage's tasks one by one: their count must not change
            source, reader, kind = pinned[0]
            raise ValueError(f"stage {source!r} is adaptive, but stage {reader!r} reads it {kind}, "
                             f"which fixes its task count")

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def graph(self) -> "nx.DiGraph":
        """The stage DAG: an edge u -> v when v reads u's outputs."""
        import networkx as nx  # driver-only: workers never pay for importing it
        g = nx.DiGraph()
        for s in self.stages:
            g.add_node(s.name, stage=s)
        for s in self.stages:
            for e in s.inputs:
                g.add_edge(e.source, s.name, kind=e.kind)
        if not nx.is_directed_acyclic_graph(g):
            raise ValueError("the stage graph has a cycle")
        return g
