"""The object-store request budget: how many PUTs and GETs each stage's outputs and sources cost, and when S3 balks.

An object store bills and throttles by request, not by byte: S3 serves
about 5,500 GETs and 3,500 PUTs per second per key prefix, and every key of
a job shares one prefix (``{job}/``) unless spread. A shuffle of M map
tasks into R reducers writes M objects (one per map task, its buckets back
to back) and reads M x R ranged pieces of them, so a plan with 1,000 tasks
on each side reads a million pieces: three minutes of GETs at one prefix
before any byte counts. Where an S3 exchange's reads would take over
``BUDGET_SECONDS`` at one prefix's rate, ``spread`` puts its map outputs
under P prefixes (``records.out_key``: map task j under prefix j mod P,
P at most M and 256), which S3 serves in parallel; explain() shows P.

Source reads are counted too (``Stage.source_gets``, from the planner's
splits): one GET per file or block, one more for a block ending inside a
file, about three per parquet piece read by columns.

The counts follow the runtime's reads exactly (``runtime/worker.py``): every
task of a stage writes its output object and creates its commit record;
every downstream task reads its stage's manifest once per input edge (and,
for a shuffle of more than ``records.COLUMN_OFFSETS`` bucket offsets, its
columns of the stage's offset table: a second GET), then one piece per ``Edge.pieces`` entry (a bucket range of an upstream object,
or a whole object). They are upper bounds: an output under
``inline_limit`` rides in its commit record (and the manifest) instead of
an object of its own. Not counted, being a few per task rather than per
piece: each task's GET of its stage function (cached in warm workers) and
HEAD of the lease, and the driver's LISTs and its one manifest PUT per stage.
"""
from __future__ import annotations

import dataclasses

from ..logical import offline
from ..runtime.records import MAX_PREFIXES, offsets_in_columns
from ..runtime.plan import CUSTOM, GATHER, BROADCAST, HASH_SHUFFLE, ONE_TO_ONE, RANGE_SHUFFLE, Edge, Plan, Stage

