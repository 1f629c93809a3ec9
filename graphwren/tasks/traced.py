"""Expressions traced from user functions, and their evaluation as Arrow kernels.

``logical/trace.py`` turns a pure function such as ``lambda r: (r["user"], 1)``
into a tree of the nodes below; a worker evaluates the tree on a block's
records held as Arrow columns. Evaluation must give exactly what Python
would: wherever Arrow and Python could differ on the data at hand (an int
sum that could overflow, a float column that may hold JSON ints, a null
where Python would raise KeyError, non-ASCII text under ``lower()``) it
raises ``Unsupported`` and the caller runs the block in Python instead.

Values during evaluation are Arrow arrays (one per record), Python
constants (the same for every record), tuples and dicts of those (records
built by the function), and ``JsonRows`` (records json.loads would give).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

INT64_MAX = 2 ** 63 - 1
EXACT_FLOAT_INT = 2 ** 53      # ints up to this convert to float exactly, as in Python


class Unsupported(Exception):
    """The block's data is outside what the Arrow path reproduces exactly: run it in Python."""


# -- the expression tree -----------------------------------------------------------------
class Node:
    """A traced expression."""


@dataclasses.dataclass(frozen=True)
class Arg(Node):
    """The function's i-th argument (a record; an accumulator in a binop)."""

    i: int

    def __str__(self):
        return "x" if self.i == 0 else "ab"[self.i - 1] if self.i <= 2 else f"arg{self.i}"


@dataclasses.dataclass(frozen=True)
class Const(Node):
    """A constant: a literal, or a closure/global value read when the function was traced."""

    value: Any

    def __str__(self):
        return repr(self.value)


@dataclasses.dataclass(frozen=True)
class Item(Node):
    """``obj[key]`` with a constant key."""

    obj: Node
    key: Any

    def __str__(self):
        return f"{self.obj}[{self.key!r}]"


@dataclasses.dataclass(frozen=True)
class BinOp(Node):
    """``left op right`` for + - * /."""

    op: str
    left: Node
    right: Node

    def __str__(self):
        return f"({self.left} {self.op} {self.right})"


@dataclasses.dataclass(frozen=True)
class Compare(BinOp):
    """``left op right`` for < <= > >= == !=."""


@dataclasses.dataclass(frozen=True)
class Neg(Node):
    """``-operand``."""

    operand: Node

    def __str__(self):
        return f"-{self.operand}"


@dataclasses.dataclass(frozen=True)
class Call(Node):
    """A known function or str method: ``len(x)``, ``max(a, b)``, ``x.lower()``, ``json.loads(x)``."""

    name: str
    args: tuple

    def __str__(self):
        if self.name in STR_METHODS:
            return f"{self.args[0]}.{self.name}({', '.join(map(str, self.args[1:]))})"
        return f"{self.name}({', '.join(map(str, self.args))})"


@dataclasses.dataclass(frozen=True)
class TupleOf(Node):
    """A tuple built by the function."""

    items: tuple

    def __str__(self):
        return "(" + ", ".join(map(str, self.items)) + ("," if len(self.items) == 1 else "") + ")"


@dataclasses.dataclass(frozen=True)
class DictOf(Node):
    """A dict built by the function (constant keys)."""

    keys: tuple
    values: tuple

    def __str__(self):
        return "{" + ", ".join(f"{k!r}: {v}" for k, v in zip(self.keys, self.values)) + "}"


STR_METHODS = ("lower", "upper", "strip", "lstrip", "rstrip", "startswith", "endswith")
FUNCTIONS = ("len", "abs", "max", "min", "json.loads")


def uses(node: Node) -> set[int]:
    """The argument indices an expression reads."""
    if isinstance(node, Arg):
        return {node.i}
    return set().union(*(uses(c) for c in children(node)))


