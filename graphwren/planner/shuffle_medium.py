"""Where a shuffle's exchange lives: a named store, Redis when it fits, or the job's storage.

PyWren's sort kept inputs and outputs in S3 but shuffled through Redis:
an exchange of many small pieces is what object stores are slowest at.
Redis holds the data in memory, so only shuffles projected to fit under
``shuffle_redis_limit`` go there; bigger ones, and ones whose size the
planner cannot project, stay in the job's storage.
"""
from __future__ import annotations

from typing import Callable

from .explain import human_bytes


def choose(settings: dict, projected: Callable[[], int | None], unread: bool = False) -> tuple[str | None, str]:
    """(store URL or None for the job's storage, why) for one shuffle.

    ``projected()`` is called only when the choice depends on the size: for
    parquet it reads every file's footer. ``unread``: explain() left the
    input's size unread, so compute() makes the choice.
    """
    if settings.get("shuffle_storage"):
        return settings["shuffle_storage"], "shuffle_storage"
    redis = settings.get("shuffle_redis")
    if not redis:
        return None, ""
    limit = settings["shuffle_redis_limit"]
    projected_bytes = projected()
    if projected_bytes is None and unread:
        return None, (f"size unknown until compute: shuffle_redis {redis} if the shuffle projects <= "
                      f"shuffle_redis_limit {human_bytes(limit)}, else the job's storage")
    if projected_bytes is None:
        return None, "shuffle size unknown, so not shuffle_redis"
    size = f"shuffle ~{human_bytes(projected_bytes)}"
    if projected_bytes <= limit:
        return redis, f"{size} <= shuffle_redis_limit {human_bytes(limit)}"
    return None, f"{size} > shuffle_redis_limit {human_bytes(limit)}"
