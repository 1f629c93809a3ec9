"""What an Executor stage runs inside a worker: a user function over its chunk of items, and the reduce.

They live in tasks/ so a worker running ``Executor.map`` imports only this
module and the runtime, never the executor and its driver.
"""
from __future__ import annotations

import reprlib

from ..runtime.remote_errors import capture, restore
from .shipped import Shipped


def describe(fn) -> str:
    """A function's name in messages and stage labels."""
    return getattr(fn, "__qualname__", None) or repr(fn)


class Failed:
    """A user exception standing in for one item's result."""

    def __init__(self, blob: bytes):
        self.blob = blob


class MapChunk:
    """The stage function of ``map``: run ``fn`` over this task's slice of the items."""

    def __init__(self, fn, items: Shipped, first_index: list[int], retries: int):
        self.fn, self.items, self.first_index, self.retries = fn, items, first_index, retries

    def __call__(self, ctx) -> list:
        items = self.items(ctx)
        out = []
        for k, item in enumerate(items):
            for attempt in range(self.retries + 1):
                try:
                    out.append(self.fn(item))
                    break
                except Exception as exc:  # noqa: BLE001 - reaches the item's future
                    if attempt == self.retries:
                        where = (f"call {self.first_index[ctx.task] + k} of map({describe(self.fn)}) "
                                 f"on input {reprlib.repr(item)}")
                        out.append(Failed(capture(exc, where)))
        return out


class Reduce:
    """The stage function of ``map_reduce``'s single reduce task."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, ctx) -> list:
        results = []
        for part in ctx.input(0):
            for value in part:
                if isinstance(value, Failed):
                    raise restore(value.blob)
                results.append(value)
        return [self.fn(results)]
