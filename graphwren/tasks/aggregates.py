"""The halves of the bag reductions (count, min, max, mean, var, std): per partition, then across.

They live here, not beside the Bag methods, because workers run them: a
worker imports this module by reference and never loads the collections.
"""
from __future__ import annotations

import builtins
import math


# -- reductions' halves (module-level so workers import them by reference) -------------
class _NoValue:
    """Marks an empty partition in min/max (a class: identity survives pickling)."""


def count(it) -> int:
    return builtins.sum(1 for _ in it)


def min_chunk(it):
    return builtins.min(it, default=_NoValue)


def max_chunk(it):
    return builtins.max(it, default=_NoValue)


def min_aggregate(values):
    values = [v for v in values if v is not _NoValue]
    if not values:
        raise ValueError("min() of an empty bag")
    return builtins.min(values)


def max_aggregate(values):
    values = [v for v in values if v is not _NoValue]
    if not values:
        raise ValueError("max() of an empty bag")
    return builtins.max(values)


def moments(it) -> tuple[int, float, float]:
    """(count, mean, sum of squared deviations) of one partition (Welford)."""
    n, mean, m2 = 0, 0.0, 0.0
    for x in it:
        n += 1
        delta = x - mean
        mean += delta / n
        m2 += delta * (x - mean)
    return n, mean, m2


def merge_moments(parts) -> tuple[int, float, float]:
    """Chan et al.'s pairwise merge: numerically stable across partitions."""
    n, mean, m2 = 0, 0.0, 0.0
    for nb, mb, m2b in parts:
        if nb == 0:
            continue
        total = n + nb
        delta = mb - mean
        mean += delta * nb / total
        m2 += m2b + delta * delta * n * nb / total
        n = total
    return n, mean, m2


def mean_aggregate(parts):
    n, mean, _ = merge_moments(parts)
    if n == 0:
        raise ValueError("mean() of an empty bag")
    return mean


class VarAggregate:
    """The aggregate half of var() and std(): merges partitions' moments, divides by n - ddof."""

    def __init__(self, ddof: int, sqrt: bool = False):
        self.ddof, self.sqrt = ddof, sqrt

    def __call__(self, parts):
        n, _, m2 = merge_moments(parts)
        if n - self.ddof <= 0:
            raise ValueError(f"var() needs more than ddof={self.ddof} records, the bag has {n}")
        var = m2 / (n - self.ddof)
        return math.sqrt(var) if self.sqrt else var
