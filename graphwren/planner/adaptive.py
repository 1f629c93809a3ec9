"""The planner's side of adaptive execution: the target a coalesced task reads, and what explain() says.

The driver does the re-planning (``runtime/adaptive.py``); the planner
marks the stages where it is safe (``planner/bag.py``) and, after a run,
shows what changed beside the plan that would run next time.
"""
from __future__ import annotations

import networkx as nx

from ..runtime.plan import Plan
from . import memory, sizing


def reducer_target(settings: dict) -> int:
    """Bytes an adaptive stage's task may read: the reducer size, and no more than its memory allows."""
    return min(sizing.REDUCER_BYTES, memory.largest_bag_read(memory.bound(settings)))


def after_run(plan: Plan, decisions) -> str:
    """explain()'s section on the last run: one line per adaptive stage, numbered as in ``plan``'s table."""
    if decisions is None:
        return ""
    index = {name: i for i, name in enumerate(nx.topological_sort(plan.graph()))}
    lines = ["== Adaptive execution in the last run =="]
    for d in decisions:
        where = f"stage {index[d.stage]}" if d.stage in index else f"stage {d.stage}"
        lines.append(f"{where}: {d.describe()}")
    if not decisions:
        lines.append("no stage was re-planned")
    return "\n".join(lines) + "\n"
