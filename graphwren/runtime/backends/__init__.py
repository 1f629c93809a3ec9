"""Backends only invoke tasks; they never move data. Chosen by the ``backend`` setting."""
from __future__ import annotations


def get_backend(settings: dict):
    """The backend named by ``settings['backend']``, ready to invoke."""
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
