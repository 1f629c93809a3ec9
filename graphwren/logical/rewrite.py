"""The one rewrite driver: apply ``rule(expr, settings) -> expr`` functions to a plan until it settles.

The walk is bottom-up: a node is rewritten only after every expression it
reads (also those inside tuple operands, as array ``Elemwise`` keeps them)
has settled, so a rule always sees optimized inputs. Each distinct node,
by name, is settled once and memoized: a subexpression two consumers share
is rewritten once and stays shared. At a node the rules are tried in order
(only those declared for its type with ``@rewrites(...)`` are called); when
one changes it, the new node's own new inputs are settled and the rules
start again on it, until none applies. Every node of the result is such a
fixpoint, so one pass leaves nothing for a second one to do.

Two guards keep a bad rule set from hanging the driver (dask-expr's
simplify loops as long as names change): a node rewritten back into a form
it already had is a cycle, and more than ``max_rewrites`` rewrites in one
call is divergence. Both raise ``RewriteError`` naming the rule and node.

The walk keeps its own stack rather than recursing, so a long chain of
narrow ops does not hit Python's recursion limit.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from ..errors import RewriteError
from .expr import Expr, funcname

Rule = Callable[[Expr, Any], Expr]


def rewrites(*types: type) -> Callable[[Rule], Rule]:
    """Declare the node types a rule rewrites: the driver calls it on those nodes only."""
    def declare(rule: Rule) -> Rule:
        rule.rewrites = types
        return rule
    return declare

#: Rewrites allowed per input node (plus a floor): far above what any real rule set needs.
REWRITES_PER_NODE = 20
MIN_REWRITES = 1000


def rewrite(expr: Expr, rules: Sequence[Rule], settings: Any = None, max_rewrites: int | None = None) -> Expr:
    """``expr`` with ``rules`` applied bottom-up until none changes any node (see the module docstring)."""
    if not rules:
        return expr
    if max_rewrites is None:
        max_rewrites = MIN_REWRITES + REWRITES_PER_NODE * sum(1 for _ in expr.walk())
    memo: dict[str, Expr] = {}       # node name -> its settled form (settled forms map to themselves)
    forms: dict[str, list] = {}      # original node name -> names of the forms it went through
    count = 0
    # Frames are (original node, the form of it being settled now).
    stack: list[tuple[Expr, Expr]] = [(expr, expr)]
    while stack:
        orig, cur = stack[-1]
        if orig.name in memo:
            stack.pop()
            continue
        if cur.name in memo:
            memo[orig.name] = memo[cur.name]
            stack.pop()
            continue
        missing = [d for d in cur.dependencies if d.name not in memo]
        if missing:
            stack.extend((d, d) for d in reversed(missing))
            continue
        out = _with_settled_operands(cur, memo)
        rule, new = _first_change(out, rules, settings)
        if rule is None:
            memo[orig.name] = memo[cur.name] = memo[out.name] = out
            stack.pop()
            continue
        count += 1
        seen = forms.setdefault(orig.name, [orig.name])
        if out.name not in seen:
            seen.append(out.name)
        if new.name in seen:
            raise RewriteError(
                f"rule {funcname(rule)} rewrote {_short(out)} into {_short(new)}, a form that node already "
                f"had: the rules [{', '.join(funcname(r) for r in rules)}] would loop forever (one undoes "
                f"another, or a rule wraps its own input)")
        if count > max_rewrites:
            raise RewriteError(
                f"the rules did not converge after {max_rewrites} rewrites; the last was rule "
                f"{funcname(rule)} on {_short(out)}, giving {_short(new)} (does a rule keep making new nodes?)")
        seen.append(new.name)
        stack[-1] = (orig, new)
    return memo[expr.name]


def _first_change(node: Expr, rules: Sequence[Rule], settings) -> tuple[Rule | None, Expr]:
    """The first rule that changes ``node`` and what it made, or (None, node)."""
    for rule in rules:
        types = getattr(rule, "rewrites", None)
        if types is not None and not isinstance(node, types):
            continue  # declared for other node types: not even called
        new = rule(node, settings)
        if new is None or not isinstance(new, Expr):
            raise RewriteError(f"rule {funcname(rule)} returned {new!r} for {_short(node)}; "
                               "a rule returns an expression (its input when it does not apply)")
        if new is not node and new.name != node.name:
            return rule, new
    return None, node


def _with_settled_operands(node: Expr, memo: dict[str, Expr]) -> Expr:
    """``node`` rebuilt on its inputs' settled forms (itself when none changed)."""
    changed = False
    values = []
    for op in node.operands:
        if isinstance(op, Expr):
            new = memo[op.name]
            changed |= new is not op
            values.append(new)
        elif isinstance(op, tuple) and any(isinstance(o, Expr) for o in op):
            new = tuple(memo[o.name] if isinstance(o, Expr) else o for o in op)
            changed |= any(a is not b for a, b in zip(new, op))
            values.append(new)
        else:
            values.append(op)
    return type(node)(*values) if changed else node


def _short(node: Expr) -> str:
    """A node for an error message: its description and name, never failing."""
    try:
        return f"{node._describe()} [{node.name}]"
    except Exception:  # noqa: BLE001 - an error message must not raise a second error
        return f"{type(node).__name__} [{node.name}]"
