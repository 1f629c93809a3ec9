"""bench/wordcount.py (issue 18's benchmark) runs end to end at a tiny scale, and its answer checks can fail."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))
import wordcount  # noqa: E402 - bench/ is not a package


def test_the_benchmark_runs_both_pipelines_and_checks_every_answer(tmp_path):
    # TMPDIR: the corpora and the store live under this test's directory, not the shared scratch one
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": REPO, "GRAPHWREN_CONFIG": os.devnull}
    proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "wordcount.py"), "--scale", "0.0005",
                           "--words", "20e6", "--engines", "python,graphwren", "--repeats", "1", "--warmup", "0"],
                          capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Every answer matched its reference" in proc.stdout
    for label in ("python Counter (1 process)", "graphwren frequencies() (file)", "graphwren reduceby, lambdas (file)",
                  "python json.loads + Counter (1 process)", "graphwren (file)"):
        assert f"| {label} |" in proc.stdout, label
    assert "| reduceby (lambdas) within 1.5x of frequencies() |" in proc.stdout


def test_the_generators_reference_is_what_plain_python_counts(tmp_path, monkeypatch):
    monkeypatch.setattr(wordcount, "scratch_dir", lambda name: str(tmp_path / name))
    monkeypatch.setattr(wordcount, "RECORD_CHUNK", 500)   # several chunks, some split across files
    root = wordcount.make_records(60_000)
    files = wordcount.files_of(root, "*.jsonl")
    with open(os.path.join(root, "reference.json")) as f:
        ref = json.load(f)
    assert len(files) == wordcount.JSON_FILES
    assert ref["records"] == sum(1 for p in files for _ in open(p))
    assert 60_000 <= sum(map(os.path.getsize, files)) < 60_000 + 16 * 200   # each file overshoots by < a record
    assert dict(wordcount.python_json(files)) == ref["counts"]


@pytest.mark.parametrize("answer, complaint", [
    ([("a", np.int64(2))], "not (str, int)"),
    ([("a", 2.0)], "not (str, int)"),
    ([("a", 1), ("a", 1)], "appears twice"),
    ([("a", ("b", 2))], "is not ('a', count)"),
    ([["a", 2]], "is not a (key, value) tuple"),
])
def test_answers_a_dict_would_hide_are_refused(answer, complaint):
    with pytest.raises(SystemExit, match=re.escape(complaint)):
        wordcount.counts_of(answer, "engine x")


def test_a_different_count_names_the_engine_and_the_key():
    assert wordcount.counts_of([("a", ("a", 2)), ("b", ("b", 1))], "x") == {"a": 2, "b": 1}
    with pytest.raises(SystemExit, match=r"engine x gave a different answer on tiny: 0 keys missing, 0 extra, "
                                         r"1 counts differ \(e.g. 'b': 3 instead of 1\)"):
        wordcount.check("engine x", "tiny", {"a": 2, "b": 3}, {"a": 2, "b": 1})
