"""``graphwren.bag.random``: sample and choices over a whole bag, as dask.bag.random.

Each partition keeps a reservoir (without replacement: Li's algorithm L;
with: k reservoirs of one), then one task merges them weighting each
partition's picks by its size, so every record is equally likely.
"""
from __future__ import annotations

from ..tasks import bag_random as r
from .bag import Bag


def _check(population, k, what: str) -> None:
    if not isinstance(population, Bag):
        raise TypeError(f"{what} needs a Bag, got {type(population).__name__}")
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"{what}: k must be an integer, got {k!r}")
    if k < 0:
        raise ValueError("Cannot take a negative number of samples")


def sample(population: Bag, k: int, split_every=None) -> Bag:
    """k distinct records chosen at random (a ValueError if the bag has fewer), in one partition."""
    _check(population, k, "sample")
    return population.reduction(r.SamplePartition(k), r.SampleMerge(k, replace=False), split_every=split_every,
                                out_type=Bag).map_partitions(r.FinalSample(k))


def choices(population: Bag, k: int = 1, split_every=None) -> Bag:
    """k records chosen at random with replacement, in one partition."""
    _check(population, k, "choices")
    return population.reduction(r.ChoicesPartition(k), r.SampleMerge(k, replace=True), split_every=split_every,
                                out_type=Bag).map_partitions(r.FinalSample(k))


__all__ = ["sample", "choices"]
