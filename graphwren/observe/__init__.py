"""See a job: its statistics, timeline, task logs and cost, from the record the driver kept.

``gw.last_job()`` is the most recent job of this process; ``load_job(id)``
reads a kept one (``keep=True``) back from storage. A ``Job`` prints a
per-stage ``summary()``, returns a task's ``logs()``, draws its timeline
(``plot()``) and writes the HTML ``report()``. Nothing here runs on a worker.
"""
from __future__ import annotations

from .job import Job, last_job, load_job, recent_jobs
from .reporting import report

__all__ = ["Job", "last_job", "load_job", "recent_jobs", "report"]
