"""The price table, a job's measured bill and a plan's projected one, checked against hand arithmetic."""
from __future__ import annotations

import math
import os

import pytest

import graphwren as gw
from graphwren import config
from graphwren.errors import ConfigError
from graphwren.observe import Job
from graphwren.planner import cost as projected
from graphwren.runtime import cost, stats

pytestmark = pytest.mark.usefixtures("isolated_config")


def attempt_stats(start, end, cpu, requests):
    return {"start": start, "end": end, "cpu": cpu, "rss": 1, "rss_task": True, "records_in": None,
            "records_out": 1, "pieces_in": 0, "cached_manifests": 0, "bytes_read": 0, "bytes_written": 0,
            "requests": requests, "attempt": 0, "worker": "w", "cold": False, "cached_fn": True}


def record_of(settings: dict, lost_one: bool = False):
    rec = stats.JobRecorder("20260101T000000-0000000000", "", settings)
    rec.stage_started("s", "s", 0, 2, 2, [], None, "s3://b/x")
    rec.launched("s", 0, 0, stats.FIRST)
    rec.launched("s", 1, 0, stats.FIRST)
    rec.committed("s", 0, {"a": 0, "s": attempt_stats(100.0, 101.0004, 0.5,
                                                      {"s3": {"get": 10, "exists": 2, "put": 3}})})
    rec.committed("s", 1, {"a": 0, "s": attempt_stats(100.0, 102.0, 1.25,
                                                      {"s3": {"put_if_absent": 2}, "file": {"get": 7}})})
    rec.stage_finished("s")
    record = rec.finish("finished", [], {"s3": {"list": 4, "delete": 1, "size": 3}})
    record.started, record.finished = 0.0, 7200.0   # two hours, for the Redis node
    return record


def test_a_lambda_bill_by_hand():
    settings = {"backend": "lambda", "lambda_memory": 1024, "lambda_architecture": "arm64",
                "prices": {"s3_get": 0.001, "lambda_request": 0.5}}
    bill = cost.measured(record_of(settings))
    gb_s = (1.001 + 2.0) * 1.0            # 1.0004 s bills as 1.001 s; 1 GB
    by_hand = (gb_s * 0.0000133334        # arm64's GB-second
               + 2 * 0.5                  # two invocations at the overridden price
               + (10 + 2 + 3) * 0.001     # GETs, HEADs (exists) and the driver's size calls: overridden GET price
               + (3 + 2) * 0.000005       # PUTs and the commit's conditional PUT
               + (4 + 1) * 0.000005)      # the driver's LISTs, and the LIST its prefix delete makes
    assert math.isclose(bill.total, by_hand, rel_tol=1e-12)
    assert bill.basis == "measured on Lambda" and bill.cpu_seconds is None
    gb_line = next(line for line in bill.lines if line.unit == "GB-s")
    assert math.isclose(gb_line.quantity, 3.001) and "arm64" in gb_line.item


def test_a_local_run_reports_cpu_seconds_and_its_lambda_price():
    bill = cost.measured(record_of({"backend": "local", "lambda_memory": 2048}))
    assert bill.cpu_seconds == 1.75
    assert "on Lambda the same attempts would cost" in bill.basis
    by_hand = (3.001 * 2 * 0.0000166667 + 2 * 0.0000002 + 15 * 0.0000004 + 5 * 0.000005 + 5 * 0.000005)
    assert math.isclose(bill.total, by_hand, rel_tol=1e-12)


def test_a_redis_node_is_billed_by_the_hour(tmp_path):
    record = record_of({"backend": "lambda", "prices": {"redis_hour": 0.25}})
    record.driver_requests = {"redis": {"get": 3}}
    bill = cost.measured(record)
    redis = next(line for line in bill.lines if line.unit == "hours")
    assert redis.quantity == 2.0 and math.isclose(redis.dollars, 0.5)
    unpriced = record_of({"backend": "lambda"})   # the default table: a Redis node is yours to price
    unpriced.driver_requests = {"redis": {"get": 1}}
    assert any("prices.redis_hour" in n for n in cost.measured(unpriced).notes)


