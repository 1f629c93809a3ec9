"""``with gw.report("job.html"):``: write the HTML report of every job that ends inside the block."""
from __future__ import annotations

import contextlib
import os

from ..runtime import stats


@contextlib.contextmanager
def report(path: str):
    """Every job that ends in this process while the block runs is written to ``path`` (the last one wins,
    as dask's ``performance_report`` keeps one file); yields the list of their ``Job``s."""
    from .job import Job
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"report needs a file name for the HTML page, got {path!r}")
    jobs: list[Job] = []

    def write(record: stats.JobRecord) -> None:
        job = Job(record)
        jobs.append(job)
        job.report(path)

    stats.listen(write)
    try:
        yield jobs
    finally:
        stats.unlisten(write)
