"""The import rules between graphwren's layers, checked by reading the source (no imports run).

Every ``import`` in every module counts, at module level or inside a function:
a lazy import still runs on a worker the day that function is called. Relative
imports are resolved to absolute module names first.
"""
from __future__ import annotations

import ast
import pathlib
import textwrap

import networkx as nx

import graphwren

# Leaf modules any layer may import: they import nothing from graphwren.
LEAVES = ("graphwren.errors", "graphwren.version")

# layer (package)         -> the other graphwren packages/modules it may import, besides LEAVES and itself.
# Modules outside every layer (the package root, config, executor, cli, sandbox, ...) sit on top: unrestricted.
MAY_IMPORT = {
    "graphwren.runtime":     (),
    "graphwren.tasks":       ("graphwren.runtime",),
    "graphwren.logical":     ("graphwren.tasks", "graphwren.runtime"),
    "graphwren.planner":     ("graphwren.logical", "graphwren.tasks", "graphwren.runtime", "graphwren.config",
                              "graphwren.observe"),
    "graphwren.collections": ("graphwren.logical", "graphwren.planner", "graphwren.tasks", "graphwren.runtime",
                              "graphwren.config"),
    "graphwren.aws":         ("graphwren.runtime",),
    "graphwren.sim":         ("graphwren.runtime",),
    "graphwren.observe":     ("graphwren.runtime", "graphwren.config"),
}

PACKAGE_DIR = pathlib.Path(graphwren.__file__).parent


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def module_names(package_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """Every module under ``package_dir``, by its absolute dotted name (packages by their own name)."""
    root = package_dir.name
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [root, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports_of(name: str, path: pathlib.Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported module, line) for every import of the root package in one module, relative ones resolved."""
    root = name.split(".")[0]
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                # ``from pkg import sub`` imports the module pkg.sub when there is one, else a name of pkg
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in known else target, node.lineno))
    return [(mod, line) for mod, line in found if _within(mod, root)]


def layer_of(module: str) -> str | None:
    return next((layer for layer in MAY_IMPORT if _within(module, layer)), None)


def check(package_dir: pathlib.Path) -> list[str]:
    """Every broken rule in the package at ``package_dir``, one readable line each (empty: all good)."""
    modules = module_names(package_dir)
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    problems = []
    for name, path in modules.items():
        layer = layer_of(name)
        for target, line in imports_of(name, path, set(modules)):
            graph.add_edge(name, target)
            if layer is None or _within(target, layer) or target in LEAVES:
                continue
            if not any(_within(target, allowed) for allowed in MAY_IMPORT[layer]):
                problems.append((str(path.relative_to(package_dir.parent)), line, f"{layer} may not import {target}"))
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1 or any(graph.has_edge(m, m) for m in component):
            cycle = [a for a, _ in nx.find_cycle(graph.subgraph(component), source=min(component))]
            chain = " -> ".join(cycle + cycle[:1])
            problems.append(("", 0, f"import cycle: {chain}"))
    return [f"{where}:{line}: {what}" if where else what for where, line, what in sorted(problems)]


def test_graphwren_keeps_its_layers_and_has_no_import_cycle():
    problems = check(PACKAGE_DIR)
    assert not problems, "\n" + "\n".join(problems)


def test_the_worker_layers_are_covered():
    # a renamed layer folder would silently turn its rules off
    for layer in MAY_IMPORT:
        assert (PACKAGE_DIR.parent / layer.replace(".", "/") / "__init__.py").exists(), layer


def _plant(tmp_path, files: dict[str, str]) -> pathlib.Path:
    root = tmp_path / "graphwren"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()
    return root


def test_the_checker_passes_a_clean_package(tmp_path):
    root = _plant(tmp_path, {
        "errors.py": "",
        "config.py": "from .runtime import worker\n",
        "runtime/worker.py": "from ..errors import E\nfrom . import codec\n",
        "runtime/codec.py": "",
        "tasks/ops.py": "from ..runtime.codec import x\n",
        "planner/lower.py": "from .. import config\nfrom ..logical import expr\n",
        "logical/expr.py": "from ..tasks import ops\n",
    })
    assert check(root) == []


def test_the_checker_catches_planted_violations(tmp_path):
    root = _plant(tmp_path, {
        "errors.py": "",
        "config.py": "",
        "runtime/worker.py": "def f():\n    from ..logical.expr import funcname\n",   # lazy, still counts
        "runtime/handler.py": "def f():\n    import graphwren\n",                     # the package root
        "runtime/backends/aws_user.py": "from ...aws import function_name\n",
        "tasks/ops.py": "from .. import config\n",
        "logical/expr.py": "import graphwren.planner.lower\n",
        "planner/lower.py": "from ..collections import bag\n",
        "collections/bag.py": "",
        "aws/__init__.py": "",
        "a.py": "from . import b\n",
        "b.py": "def f():\n    from .a import x\n",
    })
    assert sorted(check(root)) == sorted([
        "graphwren/runtime/worker.py:2: graphwren.runtime may not import graphwren.logical.expr",
        "graphwren/runtime/handler.py:2: graphwren.runtime may not import graphwren",
        "graphwren/runtime/backends/aws_user.py:1: graphwren.runtime may not import graphwren.aws",
        "graphwren/tasks/ops.py:1: graphwren.tasks may not import graphwren.config",
        "graphwren/logical/expr.py:1: graphwren.logical may not import graphwren.planner.lower",
        "graphwren/planner/lower.py:1: graphwren.planner may not import graphwren.collections.bag",
        "import cycle: graphwren.a -> graphwren.b -> graphwren.a",
    ])


def classes_without_docstring(package_dir: pathlib.Path) -> list[str]:
    """``file:line: Class`` for every class in the package whose body does not open with a docstring."""
    out = []
    for path in sorted(package_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) and not ast.get_docstring(node):
                out.append(f"{path.relative_to(package_dir.parent)}:{node.lineno}: {node.name}")
    return out


def test_every_class_says_what_it_is_for():
    assert classes_without_docstring(PACKAGE_DIR) == []


def test_the_docstring_check_catches_a_bare_class(tmp_path):
    root = _plant(tmp_path, {"tasks/ops.py": 'class Documented:\n    """Does one thing."""\n\n\nclass Bare:\n    pass\n'})
    assert classes_without_docstring(root) == ["graphwren/tasks/ops.py:5: Bare"]
