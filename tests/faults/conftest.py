"""Fixtures of the fault suite (the proxy, a restartable Redis) and its summary table.

Every scenario files its runs with ``fault_table.record(...)``; at the end of the
session the table (scenario, runs, correct, clear error, wrong, hang, leftovers)
is printed and written to build/fault-table.md (or $GRAPHWREN_FAULT_TABLE).
"""
from __future__ import annotations

import collections
import itertools
import os
import pathlib
import urllib.request

import pytest

from faultkit import Outcome, RedisServer
from faultproxy import FaultProxy

KINDS = ("correct", "clear error", "wrong", "hang")


class FaultTable:
    """Outcomes of every run of every scenario, in the order they were recorded."""

    def __init__(self):
        self.runs: dict[str, list[Outcome]] = collections.OrderedDict()
        self.notes: dict[str, str] = {}

    def record(self, scenario: str, outcome: Outcome) -> None:
        self.runs.setdefault(scenario, []).append(outcome)

    def note(self, scenario: str, text: str) -> None:
        self.notes[scenario] = text

    def markdown(self) -> str:
        lines = ["| scenario | runs | correct | clear error | wrong | hang | runs leaving keys |",
                 "|---|---:|---:|---:|---:|---:|---:|"]
        for name, outs in self.runs.items():
            counts = collections.Counter(o.kind for o in outs)
            lines.append(f"| {name} | {len(outs)} | " + " | ".join(str(counts[k]) for k in KINDS)
                         + f" | {sum(1 for o in outs if o.leftovers)} |")
        details = []
        for name, outs in self.runs.items():
            if name in self.notes:
                details.append(f"- {name}: {self.notes[name]}")
            for i, o in enumerate(outs):
                if o.kind != "correct" or o.leftovers:
                    first = o.detail.strip().splitlines()[0] if o.detail.strip() else ""
                    left = f"; left {len(o.leftovers)} keys, e.g. {o.leftovers[0]!r}" if o.leftovers else ""
                    details.append(f"- {name} run {i}: {o.kind} after {o.seconds:.1f} s: {first[:300]}{left}")
        return "\n".join(lines + ([""] + details if details else [])) + "\n"


_TABLE = FaultTable()
_BUCKETS = itertools.count()


@pytest.fixture(scope="session")
def fault_table() -> FaultTable:
    return _TABLE


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _TABLE.runs:
        return
    text = _TABLE.markdown()
    terminalreporter.section("graphwren fault suite")
    terminalreporter.write(text)
    target = pathlib.Path(os.environ.get("GRAPHWREN_FAULT_TABLE")
                          or pathlib.Path(str(config.rootpath)) / "build" / "fault-table.md")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        terminalreporter.write_line(f"(table saved to {target})")
    except OSError as exc:
        terminalreporter.write_line(f"(could not save the table to {target}: {exc})")


@pytest.fixture(scope="session")
def s3_proxy(s3_endpoint):
    proxy = FaultProxy(s3_endpoint)
    yield proxy
    proxy.close()


@pytest.fixture
def fault_bucket(s3_endpoint, s3_proxy):
    """A fresh bucket on moto (created directly, not through the proxy) and the proxy, rules cleared."""
    name = f"gw-fault-{next(_BUCKETS)}"
    urllib.request.urlopen(urllib.request.Request(f"{s3_endpoint}/{name}", method="PUT", data=b""),
                           timeout=10).read()
    s3_proxy.set_rules([])
    yield name
    s3_proxy.set_rules([])


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.stop()
