"""Sizes as people read them: one formatter for every view (explain, progress, adaptive notes, reports)."""
from __future__ import annotations


def human_bytes(n, unknown: str = "?") -> str:
    """``1536`` -> ``1.5 KiB``; ``unknown`` for None (a size the plan does not know)."""
    if n is None:
        return unknown
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n}"
