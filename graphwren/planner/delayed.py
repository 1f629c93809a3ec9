"""Lowering delayed values, and several roots of any kind at once (``gw.compute(a, b)``), into one plan.

The delayed calls of a plan form a DAG. Linear chains (a call whose only
input is a call read by nothing else) fuse into one task; the chains are
then cut into levels (networkx's topological generations: a chain runs one
level after the last chain it reads), and each level becomes one stage of
one task per chain, or two stages when some of its chains hold a root (so
the driver fetches only what the caller asked for; both start together).
A level wider than four tasks per worker packs neighbouring chains into
one task, as ``Executor.map`` chunks its items.
Tasks read what they need from earlier stages through custom edges naming
exactly the pieces each one reads; a task's output is the list of its
chain's values that anything outside the chain reads.

Delayed values and bags meet both ways: a delayed call may read a bag's
partition (``to_delayed``) or all its records, and a bag's partitions may
be delayed values (``from_delayed``). This lowering is a ``BagLowering``
that also knows delayed nodes, so both live in one plan and a bag shared
by several roots is one stage. Arrays in the same ``gw.compute`` are
lowered by the array lowering into the same plan.
"""
from __future__ import annotations

import collections
import dataclasses

import networkx as nx

from ..logical import offline
from ..logical.array import ArrayExpr
from ..logical.bag import BagExpr, Persisted
from ..logical.delayed import BagPartition, BagValue, Call, FromDelayed, Literal, PersistedValue, Roots
from ..logical.expr import Expr
from ..logical.rewrite import rewrite
from ..logical.rules import BAG_RULES
from ..runtime.plan import ONE_TO_ONE, Edge, Stage
from ..tasks import bag_ops as t
from ..tasks.delayed_calls import FromDelayedParts, Program, Ref, RunCalls, Step, dumps
from ..tasks.describe import funcname
from ..runtime.backends import planned_workers
from . import edges as edge_tables
from . import sizing
from .array import ArrayLowering, _count_paths
from .bag import BagLowering, Pending, _after


@dataclasses.dataclass
class RootOut:
    """Where one root's value comes back from the run."""

    kind: str                 # "delayed" "literal" "partition" "records" "item" "bag" "array"
    stage: str | None = None  # the output stage (None for a literal: it never leaves the driver)
    task: int | None = None   # delayed/partition: the task holding it
    index: int | None = None  # delayed: its place in that task's output list
    value: object = None      # literal: the value itself
    expr: Expr | None = None  # the (optimized) root expression


def optimize_together(roots: list[Expr], settings) -> list[Expr]:
    """The bag rules over every non-array root in one rewrite: shared subexpressions settle once."""
    others = [r for r in roots if not isinstance(r, ArrayExpr)]
    if not others:
        return list(roots)
    settled = iter(rewrite(Roots(tuple(others)), BAG_RULES, settings).exprs)
    return [r if isinstance(r, ArrayExpr) else next(settled) for r in roots]


class _Reads:
    """The pieces each task of one stage reads, by upstream stage: they become the stage's input edges."""

    def __init__(self, ntasks: int):
        self.ntasks = ntasks
        self.rows: dict[str, list[set]] = {}

    def add(self, task: int, stage: str, piece: tuple) -> None:
        rows = self.rows.setdefault(stage, [set() for _ in range(self.ntasks)])
        rows[task].add(piece)

    def edges(self, upstream_ntasks: dict[str, int]):
        """(input edges, {(task, stage, piece): (edge index, position in the task's pieces)})."""
        out, where = [], {}
        for k, (stage, rows) in enumerate(self.rows.items()):
            table = [sorted(row) for row in rows]   # sorted: a full row is a broadcast's order
            out.append(edge_tables.from_table(stage, table, upstream_ntasks[stage]))
            for task, row in enumerate(table):
                for pos, piece in enumerate(row):
                    where[(task, stage, piece)] = (k, pos)
        return out, where


