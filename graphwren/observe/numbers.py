"""The few numbers and words every view of a job shares: sizes, percentiles, attempt times, column names."""
from __future__ import annotations

import functools
import math

from ..runtime.cost import attempt_seconds as task_seconds  # noqa: F401 - the views import it from here
from ..runtime.units import human_bytes as _human_bytes

#: Sizes in the views: "-" where a statistic is missing.
human_bytes = functools.partial(_human_bytes, unknown="-")



def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0-100) of ``values``; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]



HEADERS = ["stage", "tasks", "records in", "records out", "read", "written", "requests",
           "p50", "p95", "max", "retries", "backups", "skew", "operations"]
