"""Backends only invoke tasks; they never move data. Chosen by the ``backend`` setting."""
from __future__ import annotations

_factory = None   # settings -> backend or None: a stand-in for every backend (graphwren.sim's cloud)


def set_factory(factory) -> None:
    """Make ``factory(settings)`` the backend of every new driver (None from it: the named one); None undoes it."""
    global _factory
    _factory = factory


def get_backend(settings: dict):
    """The backend named by ``settings['backend']``, ready to invoke."""
    if _factory is not None:
        backend = _factory(settings)
        if backend is not None:
            return backend
    name = settings["backend"]
    if name == "local":
        from .local import get_pool
        return get_pool(settings["workers"])
    if name == "lambda":
        from .lambda_ import LambdaBackend
        return LambdaBackend(settings)
    raise ValueError(f"unknown graphwren backend {name!r}; choose 'local' or 'lambda'")


def planned_workers(settings: dict) -> int:
    """How many tasks the backend runs at once: what the planner sizes stages for."""
    if settings["backend"] == "lambda":
        return int(settings.get("lambda_max_workers") or settings.get("workers") or 1)
    return int(settings.get("workers") or 1)
