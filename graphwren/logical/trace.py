"""Trace a user's function into an expression (tasks/traced.py), or say why it cannot be.

The function is run once, at plan time, on symbolic proxies that record
item access, arithmetic, comparisons and the calls listed in
``tasks.traced.FUNCTIONS`` and ``STR_METHODS``. Running it is safe and the
trace is the whole function because its bytecode is checked first: no
jumps (so no branch on a value, no loop, no ``and``/``or``), no stores
other than to its own locals, no nested functions, and every global,
closure variable and default it can reach is a plain constant or one of
the known functions. Anything else is refused with the reason, and the
op runs in Python as written.
"""
from __future__ import annotations

import builtins
import dis
import inspect
import json
import operator
import types

from ..tasks import traced as tr


class Untraceable(Exception):
    """Why a function cannot run as Arrow kernels (shown by explain())."""


# Opcodes whose effect is local to the frame and visible to the proxies (3.11 to 3.13).
_SAFE_OPS = {
    "RESUME", "NOP", "CACHE", "EXTENDED_ARG", "COPY_FREE_VARS", "PUSH_NULL", "PRECALL", "CALL",
    "LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_FAST_LOAD_FAST", "LOAD_FAST_AND_CLEAR", "LOAD_CONST",
    "RETURN_CONST", "LOAD_SMALL_INT", "STORE_FAST", "STORE_FAST_LOAD_FAST", "STORE_FAST_STORE_FAST",
    "LOAD_GLOBAL", "LOAD_DEREF", "LOAD_ATTR", "LOAD_METHOD", "BINARY_OP", "BINARY_SUBSCR",
    "COMPARE_OP", "UNARY_NEGATIVE", "BUILD_TUPLE", "BUILD_MAP", "BUILD_CONST_KEY_MAP",
    "RETURN_VALUE", "POP_TOP", "COPY", "SWAP", "TO_BOOL",
}
_BINARY = {"+": "+", "-": "-", "*": "*", "/": "/"}
_ATTRIBUTES = set(tr.STR_METHODS) | {"loads"}   # json.loads
_CONSTANT_TYPES = (int, float, str, bool, type(None))


def _is_constant(v) -> bool:
    if isinstance(v, tuple):
        return all(_is_constant(x) for x in v)
    return type(v) in _CONSTANT_TYPES


class Sym:
    """A symbolic value: every operation on it builds an expression node instead of a result."""

    __slots__ = ("node",)

    def __init__(self, node):
        object.__setattr__(self, "node", node)

    def __getitem__(self, key):
        if isinstance(key, Sym) or not _is_constant(key):
            raise Untraceable("indexes a record with a computed key")
        return Sym(tr.Item(self.node, key))

    def __getattr__(self, name):
        if name in tr.STR_METHODS:
            return lambda *args: Sym(tr.Call(name, (self.node, *map(lift, args))))
        raise Untraceable(f"uses .{name}, which the tracer does not know")

    def _bin(op, reflected=False):  # noqa: N805 - builds the dunders below
        def method(self, other):
            left, right = (lift(other), self.node) if reflected else (self.node, lift(other))
            return Sym(tr.BinOp(op, left, right))
        return method

    def _cmp(op):  # noqa: N805
        return lambda self, other: Sym(tr.Compare(op, self.node, lift(other)))

    __add__, __radd__ = _bin("+"), _bin("+", True)
    __sub__, __rsub__ = _bin("-"), _bin("-", True)
    __mul__, __rmul__ = _bin("*"), _bin("*", True)
    __truediv__, __rtruediv__ = _bin("/"), _bin("/", True)
    __lt__, __le__, __gt__, __ge__ = _cmp("<"), _cmp("<="), _cmp(">"), _cmp(">=")
    __eq__, __ne__ = _cmp("=="), _cmp("!=")

    def __neg__(self):
        return Sym(tr.Neg(self.node))

    def _refuse(what):  # noqa: N805
        def method(self, *args):
            raise Untraceable(f"uses {what} of a record")
        return method

    __bool__ = _refuse("the truth value")
    __hash__ = _refuse("the hash")
    __iter__ = _refuse("iteration")
    __len__ = _refuse("__len__")
    __contains__ = _refuse("`in`")
    __index__ = __int__ = __float__ = _refuse("a conversion")
    __str__ = __repr__ = __format__ = _refuse("the text")
    __call__ = _refuse("a call")
    __setattr__ = __setitem__ = _refuse("assignment")
    __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __pow__ = __rpow__ = _refuse("// % or **")
    __and__ = __or__ = __xor__ = __invert__ = __lshift__ = __rshift__ = _refuse("bit operations")
    __abs__ = _refuse("abs()")   # builtins.abs is replaced by a symbolic one; this is never reached
    del _bin, _cmp, _refuse


