"""What a delayed stage runs inside a worker: a task's chain of calls, and the reads that feed it.

A delayed call's arguments are kept as a *template*: the user's values as
they are, except that each delayed argument is a ``Ref(i)`` (the call's i-th
dependency) and each container holding one is a ``Pack``. ``fill`` puts the
values back, descending only into ``Pack``s, so a large constant argument
is never walked.

Every value a task needs from outside its own chain is named by a small
*source* tuple, resolved against what the task read from its input edges:

``("piece", k, pos, idx)``  piece ``pos`` of edge ``k``; element ``idx`` of it, or the whole piece if None
``("concat", k, positions)``  the records of those pieces of edge ``k``, in order (a whole bag)
``("literal", j)``          piece ``j`` of the shipped literals (``delayed(obj)`` values)

It lives in tasks/ so a worker imports only this module and the runtime.
"""
from __future__ import annotations

import itertools
import pickle

from .describe import funcname
from .shipped import Shipped


class Ref:
    """Placeholder in a call's template for its i-th dependency's value."""

    __slots__ = ("i",)

    def __init__(self, i: int):
        self.i = i

    def __reduce__(self):
        return (Ref, (self.i,))

    def __repr__(self):
        return f"Ref({self.i})"


class Pack:
    """A container (list, tuple, set, dict, namedtuple) in a template that holds a ``Ref`` somewhere."""

    __slots__ = ("kind", "items")

    def __init__(self, kind, items: tuple):
        self.kind, self.items = kind, items   # kind: "list" "tuple" "set" "frozenset" "dict", or a namedtuple class

    def __reduce__(self):
        return (Pack, (self.kind, self.items))

    def __repr__(self):
        return f"Pack({self.kind!r}, {self.items!r})"


_BUILD = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}


def fill(template, env: list):
    """The template with every ``Ref(i)`` replaced by ``env[i]`` (containers rebuilt)."""
    if isinstance(template, Ref):
        return env[template.i]
    if not isinstance(template, Pack):
        return template
    if template.kind == "dict":
        return {fill(k, env): fill(v, env) for k, v in template.items}
    items = [fill(x, env) for x in template.items]
    build = _BUILD.get(template.kind) if isinstance(template.kind, str) else None
    return build(items) if build is not None else template.kind(*items)


def call_method(obj, name: str, *args, **kwargs):
    """``obj.name(*args, **kwargs)``: what calling an attribute of a delayed value runs."""
    return getattr(obj, name)(*args, **kwargs)


def identity(value):
    """The value itself: ``delayed([a, b])`` is this call on the filled container."""
    return value


class Step:
    """One delayed call in a task's program: ``fn(*args, **kwargs)`` once its references are filled."""

    __slots__ = ("fn", "args", "kwargs", "slots", "key")

    def __init__(self, fn, args, kwargs, slots: tuple, key: str):
        # fn: index into the stage's function table, or a Ref (calling a delayed value)
        self.fn, self.args, self.kwargs, self.slots, self.key = fn, args, kwargs, slots, key

    def __reduce__(self):
        return (Step, (self.fn, self.args, self.kwargs, self.slots, self.key))


class Program:
    """What one task of a delayed stage does: resolve its sources, run its steps, return its exports."""

    __slots__ = ("sources", "steps", "exports")

    def __init__(self, sources: list, steps: list, exports: list):
        # value slots: the sources first, then one per step; exports are slot numbers
        self.sources, self.steps, self.exports = sources, steps, exports

    def __reduce__(self):
        return (Program, (self.sources, self.steps, self.exports))


def resolve(ctx, sources: list, literals: Shipped | None) -> list:
    """The values the sources name, reading each input edge of the task once."""
    got: dict[int, list] = {}

    def edge(k: int) -> list:
        if k not in got:
            got[k] = list(ctx.input(k))
        return got[k]

    out = []
    for src in sources:
        kind = src[0]
        if kind == "piece":
            piece = edge(src[1])[src[2]]
            out.append(piece if src[3] is None else piece[src[3]])
        elif kind == "concat":
            pieces = edge(src[1])
            out.append(list(itertools.chain.from_iterable(pieces[p] for p in src[2])))
        elif kind == "literal":
            out.append(literals.read(ctx, src[1]))
        else:
            raise ValueError(f"unknown delayed source {src!r}")
    return out


class RunCalls:
    """The stage function of a delayed stage: task t runs program t (one chain of calls)."""

    def __init__(self, functions: list, programs: Shipped, literals: Shipped | None):
        self.functions, self.programs, self.literals = functions, programs, literals

    def __call__(self, ctx) -> list:
        program: Program = self.programs(ctx)
        values = resolve(ctx, program.sources, self.literals)
        for step in program.steps:
            env = [values[s] for s in step.slots]
            fn = env[step.fn.i] if isinstance(step.fn, Ref) else self.functions[step.fn]
            ctx.where = f"delayed call {step.key} ({funcname(fn)})"
            values.append(fn(*fill(step.args, env), **fill(step.kwargs, env)))
        ctx.where = ""
        return [values[s] for s in program.exports]


class FromDelayedParts:
    """The read of a bag made by ``from_delayed``: partition t is the value source t names, as a list."""

    def __init__(self, sources: list, literals: Shipped | None, as_item: bool = False):
        self.sources, self.literals, self.as_item = sources, literals, as_item

    def __call__(self, ctx):
        value = resolve(ctx, [self.sources[ctx.task]], self.literals)[0]
        if self.as_item:   # Item.from_delayed: the value is the item itself
            return iter([value])
        try:
            return iter(value)
        except TypeError:
            raise TypeError(f"from_delayed: partition {ctx.task} is a {type(value).__name__}, not a "
                            f"sequence; each delayed value must compute to a list (or another iterable) "
                            f"of records") from None


def dumps(obj) -> bytes:
    """Shipped programs and literals: cloudpickle (lambdas, closures), read back with pickle.loads."""
    import cloudpickle
    return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
