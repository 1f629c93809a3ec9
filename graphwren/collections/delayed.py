"""Delayed values: dask.delayed's API, run as stages of stateless tasks over storage.

``delayed(f)(x, y)`` records a call without running it; its arguments may be
delayed values, bags and items, also inside lists, tuples, sets and dicts.
Attribute access, indexing, operators and calls on a ``Delayed`` give
``Delayed`` values too. Nothing runs until ``compute()`` (or ``gw.compute``
for several values in one job); the planner groups the calls into stages
(``planner/delayed.py``).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import operator
import uuid

from .. import config
from .. import planner
from ..logical import delayed as d
from ..logical.array import ArrayExpr
from ..logical.bag import BagExpr, Persisted
from ..logical.expr import Expr, tokenize
from ..planner.outputs import Blocks
from ..tasks.delayed_calls import Pack, Ref, call_method, identity
from ..tasks.describe import funcname

_MISSING = object()


class Delayed:
    """A lazy value: calls, attributes, items and operators on it are lazy too (as dask.delayed)."""

    __slots__ = ("_expr", "_length")

    def __init__(self, expr: d.DelayedExpr, length: int | None = None):
        object.__setattr__(self, "_expr", expr)
        object.__setattr__(self, "_length", length)

    @property
    def key(self) -> str:
        """The value's name: equal keys are one value, computed once per job."""
        return self._expr.name

    # -- running ---------------------------------------------------------------------------
    def compute(self, **settings):
        """Run the calls this value needs, as one job; the value itself."""
        planned, got, _job, _settings = run([self._expr], settings)
        return value_of(planned.roots[0], got)

    def persist(self, **settings) -> "Delayed":
        """Compute now and keep the value in storage; the new Delayed reads it back (see ``gw.persist``)."""
        (expr,) = persist_exprs([self._expr], settings)
        return Delayed(expr, self._length)

    def explain(self, cost: bool = False, **settings) -> str:
        """The calls, and the stages and tasks they will run as, before paying for them (``cost``: and
        the projected GB-seconds, requests and dollars per stage)."""
        return planner.explain(self._expr, config.resolve(settings), cost=cost)

    # -- lazy Python ---------------------------------------------------------------------------
    def __getattr__(self, attr: str) -> "Delayed":
        if attr.startswith("_"):   # copy, pickle and friends probe for these: never a lazy attribute
            raise AttributeError(f"Delayed has no attribute {attr!r}")
        return _DelayedAttr(self, attr)

    def __setattr__(self, attr, value):
        raise TypeError("Delayed objects are immutable")

    def __setitem__(self, index, value):
        raise TypeError("Delayed objects are immutable")

    def __call__(self, *args, **kwargs) -> "Delayed":
        pure = kwargs.pop("pure", None)
        key = kwargs.pop("dask_key_name", None)
        deps = _Deps()
        fn = Ref(deps.add(self._expr))   # the function is this value, known once it is computed
        return _call(fn, args, kwargs, deps, pure=pure, key=key, nout=None, label="call")

    def __iter__(self):
        if self._length is None:
            raise TypeError("Delayed objects of unspecified length are not iterable; give nout= to delayed()")
        return (self[i] for i in range(self._length))

    def __len__(self):
        if self._length is None:
            raise TypeError("Delayed objects of unspecified length have no len(); give nout= to delayed()")
        return self._length

    def __bool__(self):
        raise TypeError("the truth of a Delayed value is unknown until compute()")

    def __hash__(self):
        return hash(self.key)

    def __dir__(self):
        return dir(type(self))

    def __repr__(self):
        return f"Delayed({self.key!r})"

    def __reduce__(self):
        raise TypeError("a Delayed value cannot be pickled; pass it as an argument of a delayed call instead")


class _DelayedFunction(Delayed):
    """``delayed(f)``: calling it records a call of ``f``; as a value it is ``f`` itself."""

    __slots__ = ("_fn", "_pure", "_nout", "_name")

    def __init__(self, fn, pure, nout, name):
        super().__init__(d.Literal(fn, name or f"{funcname(fn)}-{uuid.uuid4().hex[:16]}"), nout)
        for slot, value in (("_fn", fn), ("_pure", pure), ("_nout", nout), ("_name", name)):
            object.__setattr__(self, slot, value)

    def __call__(self, *args, **kwargs) -> Delayed:
        pure = kwargs.pop("pure", self._pure)
        key = kwargs.pop("dask_key_name", None)
        return _call(self._fn, args, kwargs, _Deps(), pure=pure, key=key, nout=self._nout)

    @property
    def __wrapped__(self):
        return self._fn

    def __repr__(self):
        return f"Delayed({funcname(self._fn)})"


