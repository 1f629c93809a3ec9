"""Exception types that graphwren itself raises (user exceptions travel unchanged)."""
from __future__ import annotations


class GraphwrenError(Exception):
    """Base class for errors raised by graphwren itself."""


class StorageError(GraphwrenError):
    """A store could not be opened or used (bad URL, endpoint down, missing bucket, refused request).

    ``url`` is the store's URL, ``key`` the key or prefix the operation ``op`` was for
    (None when opening). Keyword-only so that pickling (which replays only the
    message) restores them from the instance dict.
    """

    def __init__(self, message: str = "", *, url: str | None = None, key: str | None = None,
                 op: str | None = None):
        super().__init__(message)
        self.url, self.key, self.op = url, key, op


class TransientStorageError(StorageError):
    """A storage request failed in a way that may pass (timeout, dropped connection, 5xx,
    throttling) and kept failing through every retry. The task did not fail: its attempt
    was lost, and running it again may succeed."""


class MissingKey(GraphwrenError, KeyError):
    """A key that was expected in storage is not there."""

    def __str__(self):  # KeyError quotes its argument; a plain message reads better
        return str(self.args[0]) if self.args else "missing key"


class FieldError(GraphwrenError, KeyError):
    """A record has no such field (a key given by name or position)."""

    def __str__(self):
        return str(self.args[0]) if self.args else "no such field"


class TaskLost(GraphwrenError):
    """A task ran out of attempts because its worker died or it timed out every time."""


class RemoteError(GraphwrenError):
    """Stands in for a user exception that could not be pickled back from the worker."""

    def __init__(self, type_name, message, traceback_text=""):
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.remote_traceback = traceback_text


class WorkerStartError(GraphwrenError):
    """Local worker processes died before they could take a task (the message quotes their stderr)."""


class TaskMemoryError(GraphwrenError, MemoryError):
    """A task went over ``max_task_memory`` and was killed before it could exhaust the machine."""


class IntegrityError(GraphwrenError):
    """An object in storage failed its integrity check (a keyed BLAKE3 tag): graphwren refused to decode or unpickle it."""


class PlanError(GraphwrenError, ValueError):
    """A computation that cannot be planned as asked: found before any task runs."""


class ArrayError(PlanError):
    """A blocked-array operation that cannot be planned (raised at graph-building time)."""


class ProjectedMemoryError(PlanError):
    """A stage whose projected per-task memory is over ``max_task_memory`` (raised at plan time)."""


class RewriteError(GraphwrenError):
    """The optimizer's rules did not converge: they looped or kept growing the plan (names rule and node)."""


# -- raised by one part of graphwren each; kept importable from those modules too -------------------
class ModuleMissingOnWorkers(GraphwrenError, ModuleNotFoundError):
    """A stage needs an installed package that the workers' image does not have (runtime.shipping)."""


class LambdaTimeout(GraphwrenError):
    """A task was about to outlive its Lambda function's timeout (runtime.lambda_handler)."""


class JobCancelled(GraphwrenError):
    """The job was cancelled (Ctrl-C, ``Executor.shutdown(cancel_futures=True)``, or interpreter exit)."""


class LambdaSetupError(GraphwrenError):
    """The Lambda backend cannot run: no credentials, no function, wrong version, bad image."""


class LambdaInvokeError(GraphwrenError):
    """An invocation could not be made (after retrying throttling and transient errors)."""


class DeployError(GraphwrenError, RuntimeError):
    """Deployment to Lambda cannot proceed; the message names the cause and the fix."""


class ConfigError(GraphwrenError, ValueError):
    """A setting has a bad value, or a config file is missing or malformed."""


class UnknownSetting(ConfigError, TypeError):
    """A setting name that graphwren does not have."""


class StoreURLError(StorageError, ConfigError):
    """A store URL setting that is no store URL (a typo such as ``s3:/bucket``)."""


class SandboxError(GraphwrenError):
    """The sandbox's servers are not installed or did not start."""


class ParameterServerError(GraphwrenError):
    """A parameter server call failed: a tensor missing or mismatched, a server unreachable or lost data."""
