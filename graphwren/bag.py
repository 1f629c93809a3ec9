"""``import graphwren.bag as db``: lazy bags with dask.bag's API (see graphwren.collections.bag).

``graphwren.bag.random`` is dask.bag.random (sample, choices).
"""
import sys as _sys

from .collections import bag_random as random  # noqa: F401 - dask.bag.random
from .collections.bag import *  # noqa: F401,F403 - this module is the public face of collections.bag
from .collections.bag import __all__ as _core
from .collections.bag_io import *  # noqa: F401,F403
from .collections.bag_io import __all__ as _io
from .collections.bag_lazy import LazyFrame, LazyTable, LazyWrite  # noqa: F401
from .collections.bag_str import StringAccessor  # noqa: F401
from .delayed import compute  # noqa: F401 - dask.bag.compute is dask.compute: graphwren.compute

__all__ = [*_core, *_io, "random", "compute", "LazyWrite", "LazyFrame", "LazyTable", "StringAccessor"]
_sys.modules.setdefault(__name__ + ".random", random)   # `import graphwren.bag.random` works too