class _DelayedAttr(Delayed):
    """``value.attr``: a delayed ``getattr``; calling it calls the method on the computed value."""

    __slots__ = ("_obj", "_attr")

    def __init__(self, obj: Delayed, attr: str):
        deps = _Deps()
        ref = Ref(deps.add(obj._expr))
        attr_of = _call(getattr, (ref, attr), {}, deps, pure=True, key=None, nout=None, templated=True)
        super().__init__(attr_of._expr)
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_attr", attr)

    def __call__(self, *args, **kwargs) -> Delayed:
        deps = _Deps()
        ref = Ref(deps.add(self._obj._expr))
        pure = kwargs.pop("pure", None)
        key = kwargs.pop("dask_key_name", None)
        templates = (ref, self._attr) + tuple(_unpack(a, deps) for a in args)
        return _call(call_method, templates, {k: _unpack(v, deps) for k, v in kwargs.items()}, deps, pure=pure,
                     key=key, nout=None, templated=True, label=self._attr)


class _Deps:
    """The distinct delayed nodes one call reads, in order; ``Ref(i)`` names the i-th."""

    def __init__(self):
        self.nodes: list[Expr] = []
        self._index: dict[str, int] = {}

    def add(self, node: Expr) -> int:
        i = self._index.get(node.name)
        if i is None:
            i = self._index[node.name] = len(self.nodes)
            self.nodes.append(node)
        return i


def _collection_node(obj) -> Expr | None:
    """The delayed node of a bag or item (its records, or its value), None for anything else."""
    make = getattr(type(obj), "__graphwren_delayed__", None)
    return make(obj) if make is not None else None


def _unpack(obj, deps: _Deps):
    """``obj`` as a template: delayed values (also inside containers) replaced by references."""
    if isinstance(obj, Delayed):
        return Ref(deps.add(obj._expr))
    node = _collection_node(obj)
    if node is not None:
        return Ref(deps.add(node))
    if isinstance(getattr(obj, "expr", None), ArrayExpr):
        raise TypeError("a graphwren Array cannot be an argument of a delayed call yet; compute it first "
                        "(arr.compute()), or compute both with gw.compute(arr, value)")
    typ = type(obj)
    if typ is dict:
        pairs = tuple((_unpack(k, deps), _unpack(v, deps)) for k, v in obj.items())
        return Pack("dict", pairs) if any(_templated(x) for pair in pairs for x in pair) else obj
    if typ in (list, tuple, set, frozenset) or (isinstance(obj, tuple) and hasattr(typ, "_fields")):
        items = tuple(_unpack(x, deps) for x in obj)
        if not any(_templated(x) for x in items):
            return obj
        return Pack(typ.__name__ if typ in (list, tuple, set, frozenset) else typ, items)
    return obj


def _templated(x) -> bool:
    return isinstance(x, (Ref, Pack))


def _call(fn, args, kwargs, deps: _Deps, *, pure, key, nout, templated=False, label=None) -> Delayed:
    """The Delayed of ``fn(*args, **kwargs)``; ``templated``: the arguments are templates already."""
    if nout is not None and (isinstance(nout, bool) or not isinstance(nout, int) or nout < 0):
        raise ValueError(f"nout must be None or a non-negative integer, got {nout!r}")
    if not templated:
        args = tuple(_unpack(a, deps) for a in args)
        kwargs = {k: _unpack(v, deps) for k, v in kwargs.items()}
    args_t = Pack("tuple", tuple(args)) if any(_templated(a) for a in args) else tuple(args)
    kwargs_t = Pack("dict", tuple(kwargs.items())) if any(_templated(v) for v in kwargs.values()) else dict(kwargs)
    prefix = label or (funcname(fn) if not isinstance(fn, Ref) else "call")
    if key is None:
        if pure:   # dask's default is impure: every call its own value
            key = f"{prefix}-{tokenize(fn, args_t, kwargs_t, tuple(deps.nodes), nout)}"
        else:
            key = f"{prefix}-{uuid.uuid4().hex[:16]}"
    elif not isinstance(key, str):
        raise TypeError(f"dask_key_name must be a string, got {type(key).__name__} {key!r}")
    return Delayed(d.Call(fn, args_t, kwargs_t, tuple(deps.nodes), key, nout), nout)


