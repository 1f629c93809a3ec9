"""``import graphwren.array as da``: blocked arrays with numpy's and dask.array's API (see graphwren.collections.array).

The names come from ``collections.array.EXPORTS``: constructors, the
``random`` module, numpy's elementwise functions (generated from its
ufuncs), reductions, shape functions, blockwise/map_blocks/einsum.
"""
from .collections.array import EXPORTS as _EXPORTS

globals().update(_EXPORTS)
__all__ = sorted(_EXPORTS)
