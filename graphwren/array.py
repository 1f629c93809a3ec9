"""``import graphwren.array as da``: blocked arrays with numpy's API (see graphwren.collections.array)."""
from .collections.array import *  # noqa: F401,F403 - this module is the public face of collections.array
from .collections.array import __all__  # noqa: F401
