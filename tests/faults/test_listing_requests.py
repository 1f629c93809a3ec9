"""Planning a glob of many S3 files lists them once: no request per file (counted on the wire)."""
from __future__ import annotations

import collections

from graphwren import bag as db
from graphwren import config, planner
from graphwren.runtime import storage
from graphwren.runtime.storage import open_store


def test_a_glob_of_many_files_plans_from_its_listing(s3_endpoint, s3_proxy, fault_bucket, tmp_path, monkeypatch):
    direct = open_store(f"s3://{fault_bucket}/logs?endpoint={s3_endpoint}")
    texts = {f"day-{i:04d}.log": "".join(f"w{(i + j) % 7} x\n" for j in range(i % 5 + 1)) for i in range(300)}
    for name, text in texts.items():
        direct.put(name, text.encode())
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_proxy.url)   # read_text's stores go through the proxy
    storage.clear_cache()
    s3_proxy.set_rules([])                      # counts start here
    b = db.read_text(f"s3://{fault_bucket}/logs/day-*.log").flat_map(str.split).frequencies()
    planned = planner.plan(b.expr, config.resolve({"storage": f"file://{tmp_path}/store"}))
    assert s3_proxy.requests["HEAD"] <= 1 and s3_proxy.requests["GET"] == 0   # one check of the bucket
    assert 1 <= s3_proxy.requests["LIST"] <= 2  # 300 keys: one page of the listing
    assert planned.plan.stages[0].ntasks < 300  # small files packed into a few splits
    got = dict(b.compute(storage=f"file://{tmp_path}/store", progress=False))
    assert got == collections.Counter(w for text in texts.values() for w in text.split())
    storage.clear_cache()
