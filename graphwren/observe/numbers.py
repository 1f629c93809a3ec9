"""The few numbers and words every view of a job shares: sizes, percentiles, attempt times, column names."""
from __future__ import annotations

import math


def human_bytes(n) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0-100) of ``values``; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def task_seconds(attempt: dict) -> float | None:
    """How long an attempt ran: measured by its worker when it committed, else as the driver saw it."""
    s = attempt.get("stats")
    if s:
        return s["end"] - s["start"]
    if attempt.get("launched") is not None and attempt.get("ended") is not None:
        return attempt["ended"] - attempt["launched"]
    return None


HEADERS = ["stage", "tasks", "records in", "records out", "read", "written", "requests",
           "p50", "p95", "max", "retries", "backups", "skew", "operations"]
