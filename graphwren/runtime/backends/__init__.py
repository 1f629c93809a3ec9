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
