"""The one place settings are resolved.

Precedence, highest first: keyword arguments, ``config.set(...)``,
environment variables ``GRAPHWREN_<NAME>``, ``~/.graphwren/config.toml``
(or the file named by ``GRAPHWREN_CONFIG``), then the defaults below.

Every value is checked where it enters, and a bad one is an error naming the
setting and where it came from (keyword, config.set, env GRAPHWREN_X, file
PATH). A named config file that is missing, or any config file that is not
valid TOML, is an error naming the file. An environment variable
``GRAPHWREN_*`` that is no setting gets one warning naming the closest one.
``sources()`` says where each effective value came from (``graphwren config``).

Why not donfig (dask's engine): it reads YAML, not this TOML file; it merges
every source into one dict, so it cannot say where a value came from; it
reads the environment once at start (these tests and users change it
between calls), ``literal_eval``s env values instead of checking them against
a type, ignores a missing named file and unknown names, and its ``set`` is no
decorator. Adopting it would mean keeping most of this module on top of it.
"""
from __future__ import annotations

import builtins
import contextlib
import difflib
import json
import os
import threading
import warnings

from .errors import ConfigError, StorageError, StoreURLError, UnknownSetting

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


class ConfigWarning(UserWarning):
    """An environment variable that looks like a setting but is none."""


def _default_storage() -> str:
    # The user's own cache directory (XDG), not a shared, predictable folder under /tmp.
    cache = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(cache):  # the XDG spec says to ignore a relative path
        cache = os.path.join(os.path.expanduser("~"), ".cache")
    return "file://" + os.path.join(cache, "graphwren")


DEFAULTS = {
    "storage": None,          # URL of the store; None -> $XDG_CACHE_HOME/graphwren (~/.cache/graphwren)
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
    "task_log_limit": 64 * 1024,  # characters of a task's prints and logs its record keeps; 0: none
    "poll_interval": 0.05,    # longest wait between two LISTs of the commit records
    "max_task_memory": 2 * 1024**3,  # bytes a task may project to use (arrays)
    "shuffle_storage": None,  # store URL for every shuffle exchange; None -> chosen by size
    "shuffle_redis": None,    # redis:// URL shuffles may use when small enough (PyWren's sort)
    "shuffle_redis_limit": 4 * 1024**3,  # projected bytes above which a shuffle stays in storage
    "columnar": True,         # run traced user functions as Arrow kernels where exactly equivalent
    "exchange_levels": "auto",  # "auto": a two-level exchange where S3 requests would dominate; "1"/"2": always
    "key_prefixes": 0,        # prefixes an exchange's outputs spread over; 0: as S3's per-prefix GET rate needs
    "lambda_function": None,  # name of the deployed function (lambda backend)
    "lambda_max_workers": 1000,  # invocations in flight (lambda backend)
    "lambda_memory": 2048,    # MB; picks the default function graphwren-<version>-<memory>mb
    "lambda_endpoint": None,  # Lambda API URL (a local emulator); None -> AWS / AWS_ENDPOINT_URL_LAMBDA
    "lambda_architecture": "x86_64",  # x86_64 or arm64: which Lambda GB-second price applies
    "prices": None,           # {name: $} over runtime/cost.py's DEFAULT_PRICES (Lambda, S3, your Redis node)
    "report": None,           # an HTML file: compute(report="job.html") writes the job's report there
}

_TYPES = {
    "storage": str, "backend": str, "workers": int, "retries": int, "task_retries": int,
    "task_timeout": float, "speculation": bool, "progress": bool, "progress_delay": float,
    "keep": bool, "inline_limit": int, "task_log_limit": int, "poll_interval": float, "max_task_memory": int,
    "shuffle_storage": str, "shuffle_redis": str, "shuffle_redis_limit": int,
    "columnar": bool, "exchange_levels": str, "key_prefixes": int, "lambda_function": str,
    "lambda_max_workers": int, "lambda_memory": int, "lambda_endpoint": str,
    "lambda_architecture": str, "prices": dict, "report": str,
}
_POSITIVE = {"workers", "task_timeout", "poll_interval", "lambda_max_workers", "lambda_memory"}
_NON_NEGATIVE = {"retries", "task_retries", "progress_delay", "inline_limit", "task_log_limit", "max_task_memory",
                 "shuffle_redis_limit", "key_prefixes"}
