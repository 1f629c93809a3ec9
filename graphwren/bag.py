"""``import graphwren.bag as db``: lazy bags with dask.bag's API (see graphwren.collections.bag)."""
from .collections.bag import *  # noqa: F401,F403 - this module is the public face of collections.bag
from .collections.bag import __all__  # noqa: F401
