"""Make a stage function loadable where the image lacks the user's own modules.

cloudpickle pickles a function from an importable module *by reference*
(``mylib.triple``): the worker must import ``mylib``. Local workers share the
driver's ``sys.path``; a Lambda image has only what was deployed. Before a
stage is uploaded to such a backend, this module reads which modules the
pickle refers to, ships the user's own ones (plain ``.py`` files outside
site-packages and the standard library) by value, and names any installed
package the image lacks in a clear error, before any task runs.
"""
from __future__ import annotations

import os
import pickletools
import sys
import sysconfig

import cloudpickle

from ..errors import ModuleMissingOnWorkers


def referenced_modules(blob: bytes) -> set[str]:
    """Top-level names of the modules a pickle imports (globals and cloudpickle's subimport)."""
    memo: dict[int, object] = {}
    stack: list[object] = []   # only what the opcodes below need: recent pushes
    found: set[str] = set()
    subimport_next = False
    for op, arg, _ in pickletools.genops(blob):
        name = op.name
        if name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            stack.append(arg)
            if subimport_next:
                found.add(arg.split(".")[0])
                subimport_next = False
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1] if stack else None
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            stack.append(memo.get(int(arg)))
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = stack[-1] if stack else None
        elif name == "GLOBAL":
            module, _, attr = arg.partition(" ")
            found.add(module.split(".")[0])
            subimport_next = attr in ("subimport", "dynamic_subimport")
            stack.append(None)
        elif name == "STACK_GLOBAL":
            module, attr = (stack[-2], stack[-1]) if len(stack) >= 2 else (None, None)
            if isinstance(module, str):
                found.add(module.split(".")[0])
            subimport_next = attr in ("subimport", "dynamic_subimport")
            stack.append(None)
        else:
            stack.append(None)
        if len(stack) > 64:
            del stack[:-16]
    return found


def _installed_roots() -> list[str]:
    paths = sysconfig.get_paths()
    roots = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {p for p in sys.path if p and ("site-packages" in p or "dist-packages" in p)}
    return [os.path.realpath(r) for r in roots if r]


def is_users_own(module) -> bool:
    """A module from a plain file of the user's, not an installed package or the standard library."""
    path = getattr(module, "__file__", None)
    if not path:
        return False  # built in, or a namespace package
    path = os.path.realpath(path)
    return not any(path.startswith(root + os.sep) for root in _installed_roots())


def fit_to_image(obj, blob: bytes, available: set[str], what: str) -> bytes:
    """``blob`` (the pickle of ``obj``), re-pickled so the image's modules suffice."""
    missing = sorted(m for m in referenced_modules(blob) - available if m in sys.modules)
    if not missing:
        return blob
    own = [m for m in missing if is_users_own(sys.modules[m])]
    installed = [m for m in missing if m not in own]
    if installed:
        raise ModuleMissingOnWorkers(
            f"{what} needs the installed package(s) {', '.join(installed)}, which the Lambda function's image "
            f"does not have; add them to the deployment (graphwren lambda deploy --module NAME, or the image's "
            f"Dockerfile) and deploy again", name=installed[0])
    for name in own:
        cloudpickle.register_pickle_by_value(sys.modules[name])
    try:
        return cloudpickle.dumps(obj)
    finally:
        for name in own:
            cloudpickle.unregister_pickle_by_value(sys.modules[name])
