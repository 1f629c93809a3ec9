"""Which task the running code belongs to, so a task's side effects can be made idempotent.

Lambda delivers an event at least once, and a failed task is retried: the
same task may run several times. Its output is committed once (the commit
rule), but a side effect such as a parameter server's add would apply once
per execution. ``current()`` names the task an execution runs (the same job,
stage and index for every delivery and retry), so such an effect can carry
an id that repeats across executions and be skipped the second time.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses


@dataclasses.dataclass(frozen=True, eq=False)
class Execution:
    """One execution of one task; ``eq=False``: two executions of the same task are distinct objects."""

    job: str
    stage: str
    task: int


_current: contextvars.ContextVar[Execution | None] = contextvars.ContextVar("graphwren_execution", default=None)


def current() -> Execution | None:
    """The execution the calling code runs in, or None outside a task (or in a thread it started)."""
    return _current.get()


@contextlib.contextmanager
def running(job: str, stage: str, task: int):
    token = _current.set(Execution(job, stage, task))
    try:
        yield
    finally:
        _current.reset(token)
