"""Hand a planned job to the driver; its output partitions stream into the output object."""
from __future__ import annotations

from .. import config
from ..runtime.driver import Driver


def execute(planned, settings: dict | None, output, keep: bool | None = None, description: str = "") -> str:
    """Run ``planned`` (a planner.Planned); ``output.receive`` gets each output partition. Returns the job id."""
    settings = settings if settings is not None and "poll_interval" in settings else config.resolve(settings)
    return Driver(settings).run(planned.plan, output.receive, keep=keep, description=description)