def replace_children(node: Node, fn) -> Node:
    """The node with ``fn`` applied to each child expression (None from fn: None overall)."""
    changes = {}
    for f in dataclasses.fields(node):
        v = getattr(node, f.name)
        if isinstance(v, Node):
            v = fn(v)
        elif isinstance(v, tuple) and any(isinstance(x, Node) for x in v):
            v = tuple(fn(x) if isinstance(x, Node) else x for x in v)
            if any(x is None for x in v):
                return None
        else:
            continue
        if v is None:
            return None
        changes[f.name] = v
    return dataclasses.replace(node, **changes)


def children(node: Node) -> tuple:
    if isinstance(node, Item):
        return (node.obj,)
    if isinstance(node, (BinOp, Compare)):
        return (node.left, node.right)
    if isinstance(node, Neg):
        return (node.operand,)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, TupleOf):
        return node.items
    if isinstance(node, DictOf):
        return node.values
    return ()


# -- Python evaluation (for expressions a rule rewrote) -------------------------------
class PythonFunction:
    """A traced expression run on Python values, one record at a time, with Python's semantics."""

    def __init__(self, node: Node, describe: str = ""):
        self.node, self.describe = node, describe or str(node)
        self.__qualname__ = self.__name__ = self.describe

    def __call__(self, *args):
        return python_value(self.node, args)


def python_value(node: Node, args: tuple):
    """What the function the node was traced from returns for ``args``."""
    import json
    import operator
    kind = type(node)
    if kind is Arg:
        return args[node.i]
    if kind is Const:
        return node.value
    if kind is Item:
        return python_value(node.obj, args)[node.key]
    if kind is TupleOf:
        return tuple(python_value(i, args) for i in node.items)
    if kind is DictOf:
        return dict(zip(node.keys, (python_value(v, args) for v in node.values)))
    if kind is BinOp:
        fn = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}[node.op]
        return fn(python_value(node.left, args), python_value(node.right, args))
    if kind is Compare:
        fn = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
              "!=": operator.ne}[node.op]
        return fn(python_value(node.left, args), python_value(node.right, args))
    if kind is Neg:
        return -python_value(node.operand, args)
    values = [python_value(a, args) for a in node.args]
    if node.name in STR_METHODS:
        return getattr(values[0], node.name)(*values[1:])
    fns = {"len": len, "abs": abs, "max": max, "min": min, "json.loads": json.loads}
    return fns[node.name](*values)


# -- values ------------------------------------------------------------------------
class JsonRows:
    """Records as json.loads gives them, parsed by Arrow: fields are read with guards, never whole."""

    def __init__(self, table, data: bytes):
        self.table, self.data = table, data

    def field(self, key):
        import pyarrow as pa
        if not isinstance(key, str) or key not in self.table.column_names:
            raise Unsupported(f"field {key!r} is missing from some record")   # Python: KeyError
        col = self.table.column(key).combine_chunks()
        if col.null_count:       # JSON null or a missing key: Python gives None or raises; we cannot tell
            raise Unsupported(f"field {key!r} is null or missing in some record")
        if pa.types.is_floating(col.type) and _has_integral(col) and self._maybe_int_literal(key):
            raise Unsupported(f"field {key!r} mixes JSON ints and floats")   # Python keeps ints as int
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)
                or pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
                or pa.types.is_boolean(col.type)):
            raise Unsupported(f"field {key!r} is of type {col.type}")
        return col

    def _maybe_int_literal(self, key: str) -> bool:
        # An int literal for the key anywhere (or an escaped key we cannot see through): Python would
        # give an int where Arrow gave a float. A false alarm only costs the fast path.
        if b"\\u" in self.data:
            return True
        pattern = re.escape(_json_key(key)) + rb"\s*:\s*-?\d+(?![\d.eE])"
        return re.search(pattern, self.data) is not None


def _json_key(key: str) -> bytes:
    import json
    return json.dumps(key).encode()


def _has_integral(col) -> bool:
    import pyarrow.compute as pc
    return bool(pc.any(pc.equal(pc.floor(col), col)).as_py())


def is_array(v) -> bool:
    import pyarrow as pa
    return isinstance(v, pa.Array)