def lift(v) -> tr.Node:
    """An operand as a node: a proxy's own node, or a constant."""
    if isinstance(v, Sym):
        return v.node
    if _is_constant(v):
        return tr.Const(v)
    raise Untraceable(f"uses a {type(v).__name__} value")


def _symbolic(name: str):
    def call(*args, **kwargs):
        if kwargs:
            raise Untraceable(f"passes keywords to {name}")
        if not any(isinstance(a, Sym) for a in args):
            raise Untraceable(f"calls {name} on constants only")
        return Sym(tr.Call(name, tuple(map(lift, args))))
    return call


class _JsonModule:
    """What the name ``json`` means inside a traced function: only ``loads``."""

    def __getattr__(self, name):
        if name == "loads":
            return _symbolic("json.loads")
        raise Untraceable(f"uses json.{name}")


# Real objects a traced function may reach, and what stands for them while it runs.
_KNOWN = {id(builtins.len): _symbolic("len"), id(builtins.abs): _symbolic("abs"),
          id(builtins.max): _symbolic("max"), id(builtins.min): _symbolic("min"),
          id(json.loads): _symbolic("json.loads"), id(json): _JsonModule()}

# Functions passed directly (map(str.lower), reduceby(..., operator.add)) and their expression.
_DIRECT = {str.lower: "lower", str.upper: "upper", str.strip: "strip", str.lstrip: "lstrip",
           str.rstrip: "rstrip", len: "len", abs: "abs", json.loads: "json.loads"}


def trace(fn, nargs: int) -> tr.Node:
    """The expression ``fn(*args)`` computes for ``nargs`` symbolic arguments, or Untraceable."""
    direct = _direct(fn, nargs)
    if direct is not None:
        return direct
    if not isinstance(fn, types.FunctionType):
        raise Untraceable(f"{_name(fn)} is not a plain Python function")
    code = fn.__code__
    if code.co_flags & (inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
                        | inspect.CO_ITERABLE_COROUTINE):
        raise Untraceable(f"{_name(fn)} is a generator or coroutine")
    if code.co_argcount < nargs and not code.co_flags & inspect.CO_VARARGS:
        raise Untraceable(f"{_name(fn)} takes fewer arguments than {nargs}")
    names = _check_bytecode(fn)
    glob = {"__builtins__": {}}
    for name in names:
        glob[name] = _stand_in(_resolve(fn, name), f"the global {name!r}")
    closure = None
    if fn.__closure__:
        closure = tuple(types.CellType(_stand_in(_cell(c, v), f"the closure variable {v!r}"))
                        for c, v in zip(fn.__closure__, code.co_freevars))
    for d in (fn.__defaults__ or ()):
        _stand_in(d, "a default argument")
    if fn.__kwdefaults__:
        for d in fn.__kwdefaults__.values():
            _stand_in(d, "a default argument")
    stand = types.FunctionType(code, glob, code.co_name, fn.__defaults__, closure)
    stand.__kwdefaults__ = fn.__kwdefaults__
    try:
        out = stand(*(Sym(tr.Arg(i)) for i in range(nargs)))
    except Untraceable:
        raise
    except Exception as exc:    # e.g. a constant's method given a proxy: unknown territory
        raise Untraceable(f"{_name(fn)} raised {type(exc).__name__} on symbolic input") from None
    return _to_node(out)