_CHOICES = {"backend": ("local", "lambda"), "exchange_levels": ("auto", "1", "2"),
            "lambda_architecture": ("x86_64", "arm64")}
_URL_PREFIXES = {"shuffle_redis": ("redis://", "rediss://"), "lambda_endpoint": ("http://", "https://")}
_STORE_URLS = ("storage", "shuffle_storage")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")

CONFIG_ENV = "GRAPHWREN_CONFIG"
HOME_CONFIG = os.path.join("~", ".graphwren", "config.toml")
# Other GRAPHWREN_* variables some part of graphwren reads: no warning for these.
# Variables graphwren reads that are not settings: the config file's path, the deployed
# version and timeout margin (in Lambda), and the local Lambda endpoint's token.
KNOWN_ENV = {CONFIG_ENV, "GRAPHWREN_VERSION", "GRAPHWREN_LAMBDA_TIMEOUT_MARGIN", "GRAPHWREN_LAMBDA_TOKEN"}

_global_overrides: list[dict] = []
_lock = threading.Lock()
_warned: builtins.set[str] = builtins.set()


def _env_name(name: str) -> str:
    return "GRAPHWREN_" + name.upper()


def _closest(name: str) -> str:
    close = difflib.get_close_matches(name, DEFAULTS, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(name: str, value, where: str):
    """value as the setting's type, or a ConfigError naming the setting and ``where``."""
    if value is None:
        return None
    kind = _TYPES[name]

    def bad(what: str) -> ConfigError:
        return ConfigError(f"graphwren setting {name!r} = {value!r} (from {where}) is not {what}")

    if kind is bool:
        if isinstance(value, bool):
            out = value
        elif isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            out = value.strip().lower() in _TRUE
        else:
            raise bad("a boolean (true/false, yes/no, on/off, 1/0)")
    elif kind is dict:
        from .runtime.cost import check_prices
        if isinstance(value, str):   # an environment variable: a JSON object
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise bad(f"a JSON object of prices ({exc})") from None
        return check_prices(value, where)
    elif kind is str:
        if not isinstance(value, str):
            raise bad("a string")
        out = value
    else:  # int or float; bool is an int to Python but never a count here
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise bad(f"a valid {kind.__name__}")
        if kind is int and isinstance(value, float):
            raise bad("a valid int (a whole number)")
        try:
            out = kind(value.strip() if isinstance(value, str) else value)
        except ValueError:
            raise bad(f"a valid {kind.__name__}") from None
        if name in _POSITIVE and not out > 0:
            raise bad("a positive number")
        if name in _NON_NEGATIVE and not out >= 0:
            raise bad("zero or more")
    if name in _CHOICES and out not in _CHOICES[name]:
        raise bad("one of " + ", ".join(map(repr, _CHOICES[name])))
    if name in _URL_PREFIXES and not out.startswith(_URL_PREFIXES[name]):
        raise bad("a URL starting " + " or ".join(_URL_PREFIXES[name]))
    if name in _STORE_URLS:
        from .runtime.storage import check_url
        try:
            check_url(out)
        except StorageError as exc:
            raise StoreURLError(f"{exc} (graphwren setting {name!r}, from {where})") from None
    return out


def _check_names(settings: dict, where: str) -> None:
    unknown = sorted(builtins.set(settings) - builtins.set(DEFAULTS))
    if unknown:
        hints = "".join(_closest(n) for n in unknown[:1])
        raise UnknownSetting(f"unknown graphwren setting(s) {unknown} in {where}{hints}; "
                             f"known: {sorted(DEFAULTS)}")


def config_file() -> tuple[str | None, bool]:
    """(path of the config file in use, whether it was named by GRAPHWREN_CONFIG)."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        return named, True
    home = os.path.expanduser(HOME_CONFIG)
    return (home if os.path.exists(home) else None), False


def _file_settings() -> tuple[str | None, dict]:
    path, named = config_file()
    if path is None:
        return None, {}
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        if not named:
            return None, {}  # removed between the check and the open
        raise ConfigError(f"config file {path} named by {CONFIG_ENV} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:  # its message ends "(at line L, column C)"
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    data = data.get("graphwren", data)
    _check_names(data, f"config file {path}")
    return path, data


def _env_settings() -> dict:
    out = {}
    for name in DEFAULTS:
        value = os.environ.get(_env_name(name))
        if value is not None and value != "":
            out[name] = value
    _warn_unknown_env()
    return out


def _warn_unknown_env() -> None:
    known = {_env_name(n) for n in DEFAULTS} | KNOWN_ENV
    for var in os.environ:
        if not var.startswith("GRAPHWREN_") or var in known or var in _warned:
            continue
        _warned.add(var)
        close = difflib.get_close_matches(var[len("GRAPHWREN_"):].lower(), DEFAULTS, n=1, cutoff=0.6)
        hint = f"; did you mean {_env_name(close[0])} (setting {close[0]!r})?" if close else ""
        warnings.warn(f"environment variable {var} is not a graphwren setting and is ignored{hint}",
                      ConfigWarning, stacklevel=4)


def sources(kwargs: dict | None = None) -> dict[str, tuple[object, str]]:
    """Every effective setting as ``(value, where it came from)``, with ``kwargs`` on top."""
    kwargs = {k: v for k, v in (kwargs or {}).items() if v is not None}
    _check_names(kwargs, "keyword arguments")
    out: dict[str, tuple[object, str]] = {name: (value, "default") for name, value in DEFAULTS.items()}
    path, data = _file_settings()
    for name, value in data.items():
        out[name] = (_coerce(name, value, f"file {path}"), f"file {path}")
    for name, value in _env_settings().items():
        where = f"env {_env_name(name)}"
        out[name] = (_coerce(name, value, where), where)
    with _lock:
        layers = list(_global_overrides)
    for layer in layers:  # coerced when set
        out.update((name, (value, "config.set")) for name, value in layer.items())
    for name, value in kwargs.items():
        out[name] = (_coerce(name, value, "keyword argument"), "keyword")
    if out["storage"][0] is None:
        out["storage"] = (_default_storage(), out["storage"][1])
    if out["workers"][0] is None:
        out["workers"] = (os.cpu_count() or 1, out["workers"][1] + " (one per core)")
    return out


class Settings(dict):
    """Every setting, resolved: what ``resolve`` returns, and passes through unchanged when given one."""


def resolve(kwargs: dict | None = None) -> Settings:
    """All settings, with ``kwargs`` (None values ignored) taking precedence."""
    if isinstance(kwargs, Settings):   # resolved already: the file and environment were read then
        return kwargs
    return Settings((name, value) for name, (value, _) in sources(kwargs).items())


def get(name: str, override=None):
    """The effective value of one setting."""
    return resolve({name: override} if override is not None else {})[name]


class set(contextlib.ContextDecorator):  # noqa: A001 - mirrors dask.config.set
    """Override settings: for the process, or inside a ``with`` block.

    ``gw.config.set(storage="redis://...")`` applies at once, as dask's does;
    used as a context manager it is undone on exit. ``None`` restores a
    setting's default over whatever the file or environment said.
    """

    def __init__(self, **settings):
        _check_names(settings, "config.set")
        self._layer = {k: _coerce(k, v, "config.set") for k, v in settings.items()}
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