# -- evaluation --------------------------------------------------------------------
def evaluate(node: Node, args: tuple):
    """The value of ``node`` for every record at once (see the module docstring)."""
    kind = type(node)
    if kind is Arg:
        return args[node.i]
    if kind is Const:
        return node.value
    if kind is Item:
        return _item(evaluate(node.obj, args), node.key)
    if kind is TupleOf:
        return tuple(evaluate(i, args) for i in node.items)
    if kind is DictOf:
        return dict(zip(node.keys, (evaluate(v, args) for v in node.values)))
    if kind is BinOp:
        return _binop(node.op, evaluate(node.left, args), evaluate(node.right, args))
    if kind is Compare:
        return _compare(node.op, evaluate(node.left, args), evaluate(node.right, args))
    if kind is Neg:
        return _neg(evaluate(node.operand, args))
    if kind is Call:
        return _call(node.name, [evaluate(a, args) for a in node.args])
    raise Unsupported(f"cannot evaluate {node}")


def _item(obj, key):
    if isinstance(obj, JsonRows):
        return obj.field(key)
    if isinstance(obj, tuple) and type(key) is int and -len(obj) <= key < len(obj):
        return obj[key]
    if isinstance(obj, dict) and _hashable(key) and key in obj:
        return obj[key]
    raise Unsupported(f"[{key!r}] of this record")


def _hashable(key) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True


def kind_of(v) -> str:
    """'int', 'float', 'str', 'bool' for an array or constant; anything else is Unsupported."""
    import pyarrow as pa
    if is_array(v):
        if v.null_count:
            raise Unsupported("a null value")
        t = v.type
        if pa.types.is_boolean(t):
            return "bool"
        if pa.types.is_integer(t):
            return "int"
        if pa.types.is_floating(t):
            return "float"
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return "str"
        raise Unsupported(f"values of type {t}")
    t = type(v)
    if t is bool:
        return "bool"
    if t is int:
        if not -INT64_MAX - 1 <= v <= INT64_MAX:
            raise Unsupported(f"the int {v} is beyond 64 bits")
        return "int"
    if t is float:
        return "float"
    if t is str:
        return "str"
    raise Unsupported(f"a {t.__name__} value")


def _as_float(v, kind: str):
    """An int operand as float64, exactly as Python converts it, or Unsupported."""
    import pyarrow as pa
    import pyarrow.compute as pc
    if kind == "float":
        return v
    if is_array(v):
        if len(v) and pc.max(pc.abs_checked(v)).as_py() > EXACT_FLOAT_INT:
            raise Unsupported("an int too large to convert to float exactly")
        return v.cast(pa.float64())
    if abs(v) > EXACT_FLOAT_INT:
        raise Unsupported("an int too large to convert to float exactly")
    return float(v)


_ARITH = {"+": "add", "-": "subtract", "*": "multiply"}


def _binop(op: str, a, b):
    import pyarrow.compute as pc
    if not is_array(a) and not is_array(b) and not isinstance(a, (tuple, dict)) and not isinstance(b, (tuple, dict)):
        return _python_binop(op, a, b)
    ka, kb = kind_of(a), kind_of(b)
    if op == "+" and ka == kb == "str":
        return pc.binary_join_element_wise(_as_array(a, b), _as_array(b, a), "")
    if "bool" in (ka, kb) or "str" in (ka, kb):
        raise Unsupported(f"{ka} {op} {kb}")
    if op == "/":
        return pc.divide_checked(_as_float(a, ka), _as_float(b, kb))   # x / 0: Python raises
    if op not in _ARITH:
        raise Unsupported(f"the operator {op}")
    if ka == kb == "int":
        return getattr(pc, _ARITH[op] + "_checked")(a, b)        # overflow raises: Python has big ints
    return getattr(pc, _ARITH[op])(_as_float(a, ka), _as_float(b, kb))


def _as_array(v, like):
    import pyarrow as pa
    if is_array(v):
        return v
    return pa.array([v] * len(like), like.type)


def _python_binop(op, a, b):
    import operator
    fn = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}.get(op)
    if fn is None:
        raise Unsupported(f"the operator {op}")
    try:
        return fn(a, b)
    except Exception as exc:    # the Python path raises it where the user can see it
        raise Unsupported(str(exc)) from None