def _concrete(source: tuple, task: int, where: dict) -> tuple:
    """A source named by (stage, piece) turned into one named by (edge index, position)."""
    if source[0] == "piece":
        k, pos = where[(task, source[1], source[2])]
        return ("piece", k, pos, source[3])
    if source[0] == "concat":
        spots = [where[(task, source[1], piece)] for piece in source[2]]
        return ("concat", spots[0][0] if spots else 0, [pos for _, pos in spots])
    return source


class GraphLowering(BagLowering):
    """Lowers several optimized roots (delayed values, bags, arrays) into one plan's stages."""

    def __init__(self, roots: list[Expr], settings: dict, explaining: bool = False, suffix: str = "",
                 sink=None, ntasks: int | None = None):
        everything = Roots(tuple(r for r in roots if not isinstance(r, ArrayExpr)))
        super().__init__(everything, settings, explaining)   # bag reference counts over every root at once
        self.suffix = suffix
        self.everything = everything
        self.nodes = {node.name: node for node in everything.walk() if node is not everything}
        self.bag_stages: dict[str, tuple[str, int]] = {}   # bag name -> (stage holding its partitions, count)
        self.locations: dict[str, tuple[str, int, int]] = {}   # call name -> (stage, task, export index)
        self.outputs: list[str] = []
        self.roots: list[RootOut] = []
        self.literals = None
        self._literal_index: dict[str, int] = {}
        self._register_persisted()
        self._ship_literals()
        self._lower_calls()
        outs = {i: self._root(r, sink, ntasks) for i, r in enumerate(roots) if not isinstance(r, ArrayExpr)}
        arrays = [(i, r) for i, r in enumerate(roots) if isinstance(r, ArrayExpr)]
        if arrays:   # after the rest: array stages are named around theirs
            for (i, r), stage in zip(arrays, self._lower_arrays([r for _, r in arrays])):
                outs[i] = RootOut("array", stage, expr=r)
        self.roots = [outs[i] for i in range(len(roots))]
        for root in self.roots:
            if root.stage is not None and root.stage not in self.outputs:
                self.outputs.append(root.stage)
        self.output = self.outputs[0] if self.outputs else ""

    def name(self, kind: str) -> str:
        return super().name(kind + self.suffix)

    # -- sources every task may read ---------------------------------------------------------
    def _register_persisted(self) -> None:
        """Persisted stages first: their names are fixed by their own job, new stages go around them."""
        seen: dict[str, str] = {}
        for node in self.nodes.values():
            if isinstance(node, (Persisted, PersistedValue)):
                if seen.setdefault(node.stage, node.job) != node.job:
                    raise ValueError(
                        f"two persisted results in one computation share the stage name {node.stage!r} "
                        f"(jobs {seen[node.stage]} and {node.job}); persist them together with "
                        f"gw.persist(a, b), or compute one of them again")
                if all(s.name != node.stage for s in self.stages):   # a bag and its partitions share one
                    ntasks = node.nparts if isinstance(node, Persisted) else node.ntasks
                    self.add(Stage(node.stage, ntasks, t.Collect(), label="persisted",
                                   external={"store": node.store, "job": node.job}))
                if isinstance(node, Persisted):   # as BagLowering lowers it, without adding its stage again
                    self.memo[node.name] = _after(Edge(node.stage, ONE_TO_ONE), node.nparts)

    def _ship_literals(self) -> None:
        """Every ``delayed(obj)`` value a task reads, shipped once in one data object."""
        readers = collections.Counter(dep.name for node in self.nodes.values() for dep in node.dependencies)
        values = []
        for node in self.nodes.values():
            if isinstance(node, Literal) and readers[node.name]:
                self._literal_index[node.name] = len(values)
                values.append(node.value)
        if values:
            self.literals = self.ship(f"delayed-literals{self.suffix}", values, lambda v: len(dumps(v)),
                                      encode=dumps, decode="pickle")

    def _value_source(self, node: Expr, task: int, reads: _Reads) -> tuple:
        """How task ``task`` gets ``node``'s value, by (stage, piece) until its edges are known."""
        if isinstance(node, Call):
            stage, up_task, index = self.locations[node.name]
            reads.add(task, stage, (up_task, None))
            return ("piece", stage, (up_task, None), index)
        if isinstance(node, Literal):
            return ("literal", self._literal_index[node.name])
        if isinstance(node, PersistedValue):
            reads.add(task, node.stage, (node.task, None))
            return ("piece", node.stage, (node.task, None), node.index)
        if isinstance(node, BagPartition):
            stage, n = self._bag_stage(node.frame)
            if not offline.is_unknown(n) and not 0 <= node.index < n:
                raise IndexError(f"to_delayed: partition {node.index} of a bag of {n} partitions")
            reads.add(task, stage, (node.index, None))
            return ("piece", stage, (node.index, None), None)
        if isinstance(node, BagValue):
            stage, n = self._bag_stage(node.frame)
            if node.item:
                reads.add(task, stage, (0, None))
                return ("piece", stage, (0, None), 0)
            # explain() without a listing does not know n: the table shows one piece per task
            pieces = [(j, None) for j in range(1 if offline.is_unknown(n) else n)]
            for piece in pieces:
                reads.add(task, stage, piece)
            return ("concat", stage, pieces)
        raise TypeError(f"a delayed call cannot read a {type(node).__name__} directly")

    def _edges(self, reads: _Reads):
        return reads.edges({s.name: s.ntasks for s in self.stages})

    # -- bags ---------------------------------------------------------------------------------
    def _pending(self, expr: Expr) -> Pending:
        if isinstance(expr, FromDelayed):
            reads = _Reads(len(expr.values))
            sources = [self._value_source(value, i, reads) for i, value in enumerate(expr.values)]
            inputs, where = self._edges(reads)
            read = FromDelayedParts([_concrete(s, i, where) for i, s in enumerate(sources)], self.literals,
                                    expr.as_item)
            return Pending(inputs, read, [], len(expr.values), [f"from_delayed({len(expr.values)} values)"])
        return super()._pending(expr)

    def _bag_stage(self, frame: BagExpr) -> tuple[str, int]:
        """The stage whose task i holds partition i of ``frame`` as a list (made once per bag)."""
        hit = self.bag_stages.get(frame.name)
        if hit is None:
            p = self.pending(frame)
            if _reads_one_stage(p):   # a shared or persisted bag is a stage already
                hit = (p.inputs[0].source, p.npartitions)
            else:   # never adaptive: delayed tasks name its partitions one by one
                hit = (self.materialize(p, t.Collect()), p.npartitions)
            self.bag_stages[frame.name] = hit
        return hit

    # -- delayed calls ------------------------------------------------------------------------
    def _lower_calls(self) -> None:
        calls = [n for n in self.nodes.values() if isinstance(n, Call)]
        if not calls:
            return
        # frontier: the calls a node's value waits for (through bags too: from_delayed ... to_delayed)
        frontier: dict[str, frozenset] = {}
        for node in self.nodes.values():   # dependencies come first
            frontier[node.name] = (frozenset([node.name]) if isinstance(node, Call) else
                                   frozenset().union(*(frontier[d.name] for d in node.dependencies)))
        readers: dict[str, list[str]] = collections.defaultdict(list)
        for node in self.nodes.values():
            for dep in node.dependencies:
                readers[dep.name].append(node.name)
        roots = {r.name for r in self.everything.exprs}
        pred = {c.name: frozenset().union(*(frontier[d.name] for d in c.dependencies)) for c in calls}
        succ: dict[str, set] = collections.defaultdict(set)
        for c in calls:
            for p in pred[c.name]:
                succ[p].add(c.name)
        # Fuse u -> v when v waits for u alone, reads it directly, and nothing else reads u.
        chain_of: dict[str, int] = {}
        chains: list[list[Call]] = []
        for c in calls:
            ups = pred[c.name]
            if len(ups) == 1:
                (u,) = ups
                if (readers[u] == [c.name] and succ[u] == {c.name}
                        and any(d.name == u for d in c.dependencies)):
                    chain_of[c.name] = chain_of[u]
                    chains[chain_of[u]].append(c)
                    continue
            chain_of[c.name] = len(chains)
            chains.append([c])
        graph = nx.DiGraph()
        graph.add_nodes_from(range(len(chains)))
        for c in calls:
            for p in pred[c.name]:
                if chain_of[p] != chain_of[c.name]:
                    graph.add_edge(chain_of[p], chain_of[c.name])
        for level, ids in enumerate(nx.topological_generations(graph)):
            ids = sorted(ids)
            held = [i for i in ids if any(c.name in roots for c in chains[i])]
            rest = [i for i in ids if i not in set(held)]
            for group in (rest, held):
                if group:
                    self._call_stage(level, self._pack([chains[i] for i in group]), readers, roots)

    def _pack(self, chains: list[list[Call]]) -> list[list[Call]]:
        """At most four tasks per worker: neighbouring independent chains share a task, as Executor.map
        chunks its items (a task per tiny call would cost more to start than to run)."""
        cap = max(1, planned_workers(self.settings) * sizing.SPLITS_PER_WORKER)
        n = len(chains)
        if n <= cap:
            return chains
        return [[c for chain in chains[j * n // cap:(j + 1) * n // cap] for c in chain] for j in range(cap)]

    def _call_stage(self, level: int, chains: list[list[Call]], readers: dict, roots: set) -> str:
        """One stage, one task per chain; task t returns its chain's values read outside it."""
        reads = _Reads(len(chains))
        functions: list = []
        fn_index: dict[int, int] = {}
        plans, located = [], []
        for task, chain in enumerate(chains):
            members = {c.name for c in chain}
            slots: dict[str, int] = {}
            sources = []
            for c in chain:
                for dep in c.dependencies:
                    if dep.name not in members and dep.name not in slots:
                        slots[dep.name] = len(sources)
                        sources.append(self._value_source(dep, task, reads))
            for j, c in enumerate(chain):
                slots[c.name] = len(sources) + j
            steps = []
            for c in chain:
                fn = c.fn
                if not isinstance(fn, Ref):
                    if id(fn) not in fn_index:
                        fn_index[id(fn)] = len(functions)
                        functions.append(fn)
                    fn = fn_index[id(fn)]
                steps.append(Step(fn, c.args, c.kwargs, tuple(slots[d.name] for d in c.dependencies), c.key))
            exported = [c for c in chain if c.name in roots or any(r not in members for r in readers[c.name])]
            plans.append((sources, steps, [slots[c.name] for c in exported]))
            located.extend((c.name, task, index) for index, c in enumerate(exported))
        name = self.name("delayed")   # after the sources: the bag stages they made come first
        for call, task, index in located:
            self.locations[call] = (name, task, index)
        inputs, where = self._edges(reads)
        programs = [Program([_concrete(s, task, where) for s in sources], steps, exports)
                    for task, (sources, steps, exports) in enumerate(plans)]
        shipped = self.ship(f"{name}-calls", programs, lambda p: len(dumps(p)), encode=dumps, decode="pickle")
        label = f"delayed level {level}: {_summary(chains)}"
        self.add(Stage(name, len(chains), RunCalls(functions, shipped, self.literals), inputs, label=label),
                 "split the work of the largest call into more, smaller calls")
        return name

    # -- roots --------------------------------------------------------------------------------
    def _root(self, root: Expr, sink, ntasks) -> RootOut:
        if isinstance(root, Literal):
            return RootOut("literal", value=root.value, expr=root)
        if isinstance(root, Call):
            stage, task, index = self.locations[root.name]
            return RootOut("delayed", stage, task, index, expr=root)
        if isinstance(root, PersistedValue):
            return RootOut("delayed", root.stage, root.task, root.index, expr=root)
        if isinstance(root, BagPartition):
            return RootOut("partition", self._bag_stage(root.frame)[0], root.index, expr=root)
        if isinstance(root, BagValue):
            return RootOut("item" if root.item else "records", self._bag_stage(root.frame)[0], expr=root)
        if isinstance(root, BagExpr):
            hit = self.bag_stages.get(root.name)
            if hit is not None and sink is None and ntasks is None:
                return RootOut("bag", hit[0], expr=root)
            final = self.pending(root)
            if _reads_one_stage(final) and sink is None and ntasks is None:
                return RootOut("bag", final.inputs[0].source, expr=root)
            if ntasks is not None:
                ntasks = min(ntasks, final.npartitions)   # take: only the first partitions
            stage = self.materialize(final, sink or t.Collect(), ntasks=ntasks,
                                     resizable=sink is None and ntasks is None)
            self.bag_stages.setdefault(root.name, (stage, final.npartitions))
            return RootOut("bag", stage, expr=root)
        raise TypeError(f"graphwren cannot compute a {type(root).__name__}")

    # -- arrays -------------------------------------------------------------------------------
    def _lower_arrays(self, arrays: list[ArrayExpr]) -> list[str]:
        part = _ArrayRoots(arrays, self.settings, self.explaining, {s.name for s in self.stages}, self.suffix)
        self.stages.extend(part.stages)
        self.data.update(part.data)
        self.advice.update(part.advice)
        for note in part.notes:
            self.note(note)
        return part.outputs


def _reads_one_stage(p: Pending) -> bool:
    """Whether a Pending is exactly the partitions of one existing stage (nothing left to run)."""
    return (not p.ops and p.table is None and len(p.inputs) == 1 and p.inputs[0].kind == ONE_TO_ONE
            and isinstance(p.read, t.ReadInputs) and p.read.k == 0)


def _summary(chains: list[list[Call]]) -> str:
    """What a delayed stage runs, for its label: ``3 tasks: inc x200, add x3``."""
    names = collections.Counter(funcname(c.fn) if not isinstance(c.fn, Ref) else "<delayed function>"
                                for chain in chains for c in chain)
    shown = [f"{n} x{k}" if k > 1 else n for n, k in names.most_common(4)]
    if len(names) > 4:
        shown.append(f"+{len(names) - 4} more")
    longest = max(len(c) for c in chains)
    tail = f" (up to {longest} calls per task)" if longest > 1 else ""
    return f"{len(chains)} task{'s' if len(chains) != 1 else ''}: {', '.join(shown)}{tail}"


class _ArrayRoots(ArrayLowering):
    """Several array roots lowered together (a wide node two roots share is one stage), named around
    the stages the rest of the plan already has."""

    def __init__(self, roots: list[ArrayExpr], settings: dict, explaining: bool, taken: set[str], suffix: str):
        self._taken, self._suffix = taken, suffix
        self._deferred = True    # ArrayLowering.__init__ lowers its one root: wait until paths count all of them
        super().__init__(roots[0], settings, None, explaining)
        self._deferred = False
        paths = collections.Counter()
        for root in roots:
            paths.update(_count_paths(root))
        self.paths = paths
        self.outputs = [self._stage(root) for root in roots]

    def _stage(self, expr, target=None):
        return None if self._deferred else super()._stage(expr, target)

    def name(self, kind: str) -> str:
        kind += self._suffix
        taken = self._taken | {s.name for s in self.stages}
        i = len(taken)
        while f"{i}-{kind}" in taken:
            i += 1
        return f"{i}-{kind}"


def lower_many(roots: list[Expr], settings: dict, explaining: bool = False, suffix: str = "",
               sink=None, ntasks: int | None = None) -> GraphLowering:
    """The lowering of optimized ``roots`` into one plan; ``suffix`` makes its stage names unique (persist)."""
    return GraphLowering(roots, settings, explaining, suffix, sink, ntasks)


__all__ = ["GraphLowering", "RootOut", "lower_many", "optimize_together"]
