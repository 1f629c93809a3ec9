"""The one place settings are resolved.

Precedence, highest first: keyword arguments, ``config.set(...)``,
environment variables ``GRAPHWREN_<NAME>``, ``~/.graphwren/config.toml``
(or the file named by ``GRAPHWREN_CONFIG``), then the defaults below.
"""
from __future__ import annotations

import builtins
import contextlib
import os
import tempfile
import threading

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def _default_storage() -> str:
    user = os.environ.get("USER") or str(os.getuid())
    return "file://" + os.path.join(tempfile.gettempdir(), f"graphwren-{user}")


DEFAULTS = {
    "storage": None,          # URL of the store; None -> a directory under the temp dir
    "backend": "local",       # "local" or "lambda"
    "workers": None,          # local worker processes; None -> one per core
    "retries": 0,             # re-runs of a task whose *user code* raised
    "task_retries": 2,        # re-runs of a task whose worker died or timed out
    "task_timeout": 900.0,    # seconds before an attempt counts as lost
    "speculation": True,      # launch a backup copy of a straggling task
    "progress": True,         # a progress bar for long jobs on a terminal
    "progress_delay": 2.0,    # seconds a job runs before its bar appears
    "keep": False,            # keep a job's keys after its results are fetched
    "inline_limit": 64 * 1024,  # results up to this size ride in the commit record
    "poll_interval": 0.05,    # longest wait between two LISTs of the commit records
    "max_task_memory": 2 * 1024**3,  # bytes a task may project to use (arrays)
    "shuffle_storage": None,  # store URL for every shuffle exchange; None -> chosen by size
    "shuffle_redis": None,    # redis:// URL shuffles may use when small enough (PyWren's sort)
    "shuffle_redis_limit": 4 * 1024**3,  # projected bytes above which a shuffle stays in storage
    "lambda_function": None,  # name of the deployed function (lambda backend)
    "lambda_max_workers": 1000,  # invocations in flight (lambda backend)
    "lambda_memory": 2048,    # MB; picks the default function graphwren-<version>-<memory>mb
    "lambda_endpoint": None,  # Lambda API URL (a local emulator); None -> AWS / AWS_ENDPOINT_URL_LAMBDA
}

_TYPES = {
    "workers": int, "retries": int, "task_retries": int, "task_timeout": float,
    "speculation": bool, "progress": bool, "progress_delay": float, "keep": bool,
    "inline_limit": int, "poll_interval": float, "max_task_memory": int, "shuffle_redis_limit": int,
    "lambda_max_workers": int, "lambda_memory": int,
}

_global_overrides: list[dict] = []
_lock = threading.Lock()


def _coerce(name: str, value):
    kind = _TYPES.get(name)
    if kind is None or value is None or isinstance(value, kind):
        return value
    if kind is bool and isinstance(value, str):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"graphwren config {name!r}: {value!r} is not a boolean")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"graphwren config {name!r}: {value!r} is not a valid {kind.__name__}") from None


def _check_names(settings: dict, where: str) -> None:
    unknown = sorted(builtins.set(settings) - builtins.set(DEFAULTS))
    if unknown:
        raise TypeError(f"unknown graphwren setting(s) {unknown} in {where}; known: {sorted(DEFAULTS)}")


def _file_settings() -> dict:
    path = os.environ.get("GRAPHWREN_CONFIG") or os.path.expanduser("~/.graphwren/config.toml")
    if not os.path.exists(path):
        return {}
    with open(path, "rb") as f:
        data = tomllib.load(f)
    data = data.get("graphwren", data)
    _check_names(data, path)
    return data


def _env_settings() -> dict:
    out = {}
    for name in DEFAULTS:
        value = os.environ.get("GRAPHWREN_" + name.upper())
        if value is not None and value != "":
            out[name] = value
    return out


def get(name: str, override=None):
    """The effective value of one setting."""
    return resolve({name: override} if override is not None else {})[name]


def resolve(kwargs: dict | None = None) -> dict:
    """All settings, with ``kwargs`` (None values ignored) taking precedence."""
    kwargs = {k: v for k, v in (kwargs or {}).items() if v is not None}
    _check_names(kwargs, "keyword arguments")
    merged = dict(DEFAULTS)
    merged.update(_file_settings())
    merged.update(_env_settings())
    with _lock:
        for layer in _global_overrides:
            merged.update(layer)
    merged.update(kwargs)
    out = {name: _coerce(name, value) for name, value in merged.items()}
    if out["storage"] is None:
        out["storage"] = _default_storage()
    if out["workers"] is None:
        out["workers"] = os.cpu_count() or 1
    return out


class set(contextlib.ContextDecorator):  # noqa: A001 - mirrors dask.config.set
    """Override settings: for the process, or inside a ``with`` block.

    ``gw.config.set(storage="redis://...")`` applies at once, as dask's does;
    used as a context manager it is undone on exit.
    """

    def __init__(self, **settings):
        _check_names(settings, "config.set")
        self._layer = {k: _coerce(k, v) for k, v in settings.items()}
        with _lock:
            _global_overrides.append(self._layer)

    def __enter__(self):
        with _lock:  # re-entered as a decorator after a call's exit removed it
            if not any(layer is self._layer for layer in _global_overrides):
                _global_overrides.append(self._layer)
        return self

    def __exit__(self, *exc):
        with _lock:
            if any(layer is self._layer for layer in _global_overrides):
                _global_overrides[:] = [l for l in _global_overrides if l is not self._layer]
        return False


def reset() -> None:
    """Drop every ``config.set`` override (tests use this)."""
    with _lock:
        _global_overrides.clear()
