"""``with gw.report("job.html"):``: one HTML page of every job that ends in this process inside the block."""
from __future__ import annotations

import contextlib
import os
import threading

from ..runtime import stats


@contextlib.contextmanager
def report(path):
    """Write ``path`` each time a job ends inside the block, with every job so far (as dask's
    ``performance_report`` covers every computation in its block); yields the list of their ``Job``s."""
    from .html import write
    from .job import Job
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"report needs a file name for the HTML page, got {path!r}")
    jobs: list[Job] = []
    lock = threading.Lock()   # Executor jobs end on their own threads

    def on_job(record: stats.JobRecord) -> None:
        with lock:
            jobs.append(Job(record))
            write(list(jobs), path)

    stats.listen(on_job)
    try:
        yield jobs
    finally:
        stats.unlisten(on_job)
