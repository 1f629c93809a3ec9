"""Logical nodes of bag ops over several bags or a task's place: zip, aligned map, concat, product,
accumulate, a lazy take, and the from_url and read_avro sources (lowered by planner/bag_multi.py)."""
from __future__ import annotations

from .bag import BagExpr
from .expr import funcname


class Aligned(BagExpr):
    """Partition i of every bag in ``frames`` read together, with the values of ``items`` broadcast.

    ``combine(partitions, values)`` yields the records (zip, an aligned map or
    map_partitions); every bag must have as many partitions as the first.
    """

    _parameters = ("frames", "items", "combine")

    @property
    def npartitions(self):
        return self.frames[0].npartitions

    def _describe(self):
        return (f"Aligned({type(self.combine).__name__}({funcname(getattr(self.combine, 'fn', None))}), "
                f"bags={len(self.frames)}, items={len(self.items)})")


class Concat(BagExpr):
    """The partitions of every bag, one after another (bag.concat)."""

    _parameters = ("frames",)

    @property
    def npartitions(self):
        return sum(f.npartitions for f in self.frames)

    @property
    def projected_bytes(self):
        sizes = [f.projected_bytes for f in self.frames]
        return None if any(s is None for s in sizes) else sum(sizes)


class Product(BagExpr):
    """Every (left, right) pair: partition i*m + j pairs left partition i with right partition j."""

    _parameters = ("left", "right")

    @property
    def npartitions(self):
        return self.left.npartitions * self.right.npartitions

    @property
    def projected_bytes(self):
        return None   # a product's size is not its inputs'


class Accumulate(BagExpr):
    """itertools.accumulate over the whole bag in order, partitions kept (one task runs it)."""

    _parameters = ("frame", "binop", "initial")

    @property
    def npartitions(self):
        return self.frame.npartitions


class Take(BagExpr):
    """The first ``k`` records of the first ``nparts`` partitions (all if None), in one partition."""

    _parameters = ("frame", "k", "nparts")

    @property
    def npartitions(self):
        return 1


class FromURL(BagExpr):
    """The lines of each URL, one partition per URL (bag.from_url)."""

    _parameters = ("urls",)

    @property
    def npartitions(self):
        return len(self.urls)

    @property
    def projected_bytes(self):
        return None


class ReadAvro(BagExpr):
    """Records of avro files, one partition per file (fastavro)."""

    _parameters = ("files",)

    @property
    def npartitions(self):
        return len(self.files)

    @property
    def projected_bytes(self):
        return sum(f[2] for f in self.files)


MULTI_NODES = (Aligned, Concat, Product, Accumulate, Take, FromURL, ReadAvro)
