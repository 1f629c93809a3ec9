"""graphwren: lazy bags, blocked arrays and delayed calls run as stateless tasks over storage.

The public API is loaded lazily (PEP 562): ``import graphwren`` costs almost
nothing, and a worker process, which imports only ``graphwren.runtime``,
never pays for the collections, the planner or networkx.
"""
from __future__ import annotations

import importlib

from .version import __version__

# public name -> (module, attribute or None for the module itself)
_LAZY = {
    "config": ("graphwren.config", None),
    "bag": ("graphwren.bag", None),
    "array": ("graphwren.array", None),
    "delayed": ("graphwren.delayed", None),   # the module, callable as dask.delayed (see graphwren/delayed.py)
    "Delayed": ("graphwren.delayed", "Delayed"),
    "compute": ("graphwren.delayed", "compute"),
    "persist": ("graphwren.delayed", "persist"),
    "Executor": ("graphwren.executor", "Executor"),
    "ParameterServer": ("graphwren.paramserver", "ParameterServer"),
    "FunctionExecutor": ("graphwren.executor", "FunctionExecutor"),
    "default_executor": ("graphwren.executor", "default_executor"),
    "get_result": ("graphwren.executor", "get_result"),
    "ALWAYS": ("graphwren.executor", "ALWAYS"),
    "wait": ("graphwren.executor", "wait"),
    "get_all_results": ("graphwren.executor", "get_all_results"),
    "ANY_COMPLETED": ("graphwren.executor", "ANY_COMPLETED"),
    "ALL_COMPLETED": ("graphwren.executor", "ALL_COMPLETED"),
    "FIRST_COMPLETED": ("graphwren.executor", "FIRST_COMPLETED"),
    "FIRST_EXCEPTION": ("graphwren.executor", "FIRST_EXCEPTION"),
    "last_job": ("graphwren.observe", "last_job"),
    "load_job": ("graphwren.observe", "load_job"),
    "report": ("graphwren.observe", "report"),
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'graphwren' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
