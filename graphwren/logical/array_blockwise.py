"""The blockwise node (dask's ``blockwise``/``map_blocks``): a user function over aligned blocks.

Each argument is an array with one index letter per dimension, or a scalar.
Output block b maps every letter to a block number; an argument reads the
block its letters name (block 0 where it has one block along a letter,
broadcasting). Letters absent from the output (contractions, dropped axes)
have one block in every argument: the collection rechunks them so first.
"""
from __future__ import annotations

from .array import ArrayExpr, _shape_str
from .expr import funcname


class Blockwise(ArrayExpr):
    """``func(*blocks, **kwargs)`` per output block; ``inds[i]`` are argument i's letters (None: a scalar).

    ``writable``: the function gets blocks it may change in place, as dask's do (a block read zero-copy
    from storage is copied first); False for graphwren's own functions that only read (those marked
    ``reads_only``, and matmul).
    """

    _parameters = ("func", "out_ind", "args", "inds", "shape_", "chunks_", "dtype_", "kwargs", "block_id",
                   "writable")
    _defaults = {"kwargs": (), "block_id": False, "writable": True}

    def _meta(self):
        return self.shape_, self.dtype_, self.chunks_

    def identity_operands(self):
        return [a for a, ind in zip(self.args, self.inds) if isinstance(a, ArrayExpr)
                and tuple(ind) == tuple(self.out_ind) and a.chunks == self.chunks]

    def _describe(self):
        return f"Blockwise({funcname(self.func)}) -> {_shape_str(self)}"