def delayed(obj=_MISSING, name: str | None = None, pure: bool | None = None, nout: int | None = None,
            traverse: bool = True):
    """A lazy version of ``obj``, as ``dask.delayed``: a function whose calls are recorded, or a value.

    ``pure=True`` names a call by its function and arguments (equal calls are
    computed once); the default gives every call its own name, as dask does.
    ``nout`` makes the result iterable into that many delayed items;
    ``name`` (or ``dask_key_name=`` on a call) sets the key. Used bare or
    with arguments as a decorator: ``@delayed``, ``@delayed(pure=True)``.
    """
    if obj is _MISSING:
        return functools.partial(delayed, name=name, pure=pure, nout=nout, traverse=traverse)
    if nout is not None and (isinstance(nout, bool) or not isinstance(nout, int) or nout < 0):
        raise ValueError(f"nout must be None or a non-negative integer, got {nout!r}")
    if isinstance(obj, Delayed):
        return obj
    node = _collection_node(obj)
    if node is not None:
        return Delayed(node, nout)
    if callable(obj):   # functions, classes, callable objects: calling the result records a call
        return _DelayedFunction(obj, pure, nout, name)
    deps = _Deps()
    template = _unpack(obj, deps) if traverse else obj
    if not _templated(template):
        key = name or f"{type(obj).__name__}-{tokenize(obj) if pure else uuid.uuid4().hex[:16]}"
        return Delayed(d.Literal(obj, key, nout), nout)
    return _call(identity, (template,), {}, deps, pure=pure, key=name, nout=nout, templated=True,
                 label=type(obj).__name__)


# -- running several values in one job ------------------------------------------------------------
class Received:
    """Every output partition of a plan, by stage and task; array blocks go into their numpy arrays."""

    def __init__(self, arrays: dict[str, Blocks]):
        self.parts: dict[str, dict[int, object]] = collections.defaultdict(dict)
        self.arrays = arrays

    def receive(self, stage: str, task: int, part) -> None:
        if stage in self.arrays:
            self.arrays[stage].receive(stage, task, part)
        else:
            self.parts[stage][task] = part


def run(exprs: list[Expr], settings: dict, keep: bool | None = None, suffix: str = "",
        description: str = "compute"):
    """Plan ``exprs`` as one job and run it: (planned, received outputs, job id, settings)."""
    settings = config.resolve(settings)
    planned = planner.plan_many(exprs, settings, suffix=suffix)
    arrays = {r.stage: Blocks(r.expr.shape, r.expr.dtype, r.expr.chunks) for r in planned.roots
              if r.kind == "array"}
    got = Received(arrays)
    job = None
    if planned.plan.stages:   # only literals: nothing to run
        job = planner.execute(planned, settings, got, keep=keep, description=description)
    return planned, got, job, settings


def value_of(root, got: Received, item: bool = False):
    """One root's value from what the run returned (``item``: a bag root that is an Item)."""
    kind = root.kind
    if kind == "literal":
        return root.value
    if kind == "array":
        return got.arrays[root.stage].value()
    parts = got.parts[root.stage]
    if kind == "delayed":
        return parts[root.task][root.index]
    if kind == "partition":
        return parts[root.task]
    if kind == "item" or (kind == "bag" and item):
        return parts[0][0]
    return [x for task in sorted(parts) for x in parts[task]]


def persist_exprs(exprs: list[Expr], settings: dict) -> list[Expr]:
    """Compute ``exprs`` in one job whose results stay in storage; expressions that read them back.

    The job's keys stay until ``graphwren clean`` removes them (a kept job,
    like any ``keep=True`` run); only this process holds the job's signing
    key, so only it can read them.
    """
    return persist_run(exprs, settings)[0]


