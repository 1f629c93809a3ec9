"""The halves of graphwren.bag.random (sample, choices): a reservoir per partition, a weighted merge.

The algorithms are dask.bag.random's: Li's algorithm L for a reservoir
without replacement, k reservoirs of one with replacement, and a merge that
weights each partition's picks by n_i / (k_i * n) so every record of the
bag is equally likely. The merge is also a tree level: its result has the
shape of its inputs. Draws use the worker's ``random`` module, as dask's do.
"""
from __future__ import annotations

import heapq
import itertools
import math
import random


def _geometric(p: float) -> int:
    return int(math.log(random.uniform(0, 1)) / math.log(1 - p)) + 1


class SamplePartition:
    """(k records chosen without replacement, the partition's length) of one partition (algorithm L)."""

    def __init__(self, k: int):
        self.k = k

    def __call__(self, population) -> tuple[list, int]:
        k = self.k
        stream = iter(population)
        reservoir = list(itertools.islice(stream, k))
        n = len(reservoir)
        if k == 0 or n < k:
            return reservoir, n + sum(1 for _ in stream)
        w = math.exp(math.log(random.random()) / k)
        nxt = (k - 1) + _geometric(w)
        for i, x in enumerate(stream, k):
            if i == nxt:
                reservoir[random.randrange(k)] = x
                w *= math.exp(math.log(random.random()) / k)
                nxt += _geometric(w)
            n += 1
        return reservoir, n


class ChoicesPartition:
    """(k records chosen with replacement, the partition's length): k reservoirs of one."""

    def __init__(self, k: int):
        self.k = k

    def __call__(self, population) -> tuple[list, int]:
        picks: list = []
        n = 0
        for x in population:
            n += 1
            if n == 1:
                picks = [x] * self.k
            else:
                for j in range(self.k):
                    if random.random() < 1 / n:
                        picks[j] = x
        return picks, n


class SampleMerge:
    """Merge partitions' (picks, length) into one (picks, length), weighting picks by their partition's size."""

    def __init__(self, k: int, replace: bool):
        self.k, self.replace = k, replace

    def __call__(self, parts) -> tuple[list, int]:
        picks: list = []
        sizes = []
        n = 0
        for s_i, n_i in parts:
            picks.extend(s_i)
            n += n_i
            sizes.append((n_i, len(s_i)))
        if self.k > n and not self.replace:
            return picks, n
        weights = [n_i / (k_i * n) for n_i, k_i in sizes if k_i > 0 for _ in range(k_i)]
        if not picks:
            return [], n
        if self.replace:
            return random.choices(picks, weights=weights, k=self.k), n
        keys = [(math.log(random.random()) / w, i) for i, w in enumerate(weights)]  # Efraimidis-Spirakis
        return [picks[i] for _, i in heapq.nlargest(self.k, keys)], n


class FinalSample:
    """The chosen records as the partition, or ValueError if the bag was smaller than k (dask's message)."""

    def __init__(self, k: int):
        self.k = k

    def __call__(self, partition: list) -> list:
        chosen = partition[0]
        if len(chosen) < self.k:
            raise ValueError("Sample larger than population")
        return chosen