def _direct(fn, nargs: int):
    if nargs == 1 and _hashable(fn) and fn in _DIRECT:
        return tr.Call(_DIRECT[fn], (tr.Arg(0),))
    if nargs == 2 and fn is operator.add:
        return tr.BinOp("+", tr.Arg(0), tr.Arg(1))
    if nargs == 2 and fn in (builtins.max, builtins.min):
        return tr.Call(fn.__name__, (tr.Arg(0), tr.Arg(1)))
    if nargs == 1 and type(fn) is operator.itemgetter:
        keys = fn.__reduce__()[1]
        if not all(_is_constant(k) for k in keys):
            raise Untraceable("itemgetter of non-constant keys")
        items = tuple(tr.Item(tr.Arg(0), k) for k in keys)
        return items[0] if len(items) == 1 else tr.TupleOf(items)
    return None


def _hashable(fn) -> bool:
    try:
        hash(fn)
    except TypeError:
        return False
    return True


def _check_bytecode(fn) -> set[str]:
    """The global names the function loads; Untraceable on any opcode outside the safe set."""
    names = set()
    for ins in dis.get_instructions(fn):
        if ins.opname not in _SAFE_OPS:
            raise Untraceable(f"{_name(fn)} uses {_describe(ins)} (line {ins.positions.lineno})")
        if ins.opname == "LOAD_GLOBAL":
            names.add(ins.argval)
        if ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and ins.argval not in _ATTRIBUTES:
            raise Untraceable(f"{_name(fn)} uses .{ins.argval}, which the tracer does not know")
        if ins.opname == "BINARY_OP" and ins.argrepr not in _BINARY:
            raise Untraceable(f"{_name(fn)} uses the operator {ins.argrepr}")
    return names


def _describe(ins) -> str:
    kinds = {"POP_JUMP": "a branch", "JUMP": "a branch or loop", "FOR_ITER": "a loop", "STORE_": "an assignment",
             "MAKE_FUNCTION": "a nested function", "IMPORT": "an import", "YIELD": "yield",
             "UNPACK": "unpacking", "CONTAINS_OP": "`in`", "IS_OP": "`is`", "RAISE": "raise",
             "CALL_FUNCTION_EX": "*args", "KW_NAMES": "keyword arguments", "BUILD_LIST": "a list",
             "FORMAT": "an f-string", "BUILD_STRING": "an f-string", "UNARY_NOT": "`not`"}
    for prefix, what in kinds.items():
        if ins.opname.startswith(prefix):
            return what
    return ins.opname


def _resolve(fn, name: str):
    if name in fn.__globals__:
        return fn.__globals__[name]
    b = fn.__globals__.get("__builtins__", builtins)
    b = b if isinstance(b, dict) else vars(b)
    if name in b:
        return b[name]
    raise Untraceable(f"uses the undefined name {name!r}")


def _cell(cell, name):
    try:
        return cell.cell_contents
    except ValueError:
        raise Untraceable(f"uses the unbound closure variable {name!r}") from None


def _stand_in(value, what: str):
    """The value a traced function sees for a global/closure/default: constants as they are."""
    known = _KNOWN.get(id(value))
    if known is not None:
        return known
    if _is_constant(value):
        return value
    raise Untraceable(f"uses {what} ({_name(value)}), which the tracer does not know")


def _name(obj) -> str:
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__name__


def _to_node(out) -> tr.Node:
    if isinstance(out, Sym):
        return out.node
    if isinstance(out, tuple):
        return tr.TupleOf(tuple(_to_node(x) for x in out))
    if isinstance(out, dict):
        if not all(_is_constant(k) for k in out):
            raise Untraceable("builds a dict with computed keys")
        return tr.DictOf(tuple(out), tuple(_to_node(v) for v in out.values()))
    if _is_constant(out):
        return tr.Const(out)
    raise Untraceable(f"returns a {type(out).__name__}")
