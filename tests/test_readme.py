"""Every code block of README.md runs as written: each ```python block as a plain script against the sandbox."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from graphwren.sandbox import Sandbox

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
# Shell lines safe to run anywhere: they change nothing and need no server.
SAFE = {"graphwren --version", "graphwren --help", "python -m graphwren --help", "python -m graphwren --version"}


def readme_blocks() -> list[tuple[str, int, str]]:
    """(language, line number, body) of every fenced block."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    return [(m.group(1), text.count("\n", 0, m.start()) + 1, m.group(2)) for m in FENCE.finditer(text)]


def blocks_of(lang: str) -> list:
    return [pytest.param(body, id=f"line-{line}") for kind, line, body in readme_blocks() if kind == lang]


def shell_lines() -> list[str]:
    lines = []
    for kind, _, body in readme_blocks():
        if kind == "bash":
            for line in body.splitlines():
                command = re.sub(r"\s+#.*$", "", line).strip()
                if command and not command.startswith("#"):
                    lines.append(command)
    return lines


@pytest.fixture(scope="module")
def sandbox_env(tmp_path_factory):
    """The environment a user has after pasting `graphwren sandbox`'s exports, in a clean home."""
    home = tmp_path_factory.mktemp("home")
    with Sandbox() as sb:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAPHWREN_", "AWS_"))}
        env.update(sb.env)
        env.update(HOME=str(home), PYTHONPATH=ROOT,
                   GRAPHWREN_STORAGE=f"file://{home}/graphwren",   # not the user's default storage
                   PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""))
        yield env


def test_every_block_is_python_or_bash():
    kinds = {kind for kind, _, _ in readme_blocks()}
    assert kinds <= {"python", "bash"}, f"README blocks the test does not run: {kinds - {'python', 'bash'}}"
    assert blocks_of("python"), "README.md has no python blocks"


@pytest.mark.parametrize("code", blocks_of("python"))
def test_python_block_runs_as_a_plain_script(code, sandbox_env, tmp_path):
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=sandbox_env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "Traceback" not in done.stderr, (
        f"exit code {done.returncode}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")


@pytest.mark.parametrize("command", [c for c in shell_lines() if c in SAFE] or [None])
def test_safe_shell_lines_run(command, sandbox_env, tmp_path):
    assert command is not None, "README.md has no shell line that is safe to run"
    done = subprocess.run(shlex.split(command), cwd=tmp_path, env=sandbox_env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip(), f"{command}: {done.returncode}\n{done.stderr}"
