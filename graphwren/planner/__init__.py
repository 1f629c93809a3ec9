"""The planner (driver-only): an optimized expression becomes a runtime Plan through one entry point.

``plan`` optimizes the expression (logical rules), lowers it by node type
(``bag.py`` for bags, ``array.py`` for arrays, sharing ``build.py``), and
checks every stage against the one memory model (``memory.py``).
``execute`` hands it to the runtime's driver, and ``explain`` renders the
same plan without running it or reading remote storage.
"""
from __future__ import annotations

import dataclasses

from .. import logical
from ..logical import offline
from ..logical.array import ArrayExpr
from ..logical.bag import BagExpr
from ..logical.delayed import Roots, is_delayed_plan
from ..logical.expr import Expr
from ..runtime.plan import Plan
from . import memory, requests


@dataclasses.dataclass
class Planned:
    """A plan ready to run, and what the planner learnt making it."""

    plan: Plan
    optimized: Expr               # the expression the plan computes, after the rules
    output: str                   # the stage whose partitions return to the caller
    notes: list[str]              # what explain() adds (sources it did not list)
    adapted: list = dataclasses.field(default_factory=list)  # the driver's adaptive decisions, once run
    roots: list = dataclasses.field(default_factory=list)    # plan_many: where each root's value comes back


def optimize(expr: Expr, settings: dict) -> Expr:
    """The logical rules, then the physical choices made before lowering (matmul strategies)."""
    optimized = logical.optimize(expr, settings)
    if isinstance(optimized, ArrayExpr):
        from .matmul import choose_matmul_strategies
        optimized = choose_matmul_strategies(optimized, settings)
    return optimized


def plan(expr: Expr, settings: dict, *, sink=None, ntasks: int | None = None, target: str | None = None,
         explaining: bool = False) -> Planned:
    """The physical plan computing ``expr``: the one entry point, dispatching on the node type.

    Bags: ``sink`` replaces the output stage's (writers), ``ntasks`` runs only
    the first output partitions (take). Arrays: ``target`` stores the blocks
    there instead of returning them. ``explaining`` sizes driver-held data
    without encoding it.
    """
    if is_delayed_plan(expr):   # delayed values, or a bag made of them: the delayed lowering (delayed.py)
        return plan_many([expr], settings, explaining=explaining, sink=sink, ntasks=ntasks)
    optimized = optimize(expr, settings)
    if isinstance(optimized, ArrayExpr):
        from .array import ArrayLowering
        lowering = ArrayLowering(optimized, settings, target, explaining)
    elif isinstance(optimized, BagExpr):
        from .bag import lower
        lowering = lower(optimized, settings, sink, ntasks, explaining)
    else:
        raise TypeError(f"graphwren cannot plan a {type(expr).__name__}")
    built = lowering.plan([lowering.output])
    memory.check(built, memory.bound(settings), lowering.advice)
    requests.spread(built, settings["storage"], settings.get("key_prefixes") or 0)
    return Planned(built, optimized, lowering.output, lowering.notes)


def plan_many(exprs: list[Expr], settings: dict, *, explaining: bool = False, suffix: str = "",
              sink=None, ntasks: int | None = None) -> Planned:
    """One plan computing every expression of ``exprs`` (delayed values, bags, arrays), shared parts once.

    ``Planned.roots[i]`` says where expression i's value comes back; ``suffix``
    makes the stage names unique to this job (persist: a later plan reads them).
    """
    from .delayed import lower_many, optimize_together
    optimized = optimize_together([optimize(e, settings) if isinstance(e, ArrayExpr) else e for e in exprs],
                                  settings)
    lowering = lower_many(optimized, settings, explaining, suffix, sink, ntasks)
    built = lowering.plan(lowering.outputs)
    memory.check(built, memory.bound(settings), lowering.advice)
    requests.spread(built, settings["storage"], settings.get("key_prefixes") or 0)
    return Planned(built, optimized[0] if len(optimized) == 1 else Roots(tuple(optimized)), lowering.output,
                   lowering.notes, roots=lowering.roots)


def npartitions(expr: Expr, settings: dict) -> int:
    """How many partitions ``expr`` has once planned: sources are listed and cut as compute() would."""
    optimized = optimize(expr, settings)
    if not isinstance(optimized, BagExpr):
        raise TypeError(f"npartitions of a {type(expr).__name__}")
    if is_delayed_plan(optimized):   # a bag made of delayed values: the lowering that knows them
        from .delayed import lower_many
        return lower_many([optimized], settings, explaining=True).pending(optimized).npartitions
    from .bag import BagLowering
    return BagLowering(optimized, settings, explaining=True).pending(optimized).npartitions


def execute(planned: Planned, settings: dict, output, keep: bool | None = None, description: str = "") -> str:
    """Run a planned job; ``output.receive`` gets each output partition (see outputs.py). Returns the job id."""
    import contextlib

    from ..runtime.driver import Driver
    driver = Driver(settings)
    page = contextlib.nullcontext()
    if settings.get("report"):   # compute(report="job.html"): the page of this job, failed or not
        from ..observe import report
        page = report(settings["report"])
    try:
        with page:
            return driver.run(planned.plan, output.receive, keep=keep, description=description)
    finally:
        planned.adapted = driver.adaptive   # the plan's adaptive stages now have their real task counts


def explain(expr: Expr, settings: dict, adapted: list | None = None, cost: bool = False):
    """What will run, before paying for it: logical, optimized and physical plans (no remote I/O).

    ``adapted``: the adaptive decisions of the last run (``Planned.adapted``), shown after the plan.
    ``cost``: add the projected cost per stage on the configured backend (``cost.py``), an estimate.
    """
    from .adaptive import after_run
    from .explain import Explanation
    from .explain import explain as render
    with offline.planning():  # no listing, sizes or footers of remote files: no credentials needed
        planned = plan(expr, settings, explaining=True)
        view = planned.optimized
        if isinstance(view, BagExpr):
            view = logical.fused_view(view, settings)
        text = render(expr.tree(), view.tree(), planned.plan, settings["storage"], planned.notes)
        if cost:
            from .cost import table
            text = Explanation(text + "\n" + table(planned.plan, settings))
        return Explanation(text + after_run(planned.plan, adapted)) if adapted is not None else text
