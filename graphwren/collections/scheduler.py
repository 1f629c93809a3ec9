"""dask's compute() keywords onto graphwren settings: ``scheduler=``, ``num_workers=``, ``optimize_graph=``.

dask's schedulers choose where tasks run; graphwren always runs stateless
tasks through storage, on the configured backend. So:

==============================================  ===========================================
``scheduler=``                                  graphwren
==============================================  ===========================================
``"threads"``, ``"threading"``,                 ``backend="local"`` (worker processes: graphwren
``"processes"``, ``"multiprocessing"``          has no thread pool; tasks never share memory)
``"sync"``, ``"synchronous"``,                  ``backend="local", workers=1``: one task at a
``"single-threaded"``                           time, in order of the plan (still a worker process)
``"local"``, ``"lambda"``                       that backend (graphwren's own names)
==============================================  ===========================================

``num_workers=n`` is ``workers=n``; ``optimize_graph=`` and ``traverse=``
are accepted and ignored (the plan is always optimized). Anything else,
such as a distributed Client, is refused with the choices.
"""
from __future__ import annotations

_BACKENDS = {
    "threads": {"backend": "local"}, "threading": {"backend": "local"},
    "processes": {"backend": "local"}, "multiprocessing": {"backend": "local"},
    "sync": {"backend": "local", "workers": 1}, "synchronous": {"backend": "local", "workers": 1},
    "single-threaded": {"backend": "local", "workers": 1},
    "local": {"backend": "local"}, "lambda": {"backend": "lambda"},
}


def settings_for(kwargs: dict) -> dict:
    """graphwren settings for compute()'s keyword arguments, dask's among them."""
    if not any(k in kwargs for k in ("scheduler", "num_workers", "optimize_graph", "traverse", "get")):
        return kwargs
    out = dict(kwargs)
    out.pop("optimize_graph", None)
    out.pop("traverse", None)
    if out.pop("get", None) is not None:
        raise TypeError("compute(get=...) is dask's old scheduler hook; graphwren runs on its backend: "
                        "pass scheduler= or backend=")
    name = out.pop("scheduler", None)
    workers = out.pop("num_workers", None)
    if name is not None:
        if not isinstance(name, str) or name not in _BACKENDS:
            raise ValueError(f"compute(scheduler={name!r}): graphwren knows {', '.join(sorted(_BACKENDS))} "
                             f"(see graphwren/collections/scheduler.py for what each means here)")
        for key, value in _BACKENDS[name].items():
            out.setdefault(key, value)
    if workers is not None:
        out["workers"] = workers
    return out
