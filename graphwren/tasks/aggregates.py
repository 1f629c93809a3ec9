"""The halves of the bag reductions (count, min, max, mean, var, std): per partition, then across.

mean/var/std keep exact sums (integers times a power of two) and round once at the end, so
they give the exactly rounded value whatever the partitioning.

They live here, not beside the Bag methods, because workers run them: a
worker imports this module by reference and never loads the collections.
"""
from __future__ import annotations

import builtins
import fractions
import functools
import math
import numbers


# -- reductions' halves (module-level so workers import them by reference) -------------
def count_one(acc, _record):
    """foldby's binop for a count per key (groupby(...).map(len)-style counts)."""
    return acc + 1


class _NoValue:
    """Marks an empty partition in min/max (a class: identity survives pickling)."""


def count(it) -> int:
    return builtins.sum(1 for _ in it)


def min_chunk(it):
    return builtins.min(it, default=_NoValue)


def max_chunk(it):
    return builtins.max(it, default=_NoValue)


# The aggregates also run at every level of a tree reduction, where a group of empty partitions
# is no error: they pass _NoValue on, and RequireValue, after the last level, raises.
def min_aggregate(values):
    values = [v for v in values if v is not _NoValue]
    return builtins.min(values) if values else _NoValue


def max_aggregate(values):
    values = [v for v in values if v is not _NoValue]
    return builtins.max(values) if values else _NoValue


class RequireValue:
    """The value a reduction left, or ``error(message)`` if every partition was empty."""

    def __init__(self, message: str, error=ValueError):
        self.message, self.error = message, error

    def __call__(self, value):
        if value is _NoValue:
            raise self.error(self.message)
        return value


class FoldChunk:
    """fold's first half: functools.reduce(binop) over a partition, from ``initial`` if given."""

    def __init__(self, binop, initial):
        self.binop, self.initial = binop, initial

    def __call__(self, it):
        from .bag_ops import no_default
        if self.initial is not no_default:
            return functools.reduce(self.binop, it, self.initial)
        return _reduce_or_none(self.binop, it)


def _reduce_or_none(binop, it):
    it = iter(it)
    for first in it:
        return functools.reduce(binop, it, first)
    return _NoValue


class FoldAggregate:
    """fold's second half: reduce(combine) over the partitions' results, skipping empty ones."""

    def __init__(self, combine):
        self.combine = combine

    def __call__(self, values):
        return _reduce_or_none(self.combine, (v for v in values if v is not _NoValue))


def _exact(x) -> tuple[int, int] | None:
    """x as (m, e) with x == m * 2**e exactly; None for inf and nan."""
    if isinstance(x, numbers.Integral):
        return int(x), 0
    f = float(x)
    if not math.isfinite(f):
        return None
    m, e = math.frexp(f)
    return int(m * _MANTISSA), e - 53


_MANTISSA = 2.0 ** 53


def _add(total: int, exp: int, m: int, e: int) -> tuple[int, int]:
    """total * 2**exp + m * 2**e, exactly, as (total', exp')."""
    if e < exp:
        total <<= exp - e
        exp = e
    return total + (m << (e - exp)), exp


def moments(it) -> tuple:
    """The exact sums of one partition: (count, sum x as (m, e), sum x*x as (m, e), inf/nan sum).

    Sums are kept as integers times a power of two, so no rounding happens
    until the very end (the exactly rounded mean and variance, math.fsum's
    promise); ints stay exact at any size.
    """
    n, s1, e1, s2, e2, special = 0, 0, 0, 0, 0, 0.0
    for x in it:
        n += 1
        me = _exact(x)
        if me is None:
            special += float(x)
            continue
        m, e = me
        s1, e1 = _add(s1, e1, m, e)
        s2, e2 = _add(s2, e2, m * m, 2 * e)
    return n, (s1, e1), (s2, e2), special


def merge_moments(parts) -> tuple:
    """The partitions' exact sums added up (no rounding)."""
    n, s1, e1, s2, e2, special = 0, 0, 0, 0, 0, 0.0
    for nb, (m1, x1), (m2, x2), sp in parts:
        n += nb
        s1, e1 = _add(s1, e1, m1, x1)
        s2, e2 = _add(s2, e2, m2, x2)
        special += sp
    return n, (s1, e1), (s2, e2), special


def _fraction(m: int, e: int) -> fractions.Fraction:
    return fractions.Fraction(m << e) if e >= 0 else fractions.Fraction(m, 1 << -e)


def mean_aggregate(parts):
    n, s1, _, special = merge_moments(parts)
    if n == 0:
        raise ValueError("mean() of an empty bag")
    if special or special != special:   # an inf or nan among the records decides
        return special
    return float(_fraction(*s1) / n)   # Fraction -> float rounds once, correctly


class VarAggregate:
    """The aggregate half of var() and std(): exact sums, divided by n - ddof, rounded once."""

    def __init__(self, ddof: int, sqrt: bool = False):
        self.ddof, self.sqrt = ddof, sqrt

    def __call__(self, parts):
        n, s1, s2, special = merge_moments(parts)
        if n - self.ddof <= 0:
            raise ValueError(f"var() needs more than ddof={self.ddof} records, the bag has {n}")
        if special or special != special:
            return math.nan
        total = _fraction(*s1)
        var = float((_fraction(*s2) - total * total / n) / (n - self.ddof))
        return math.sqrt(var) if self.sqrt else var