#: S3's request rates per prefix per second (AWS: "3,500 PUT/COPY/POST/DELETE or 5,500 GET/HEAD").
S3_GET_PER_S = 5500.0
S3_PUT_PER_S = 3500.0
#: Seconds of requests at those rates a stage's exchange may cost before explain() says so.
BUDGET_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class Requests:
    """The requests one stage's outputs cost: written by its tasks, read by the stages that consume them."""

    stage: str
    store: str            # where the outputs live
    puts: int             # output objects, one per task
    commits: int          # commit records, one conditional PUT per task
    gets: int             # pieces read by downstream tasks: ranged when the stage wrote buckets
    ranged: bool
    manifest_gets: int    # one per downstream task per edge reading this stage
    prefixes: int = 1     # key prefixes the outputs are spread over: the pieces' GETs share them evenly
    source_gets: dict = dataclasses.field(default_factory=dict)   # {store: GETs} reading source files

    @property
    def all_gets(self) -> int:
        return self.gets + self.manifest_gets

    @property
    def busiest_prefix_gets(self) -> int:
        """GETs the busiest prefix serves: a share of the pieces, and every manifest GET (one key)."""
        if _unknown(self.gets):
            return self.gets
        return -(-self.gets // self.prefixes) + self.manifest_gets

    @property
    def all_puts(self) -> int:
        return self.puts + self.commits

    def describe(self) -> str:
        """One line for explain(): "16 PUTs (+16 commit records), 256 ranged GETs (+16 manifest GETs)"."""
        text = f"{self.puts:,} PUT{_s(self.puts)} (+{self.commits:,} commit record{_s(self.commits)})"
        if self.gets or self.manifest_gets:
            kind = "ranged " if self.ranged else ""
            text += (f", {self.gets:,} {kind}GET{_s(self.gets)} "
                     f"(+{self.manifest_gets:,} manifest GET{_s(self.manifest_gets)})")
        if self.prefixes > 1:
            text += (f"; outputs spread over {self.prefixes} key prefixes "
                     f"(~{self.busiest_prefix_gets / S3_GET_PER_S:,.1f} s of GETs at S3's per-prefix rate)")
        return text

    def describe_sources(self) -> str:
        """One line for explain(): "source reads: ~2,000 GETs of s3://logs" (one store after another)."""
        return "source reads: " + ", ".join(f"~{n:,} GET{_s(n)} of {store}" for store, n in self.source_gets.items())


def _s(n) -> str:
    return "" if n == 1 and not _unknown(n) else "s"


def _unknown(n) -> bool:
    return offline.is_unknown(n)


def pieces_read(edge: Edge, upstream_ntasks: int, downstream_ntasks: int) -> int:
    """How many pieces all downstream tasks read over ``edge``: the sum of ``len(edge.pieces(i, M))``.

    Computed by arithmetic, not by listing the pieces, so a million-piece
    shuffle costs nothing to count and an unknown task count stays unknown.
    """
    if edge.kind == ONE_TO_ONE:
        return downstream_ntasks
    if edge.kind in (HASH_SHUFFLE, RANGE_SHUFFLE, GATHER, BROADCAST):
        return upstream_ntasks * downstream_ntasks
    if edge.kind == CUSTOM:
        return sum(len(row) for row in edge.table)
    raise ValueError(f"edge from {edge.source!r}: unknown kind {edge.kind!r}")


def of_stage(plan: Plan, stage: Stage, default_storage: str) -> Requests:
    """The requests ``stage``'s outputs cost, over every edge in ``plan`` that reads them."""
    gets = manifests = 0
    per_reader = 2 if offsets_in_columns(stage.ntasks, stage.nbuckets) else 1   # the manifest, its columns
    for consumer in plan.stages:
        for edge in consumer.inputs:
            if edge.source == stage.name:
                gets += pieces_read(edge, stage.ntasks, consumer.ntasks)
                manifests += per_reader * consumer.ntasks   # cached by the worker: one each per task at most
    return Requests(stage.name, stage.storage or default_storage, stage.ntasks, stage.ntasks, gets,
                    stage.nbuckets is not None, manifests, stage.prefixes, dict(stage.source_gets or {}))


def count(plan: Plan, default_storage: str) -> dict[str, Requests]:
    """Every stage's requests, by stage name (persisted stages write nothing, but are still read)."""
    out = {}
    for stage in plan.stages:
        r = of_stage(plan, stage, default_storage)
        if stage.external is not None:
            r = dataclasses.replace(r, store=stage.external["store"], puts=0, commits=0)
        out[stage.name] = r
    return out


def is_exchange(plan: Plan, stage: Stage) -> bool:
    """True for a stage whose outputs are read many-to-many (a shuffle, a gather, a piece table):
    those are the outputs whose request count grows faster than the task count."""
    return stage.nbuckets is not None or any(e.source == stage.name and e.kind != ONE_TO_ONE
                                             for s in plan.stages for e in s.inputs)


def prefixes_for(r: Requests, ntasks) -> int:
    """The prefixes a stage's outputs should spread over: enough for its pieces' GETs to take at most
    ``BUDGET_SECONDS`` at S3's per-prefix rate, no more than its tasks (one object each) or MAX_PREFIXES;
    1 off S3 (file and Redis stores have no such limit) or where a count is unknown."""
    if not r.store.startswith("s3://") or _unknown(r.gets) or _unknown(ntasks):
        return 1
    per_prefix = int(S3_GET_PER_S * BUDGET_SECONDS) - r.manifest_gets   # the manifest is one key: one prefix
    need = -(-r.gets // max(1, per_prefix))
    return max(1, min(need, ntasks, MAX_PREFIXES))


def spread(plan: Plan, default_storage: str, chosen: int = 0) -> None:
    """Spread the outputs of every S3 exchange of ``plan`` whose reads exceed the per-prefix budget
    (sets ``Stage.prefixes``; the workers name the objects, the commit records carry the count).

    ``chosen`` is the ``key_prefixes`` setting: 0 decides as ``prefixes_for`` says, N > 0 spreads
    every exchange over N prefixes on any store (no more than its tasks or MAX_PREFIXES).
    """
    counted = count(plan, default_storage)
    for stage in plan.stages:
        if stage.external is not None or not is_exchange(plan, stage):
            continue
        if chosen and not _unknown(stage.ntasks):
            stage.prefixes = max(1, min(chosen, stage.ntasks, MAX_PREFIXES))
        else:
            stage.prefixes = prefixes_for(counted[stage.name], stage.ntasks)


def over_budget(r: Requests, where: str) -> str | None:
    """A note when ``r``'s requests to S3 would take over ``BUDGET_SECONDS`` at S3's per-prefix rates,
    spread as they are (the busiest prefix's share).

    ``where`` names the stage as the reader sees it ("stage 0 (400 tasks into 100 readers)").
    """
    if not r.store.startswith("s3://") or _unknown(r.all_gets) or _unknown(r.all_puts):
        return None
    get_s, put_s = r.busiest_prefix_gets / S3_GET_PER_S, r.all_puts / S3_PUT_PER_S
    if max(get_s, put_s) <= BUDGET_SECONDS:
        return None
    cost = []
    if get_s > BUDGET_SECONDS:
        spread_over = f" over {r.prefixes} prefixes" if r.prefixes > 1 else ""
        cost.append(f"{r.all_gets:,} GETs{spread_over}, ~{get_s:,.0f} s at S3's ~{S3_GET_PER_S:,.0f} GET/s "
                    f"per prefix")
    if put_s > BUDGET_SECONDS:
        cost.append(f"{r.all_puts:,} PUTs, ~{put_s:,.0f} s at ~{S3_PUT_PER_S:,.0f} PUT/s")
    return (f"{where} exchanges through {r.store}: " + " and ".join(cost) + "; "
            "a shuffle reads M x R pieces, so fewer map tasks (a larger blocksize=) or fewer reducers "
            "(npartitions=) cut it by their product, a two-level exchange (exchange_levels=\"2\"; automatic "
            "from ~10 s of GETs) to about M x sqrt(R) + R x sqrt(M), and Redis serves many small pieces better "
            "(shuffle_redis= or shuffle_storage=redis://...)")


def notes(plan: Plan, default_storage: str, index: dict[str, int] | None = None) -> list[str]:
    """explain()'s notes for every exchange over budget, in plan order; ``index`` numbers the stages
    as the stage table does (by default, their order in the plan)."""
    index = index or {s.name: i for i, s in enumerate(plan.stages)}
    counted = count(plan, default_storage)
    found = []
    for stage in plan.stages:
        note = sources_over_budget(counted[stage.name], f"stage {index[stage.name]}")
        if note:
            found.append(note)
        if not is_exchange(plan, stage):
            continue
        readers = sum(c.ntasks for c in plan.stages for e in c.inputs if e.source == stage.name)
        note = over_budget(counted[stage.name],
                           f"stage {index[stage.name]} ({stage.ntasks:,} tasks read by {readers:,})")
        if note:
            found.append(note)
    return found


def sources_over_budget(r: Requests, where: str) -> str | None:
    """A note when a stage reads so many S3 source objects that one prefix would take over
    ``BUDGET_SECONDS`` to serve them (the user's keys: their prefixes are theirs to choose)."""
    s3 = {store: n for store, n in r.source_gets.items() if store.startswith("s3://")}
    if not s3 or sum(s3.values()) / S3_GET_PER_S <= BUDGET_SECONDS:
        return None
    n = sum(s3.values())
    return (f"{where} reads its sources with ~{n:,} GETs of {', '.join(s3)}: ~{n / S3_GET_PER_S:,.0f} s "
            f"if they share one prefix (S3 serves ~{S3_GET_PER_S:,.0f} GET/s per prefix); fewer, larger "
            f"files, or files under several prefixes, read faster")
