"""Hand a physical plan to the driver and collect its output partitions in order."""
from __future__ import annotations

from .. import config
from ..runtime.driver import Driver
from ..runtime.plan import Plan


def execute(plan: Plan, settings: dict | None = None, keep: bool | None = None,
            description: str = "", on_output=None) -> tuple[dict[str, list], str]:
    """Run ``plan``; returns ({output stage: [partition per task]}, job id).

    With ``on_output`` the partitions stream to it instead and nothing is kept.
    """
    settings = config.resolve(settings)
    driver = Driver(settings)
    results: dict[str, dict[int, object]] = {name: {} for name in plan.outputs}

    def collect(stage, task, part):
        results[stage][task] = part

    job = driver.run(plan, on_output or collect, keep=keep, description=description)
    return {name: [parts[t] for t in sorted(parts)] for name, parts in results.items()}, job
