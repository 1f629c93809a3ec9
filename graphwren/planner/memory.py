"""One peak-memory model: the bytes one task of a stage projects to hold, checked for every stage.

Cubed's rule: a plan states its projected per-task memory before it runs,
and a stage over the bound fails at plan time with advice, not as a worker
killed half-way through. Every stage the planner builds gets a
``peak_memory`` from here (None where its input's size is unknown), and
``check`` runs over every stage of every plan, bag or array.

The numbers are upper-bound estimates, not measurements:

* a worker holds ``RUNTIME_OVERHEAD`` before any data (the interpreter,
  numpy, pyarrow; measured ~150 MB);
* a bag task streams records through its ops, but its sink holds the whole
  output partition as Python objects and then its encoded copy:
  ``RECORD_EXPANSION`` times the bytes it reads, as Python objects of small
  records (str, int, tuples) are several times their encoded size;
* an array task holds the blocks its kernels have in use (``array.py``
  computes those), plus the encoder's copy of its output.
"""
from __future__ import annotations

from ..errors import ProjectedMemoryError
from ..runtime.plan import Plan
from .explain import human_bytes

#: What a worker process holds besides its data (interpreter, numpy, pyarrow; measured ~150 MB).
RUNTIME_OVERHEAD = 160 * 1024**2
#: Bytes a bag task holds per byte it reads: Python objects of the records, then their encoding.
RECORD_EXPANSION = 4


def bound(settings: dict) -> int:
    """The bytes a task may use: ``max_task_memory``, and on Lambda no more than the function has."""
    limit = int(settings["max_task_memory"])
    if settings.get("backend") == "lambda" and settings.get("lambda_memory"):
        limit = min(limit, int(settings["lambda_memory"]) * 1024**2)
    return limit


def bag_task(read_bytes: int | None) -> int | None:
    """Peak of a bag task that reads ``read_bytes`` (its largest input), or None if unknown."""
    if read_bytes is None:
        return None
    return RUNTIME_OVERHEAD + RECORD_EXPANSION * int(read_bytes)


def largest_bag_read(bound: int) -> int:
    """The most bytes a bag task may read and still project under ``bound`` (the inverse of bag_task)."""
    return max(1, (bound - RUNTIME_OVERHEAD) // RECORD_EXPANSION)


def array_task(held_bytes: int) -> int:
    """Peak of an array task whose kernels hold ``held_bytes`` of blocks at once."""
    return RUNTIME_OVERHEAD + int(held_bytes)


def matmul_blocks(out: int, a: int, b: int) -> int:
    """Block bytes a streaming matmul task holds: ``out`` the output block, ``a``/``b`` one input block each.

    The accumulator, the product temporary, the pair in use and the pair
    being prefetched; at commit, the accumulator and the encoder's two copies.
    """
    return max(2 * out + 2 * (a + b), 3 * out)


def check(plan: Plan, bound: int, advice: dict[str, str]) -> None:
    """Raise ProjectedMemoryError for the first stage whose projected peak is over ``bound``.

    ``advice[stage name]`` says how to make that stage's tasks smaller.
    """
    for stage in plan.stages:
        if stage.external is None and stage.peak_memory is not None and stage.peak_memory > bound:
            raise ProjectedMemoryError(
                f"stage {stage.name} ({stage.label or 'no label'}): a task would need "
                f"~{human_bytes(stage.peak_memory)}, over max_task_memory={human_bytes(bound)}; "
                f"{advice.get(stage.name) or 'use more, smaller partitions'}, or raise max_task_memory")
