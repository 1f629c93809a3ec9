"""Logical rewrite rules, one per module (Ray Data style): ``rule(expr, settings) -> expr``.

A rule returns its input unchanged when it does not apply. The lists below
are what ``graphwren.logical.optimize`` runs with the one driver
(``logical.rewrite``); their order is the order rules are tried at a node.
Rules never ask an input for its partition count (a read_text source would
list and size its files for it): they pass the user's ``nparts`` on, None
when none was given, and the planner resolves it.
"""
from __future__ import annotations

from .array_reduction_tree import array_reduction_tree
from .array_scan import array_scan
from .broadcast_join import broadcast_join
from .combine_distinct import combine_distinct
from .combine_frequencies import combine_frequencies
from .combine_reduceby import combine_reduceby
from .fuse_narrow import fuse_narrow
from .groupby_count import groupby_count
from .groupby_to_shuffle import groupby_to_shuffle
from .join_to_shuffles import join_to_shuffles
from .prune_count import prune_count
from .reduction_to_tree import reduction_to_tree
from .topk_to_tree import topk_to_tree

BAG_RULES = [
    prune_count,          # first: count() over maps drops them before the count is rewritten away
    combine_reduceby,     # reduceby/foldby: partial reduce, shuffle, combine
    combine_frequencies,  # frequencies: count per partition, shuffle, sum
    combine_distinct,     # distinct: unique per partition, shuffle, unique per bucket
    groupby_to_shuffle,   # groupby: shuffle by key, group per bucket
    groupby_count,        # groupby(...).map(lambda kv: (kv[0], len(kv[1]))): a count per key instead
    reduction_to_tree,    # sum/count/mean...: per partition, then a gather tree
    topk_to_tree,         # topk: k largest per partition, then a gather tree
    broadcast_join,       # join with driver-held records: no shuffle
    join_to_shuffles,     # join of two bags: shuffle both sides, join per bucket
]

ARRAY_RULES = [
    array_reduction_tree,  # sum/mean/var... along axes: a tree of ReduceLevel stages
    array_scan,            # cumsum/cumprod: per-block totals, then each block offset by those before it
]

FUSION_RULES = [
    fuse_narrow,  # narrow chains as one Fused node: the view explain() prints (lowering fuses on its own)
]

__all__ = ["ARRAY_RULES", "BAG_RULES", "FUSION_RULES", "array_reduction_tree", "array_scan", "broadcast_join",
           "combine_distinct", "combine_frequencies", "combine_reduceby", "fuse_narrow", "groupby_count", "groupby_to_shuffle",
           "join_to_shuffles", "prune_count", "reduction_to_tree", "topk_to_tree"]