_COMPARE = {"<": "less", "<=": "less_equal", ">": "greater", ">=": "greater_equal", "==": "equal",
            "!=": "not_equal"}


def _compare(op: str, a, b):
    import pyarrow.compute as pc
    if not is_array(a) and not is_array(b):
        raise Unsupported("a comparison of constants")
    ka, kb = kind_of(a), kind_of(b)
    numeric = {"int", "float"}
    if ka in numeric and kb in numeric:
        if ka != kb:
            a, b = _as_float(a, ka), _as_float(b, kb)
    elif ka != kb or ka == "bool":        # Python: "a" < 1 raises, "a" == 1 is False
        raise Unsupported(f"{ka} {op} {kb}")
    return getattr(pc, _COMPARE[op])(a, b)


def _neg(v):
    import pyarrow.compute as pc
    k = kind_of(v)
    if k == "int":
        return pc.negate_checked(v) if is_array(v) else -v
    if k == "float":
        return pc.negate(v) if is_array(v) else -v
    raise Unsupported(f"-{k}")


# Python's str.strip() removes str.isspace() characters; for ASCII text these are exactly these.
_ASCII_SPACE = " \t\n\v\f\r\x1c\x1d\x1e\x1f"


def _call(name: str, args: list):
    import pyarrow as pa
    import pyarrow.compute as pc
    if not any(is_array(a) for a in args):
        raise Unsupported(f"{name} of constants")
    if name == "len":
        (v,) = args
        if kind_of(v) != "str":
            raise Unsupported("len of a non-string")
        return pc.utf8_length(v).cast(pa.int64())
    if name == "abs":
        (v,) = args
        k = kind_of(v)
        if k == "int":
            return pc.abs_checked(v)
        if k == "float":
            return pc.abs(v)
        raise Unsupported(f"abs of {k}")
    if name in ("max", "min"):
        if len(args) != 2:
            raise Unsupported(f"{name} of {len(args)} values")
        a, b = args
        ka, kb = kind_of(a), kind_of(b)
        if ka != kb or ka not in ("int", "str"):   # floats: which of 0.0/-0.0 or NaN Python keeps depends on order
            raise Unsupported(f"{name} of {ka} and {kb}")
        fn = pc.max_element_wise if name == "max" else pc.min_element_wise
        return fn(_as_array(a, b), _as_array(b, a))
    if name in STR_METHODS:
        v, *rest = args
        if not is_array(v) or kind_of(v) != "str" or any(is_array(r) for r in rest):
            raise Unsupported(f".{name}() of this value")
        if name in ("startswith", "endswith"):
            if len(rest) != 1 or type(rest[0]) is not str:
                raise Unsupported(f".{name}() with these arguments")
            return (pc.starts_with if name == "startswith" else pc.ends_with)(v, pattern=rest[0])
        if rest or not pc.all(pc.string_is_ascii(v)).as_py():
            raise Unsupported(f".{name}() of non-ASCII text")
        if name == "lower":
            return pc.ascii_lower(v)
        if name == "upper":
            return pc.ascii_upper(v)
        trim = {"strip": pc.utf8_trim, "lstrip": pc.utf8_ltrim, "rstrip": pc.utf8_rtrim}[name]
        return trim(v, characters=_ASCII_SPACE)
    raise Unsupported(f"the function {name}")


def to_python(value, n: int) -> list:
    """The records a value stands for, as Python objects: exactly what the Python path builds."""
    if isinstance(value, JsonRows):
        raise Unsupported("whole json records")    # key order and missing keys are per record in Python
    if is_array(value):
        kind_of(value)
        return value.to_pylist()
    if isinstance(value, tuple):
        return list(zip(*(to_python(v, n) for v in value))) if value else [()] * n
    if isinstance(value, dict):
        keys = list(value)
        cols = [to_python(v, n) for v in value.values()]
        return [dict(zip(keys, row)) for row in zip(*cols)] if keys else [{} for _ in range(n)]
    kind_of(value)
    return [value] * n
