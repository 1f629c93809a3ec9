"""A real notebook run with `jupyter nbconvert --execute`: progress shows, explain() renders."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDGET = "application/vnd.jupyter.widget-view+json"

SETUP = """\
import time
import graphwren as gw

def slow_square(x):
    time.sleep(0.2)   # long enough for the bar to be drawn while the job runs
    return x * x
"""
EXPLAIN = "gw.bag.range(40, npartitions=8).map(slow_square).sum().explain()"
COMPUTE = "total = gw.bag.range(40, npartitions=8).map(slow_square).sum().compute(progress_delay=0)\ntotal"
MAP = ("ex = gw.Executor(progress_delay=0)\n"
       "squares = gw.get_all_results(ex.map(slow_square, range(16), chunksize=2))\nsum(squares)")
EXPECTED = str(sum(x * x for x in range(40)))


def run_notebook(tmp_path, cells: list[str]) -> list[dict]:
    """Execute ``cells`` in a fresh kernel; the executed cells (with outputs)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHWREN_")}
    env.update(PYTHONPATH=ROOT, GRAPHWREN_STORAGE=f"file://{tmp_path}/store", GRAPHWREN_WORKERS="2",
               PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""))
    done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                           "--ExecutePreprocessor.timeout=300", "--output", "executed.ipynb", str(path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    with open(tmp_path / "executed.ipynb", encoding="utf-8") as f:
        return json.load(f)["cells"]


def texts(cell: dict, kind: str) -> str:
    """All text of one output type in a cell: 'stream' (stdout/stderr) or 'execute_result'."""
    out = []
    for o in cell["outputs"]:
        if o["output_type"] == kind:
            out.append("".join(o["text"]) if kind == "stream" else "".join(o["data"].get("text/plain", "")))
    return "".join(out)


def widgets(cell: dict) -> list[dict]:
    return [o for o in cell["outputs"] if o["output_type"] == "display_data" and WIDGET in o["data"]]


def test_progress_widget_and_explain_render_in_a_notebook(tmp_path):
    setup, explain, compute, mapped = run_notebook(tmp_path, [SETUP, EXPLAIN, COMPUTE, MAP])
    plan = texts(explain, "execute_result")
    assert "== Physical plan" in plan and "stage 0: 8 tasks" in plan and "\\n" not in plan
    assert texts(compute, "execute_result") == EXPECTED
    assert widgets(compute), compute["outputs"]                # the bar, as an ipywidgets widget
    assert texts(mapped, "execute_result") == str(sum(x * x for x in range(16)))
    assert widgets(mapped), mapped["outputs"]                  # Executor.map's job runs on a thread: same cell
    for cell in (setup, explain, compute, mapped):
        assert "IProgress" not in texts(cell, "stream") and "Traceback" not in texts(cell, "stream")


def test_without_ipywidgets_the_notebook_gets_a_text_bar(tmp_path):
    hide = "import sys\nsys.modules['ipywidgets'] = None   # as if it were not installed\n"
    _, _, compute = run_notebook(tmp_path, [hide + SETUP, EXPLAIN, COMPUTE])
    assert texts(compute, "execute_result") == EXPECTED
    stream = texts(compute, "stream")
    assert not widgets(compute) and "9/9" in stream, compute["outputs"]
    assert "IProgress" not in stream and "TqdmWarning" not in stream