def persist_run(exprs: list[Expr], settings: dict):
    """``persist_exprs``, and the plan that ran (its adaptive decisions, for explain)."""
    suffix = f"-p{uuid.uuid4().hex[:8]}"   # its stage names must not meet another persisted job's in a plan
    planned, _got, job, settings = run(exprs, settings, keep=True, suffix=suffix, description="persist")
    # explain() numbers stages of a plan made without the suffix: name the decisions as it does
    planned.adapted = [dataclasses.replace(a, stage=a.stage.removesuffix(suffix)) for a in planned.adapted]
    out = []
    for expr, root in zip(exprs, planned.roots):
        if root.kind in ("literal", "array"):
            out.append(expr)
            continue
        stage = planned.plan.stage(root.stage)
        store, owner = ((stage.external["store"], stage.external["job"]) if stage.external is not None
                        else (stage.storage or settings["storage"], job))
        token = tokenize(owner, root.stage)
        if root.kind == "delayed":
            out.append(d.PersistedValue(store, owner, root.stage, stage.ntasks, root.task, root.index,
                                        f"{expr.name}-persisted-{token}"))
            continue
        bag = Persisted(store, owner, root.stage, stage.ntasks)
        if root.kind == "bag":
            out.append(bag)
        elif root.kind == "partition":
            out.append(d.BagPartition(bag, root.task, f"{expr.name}-persisted-{token}"))
        else:
            out.append(d.BagValue(bag, root.kind == "item", f"{expr.name}-persisted-{token}"))
    return out, planned


def bag_partitions(expr: BagExpr, n: int) -> list[Delayed]:
    """One Delayed per partition of a bag (``Bag.to_delayed``), each computing to a list."""
    return [Delayed(d.BagPartition(expr, i, f"{expr.name}-partition-{i}")) for i in range(n)]


def bag_value(expr: BagExpr, item: bool) -> d.BagValue:
    """The delayed node of a whole bag (its records as a list) or of an Item (its value)."""
    return d.BagValue(expr, item, f"{expr.name}-{'item' if item else 'records'}")


def delayed_nodes(values, what: str) -> tuple[Expr, ...]:
    """The nodes of delayed values given to ``what`` (from_delayed); a clear error for anything else."""
    if isinstance(values, Delayed):
        values = [values]
    try:
        values = list(values)
    except TypeError:
        raise TypeError(f"{what} takes a list of Delayed values, got {type(values).__name__}") from None
    nodes = []
    for i, v in enumerate(values):
        node = v._expr if isinstance(v, Delayed) else _collection_node(v)   # an Item is a delayed value too
        if node is None:
            raise TypeError(f"{what}: value {i} is a {type(v).__name__}, not a Delayed; wrap a concrete "
                            f"value with gw.delayed(value) first")
        nodes.append(node)
    return tuple(nodes)


_UNARY = {"abs": operator.abs, "neg": operator.neg, "pos": operator.pos, "invert": operator.invert}
_BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "floordiv": operator.floordiv,
           "truediv": operator.truediv, "mod": operator.mod, "pow": operator.pow, "and": operator.and_,
           "or": operator.or_, "xor": operator.xor, "lshift": operator.lshift, "rshift": operator.rshift,
           "matmul": operator.matmul}
_COMPARE = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le, "gt": operator.gt,
            "ge": operator.ge, "getitem": operator.getitem}


def _operator(op, reflected: bool = False, unary: bool = False):
    # Operators are pure (as dask): x + 1 written twice is one value.
    if unary:
        def method(self):
            return _call(op, (self,), {}, _Deps(), pure=True, key=None, nout=None)
    elif reflected:
        def method(self, other):
            return _call(op, (other, self), {}, _Deps(), pure=True, key=None, nout=None)
    else:
        def method(self, other):
            return _call(op, (self, other), {}, _Deps(), pure=True, key=None, nout=None)
    return method


for _name, _op in _UNARY.items():
    setattr(Delayed, f"__{_name}__", _operator(_op, unary=True))
for _name, _op in _BINARY.items():
    setattr(Delayed, f"__{_name}__", _operator(_op))
    setattr(Delayed, f"__r{_name}__", _operator(_op, reflected=True))
for _name, _op in _COMPARE.items():
    setattr(Delayed, f"__{_name}__", _operator(_op))   # __eq__ is lazy too; __hash__ stays by key

__all__ = ["Delayed", "delayed", "run", "value_of", "persist_exprs", "persist_run", "bag_partitions", "bag_value",
           "delayed_nodes"]
