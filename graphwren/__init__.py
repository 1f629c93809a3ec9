"""graphwren: lazy bags and blocked arrays run as stateless tasks over storage."""
from . import config
from .collections import array, bag
from .executor import (ALL_COMPLETED, ANY_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, Executor,
                       get_all_results, wait)

__version__ = "0.1.0"

__all__ = ["config", "bag", "array", "Executor", "wait", "get_all_results", "ANY_COMPLETED", "ALL_COMPLETED",
           "FIRST_COMPLETED", "FIRST_EXCEPTION", "__version__"]