def test_prices_are_checked_where_they_come_from(monkeypatch, tmp_path):
    assert config.resolve({"prices": {"s3_get": 1e-6}})["prices"] == {"s3_get": 1e-6}
    with pytest.raises(ConfigError, match="unknown price 's3_gett'.*did you mean 's3_get'"):
        config.resolve({"prices": {"s3_gett": 1.0}})
    with pytest.raises(ConfigError, match="s3_put = -1 is not a price"):
        config.resolve({"prices": {"s3_put": -1}})
    monkeypatch.setenv("GRAPHWREN_PRICES", '{"lambda_request": 3e-7}')
    assert config.resolve()["prices"] == {"lambda_request": 3e-7}
    monkeypatch.setenv("GRAPHWREN_PRICES", "{not json")
    with pytest.raises(ConfigError, match="env GRAPHWREN_PRICES.*JSON object"):
        config.resolve()
    monkeypatch.delenv("GRAPHWREN_PRICES")
    path = tmp_path / "config.toml"
    path.write_text('[graphwren]\nlambda_architecture = "arm64"\n[graphwren.prices]\nlambda_arm64_gb_s = 0.00002\n')
    monkeypatch.setenv("GRAPHWREN_CONFIG", str(path))
    settings = config.resolve()
    assert settings["lambda_architecture"] == "arm64" and cost.lambda_gb_s_price(settings) == 0.00002
    with pytest.raises(ConfigError, match="lambda_architecture.*one of 'x86_64', 'arm64'"):
        config.resolve({"lambda_architecture": "sparc"})


def test_explain_cost_projects_each_stage_by_hand(tmp_path, monkeypatch):
    monkeypatch.setattr(stats, "_last", [])   # no earlier job of these stages: the default throughput
    for i in range(4):
        (tmp_path / f"{i}.txt").write_text("a b c d\n" * 5000)
    size = os.path.getsize(tmp_path / "0.txt") * 4
    b = gw.bag.read_text(str(tmp_path / "*.txt")).map(len)
    settings = config.resolve({"storage": "s3://bucket/x", "backend": "lambda", "lambda_memory": 1024})
    with gw.config.set(storage="s3://bucket/x"):
        text = b.explain(cost=True, backend="lambda", lambda_memory=1024)
    assert "== Cost (estimate) on Lambda, 1024 MB x86_64 ==" in text
    (row,) = projected.project(gw.planner.plan(b.expr, settings).plan, settings)
    seconds = projected.TASK_START_S + size / row.tasks / projected.DEFAULT_THROUGHPUT
    assert math.isclose(row.seconds_per_task, seconds)
    gb_s = row.tasks * cost.billed_seconds(seconds) * 1.0
    # each task: its output PUT and commit; its function GET and lease HEAD; the driver's GETs of its commit
    # record and output; and the stage's manifest PUT
    assert (row.puts, row.gets) == (2 * row.tasks + 1, 4 * row.tasks)
    by_hand = (gb_s * 0.0000166667 + row.tasks * 0.0000002 + row.puts * 0.000005 + row.gets * 0.0000004)
    assert math.isclose(row.dollars, by_hand, rel_tol=1e-12)
    assert f"{row.dollars:.6f}" in text and "default throughput" in text


def test_explain_cost_uses_what_the_same_stage_measured(tmp_path):
    for i in range(2):
        (tmp_path / f"{i}.txt").write_text("x y\n" * 2000)
    b = gw.bag.read_text(str(tmp_path / "*.txt")).map(len)
    url = f"file://{tmp_path}/s"
    b.compute(storage=url, progress=False)
    job = gw.last_job()
    assert f"measured in job {job.id}" in b.explain(cost=True, storage=url)


def test_summary_shows_the_measured_cost(tmp_path):
    gw.bag.from_sequence(range(10), npartitions=2).map(str).compute(storage=f"file://{tmp_path}/s", progress=False)
    job = gw.last_job()
    text = job.summary()
    bill = job.cost()
    assert f"${bill.total:,.6f}" in text and "CPU-seconds here" in text
    invocations = next(line for line in bill.lines if line.unit == "invocations")
    assert invocations.quantity == len(job.record.attempts)
