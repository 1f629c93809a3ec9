"""The block-graph node: output block b computed from an explicit list of input blocks (blocked linear algebra).

Where ``Blockwise`` pairs blocks by index letters, a ``BlockGraph`` names,
for every output block, exactly which blocks of which inputs its task reads,
in order: the shape of numpywren's DAGs (a Cholesky's panel reads the
diagonal block and one block of the column; a triangular solve's block row
reads a row of L and the solved blocks above it). ``held`` is how many input
blocks ``func`` keeps at once, for the memory bound.
"""
from __future__ import annotations

from .array import ArrayExpr, _shape_str
from .expr import funcname


class BlockGraph(ArrayExpr):
    """``func(idx, blocks)`` per output block idx; ``table[t]`` lists (input, block index) pairs it reads."""

    _parameters = ("func", "args", "table", "shape_", "chunks_", "dtype_", "held", "label")
    _defaults = {"held": 2, "label": ""}
    kind = "wide"

    def _meta(self):
        return self.shape_, self.dtype_, self.chunks_

    def _describe(self):
        return f"BlockGraph({self.label or funcname(self.func)}) -> {_shape_str(self)}"
