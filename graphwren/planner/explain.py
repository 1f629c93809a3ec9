"""Render what will run: logical plan, optimized plan, and the physical stages."""
from __future__ import annotations

import networkx as nx

from ..runtime.plan import Plan
from ..logical import offline
from ..runtime.units import human_bytes  # noqa: F401 - planner modules import it from here
from . import requests



def run_order(plan: Plan) -> dict[str, int]:
    """Each stage's number in the stage table: its place in a topological order."""
    return {name: i for i, name in enumerate(nx.topological_sort(plan.graph()))}


def stage_table(plan: Plan, default_storage: str) -> str:
    """The stages in run order: tasks, fused ops, incoming edges, storage, sizes, requests."""
    index = run_order(plan)
    order = list(index)
    counted = requests.count(plan, default_storage)
    lines = []
    for name in order:
        s = plan.stage(name)
        plural = "s" if s.ntasks != 1 or offline.is_unknown(s.ntasks) else ""
        head = f"stage {index[name]}: {s.ntasks} task{plural}  {s.label or name}"
        if s.external is not None:
            head += f"  [persisted: job {s.external['job']}]"
        lines.append(head)
        for e in s.inputs:
            lines.append(f"    <- stage {index[e.source]} ({e.kind})")
        if s.nbuckets is not None:
            one = s.nbuckets == 1 and not offline.is_unknown(s.nbuckets)
            lines.append(f"    -> {s.nbuckets} bucket{'' if one else 's'} per task, one object per task")
        if s.adaptive is not None:
            split = " and splits a skewed bucket over one side's map outputs" if s.adaptive.split_inputs else ""
            lines.append(f"    adaptive: the run coalesces adjacent buckets up to {human_bytes(s.adaptive.target_bytes)} "
                         f"per task{split}")
        note = f"  ({s.storage_note})" if s.storage_note else ""
        lines.append(f"    storage: {s.storage or default_storage}{note}")
        facts = []
        if s.read_bytes is not None:  # the planner counted it (sources, and for arrays the blocks read)
            facts.append(f"reads ~{human_bytes(s.read_bytes)}" + _per_task(s.read_bytes, s.ntasks))
        elif any(plan.stage(e.source).estimated_bytes is not None for e in s.inputs):
            facts.append(f"reads ~{human_bytes(sum(plan.stage(e.source).estimated_bytes or 0 for e in s.inputs))}")
        if s.estimated_bytes is not None:
            facts.append(f"writes ~{human_bytes(s.estimated_bytes)}")
        if s.peak_memory is not None:
            facts.append(f"peak memory/task ~{human_bytes(s.peak_memory)}")
        if facts:
            lines.append("    " + ", ".join(facts))
        if counted[name].source_gets:
            lines.append(f"    {counted[name].describe_sources()}")
        if requests.is_exchange(plan, s):  # outputs read many-to-many: requests grow as M x R
            lines.append(f"    requests: {counted[name].describe()}")
        if name in plan.outputs:
            lines.append("    -> returned to the driver")
    return "\n".join(lines)


def _per_task(total: int, ntasks) -> str:
    """The " (~3.8 MiB per task)" suffix, when more than one task shares ``total``."""
    if offline.is_unknown(ntasks) or ntasks <= 1:
        return ""
    return f" (~{human_bytes(total / ntasks)} per task)"


class Explanation(str):
    """A string that prints itself as is in a REPL or notebook."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(str(self))


def explain(logical: str, optimized: str, plan: Plan, default_storage: str, notes=()) -> Explanation:
    counts = [s.ntasks for s in plan.stages if s.external is None]
    ntasks = "?" if any(map(offline.is_unknown, counts)) else sum(counts)
    return Explanation(
        "== Logical plan ==\n" + logical + "\n\n"
        "== Optimized plan ==\n" + optimized + "\n\n"
        f"== Physical plan: {len(plan.stages)} stage(s), {ntasks} task(s) ==\n"
        + stage_table(plan, default_storage) + "\n"
        + "".join(f"note: {n}\n" for n in [*notes, *requests.notes(plan, default_storage, run_order(plan))])
    )
