"""The report of a job: a self-contained HTML page checked in a real headless Chromium, the PNG
timeline, ``with gw.report(...)``, and the `graphwren jobs` / `graphwren report` commands."""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess

import pytest

import graphwren as gw
from graphwren import cli

pytestmark = pytest.mark.usefixtures("isolated_config")

ARTIFACTS = pathlib.Path(os.environ.get("TEST_ARTIFACTS_DIR") or
                         pathlib.Path(__file__).resolve().parent.parent / "build" / "test-artifacts")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("no Chromium for the headless-browser test: install Debian's (apt-get install -y chromium)",
                pytrace=False)


def browse(page: pathlib.Path, *args: str) -> str:
    """What headless Chromium makes of ``page``: the DOM after its scripts ran (or a screenshot)."""
    proc = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={page.parent / 'chromium-profile'}", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def flaky_once(x, marker):
    """Fails the first time it sees 3, so its task runs twice: the page must show both attempts."""
    if x == 3 and not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    print(f"saw {x}")
    return x * 2


def run_with_a_retry(tmp_path, **settings):
    marker = str(tmp_path / "failed-once")
    return gw.bag.from_sequence(range(12), npartitions=4).map(flaky_once, marker).compute(
        storage=f"file://{tmp_path}/s", progress=False, retries=1, speculation=False, **settings)


def test_the_page_loads_in_chromium_and_draws_one_bar_per_attempt(tmp_path):
    page = tmp_path / "job.html"
    assert run_with_a_retry(tmp_path, report=str(page)) == [2 * x for x in range(12)]
    record = gw.last_job().record
    assert len(record.attempts) == 5   # 4 tasks, one of them twice
    dom = browse(page, "--dump-dom")
    body = re.search(r"<body([^>]*)>", dom).group(1)
    assert 'data-errors="0"' in body, body                 # no script error on load
    assert f'data-bars="{len(record.attempts)}"' in body, body
    timeline = re.search(r"<div data-timeline=\"\" data-attempts=\"(\d+)\" data-drawn=\"(\d+)\"", dom)
    assert timeline and timeline.group(1) == timeline.group(2) == "5", dom[:500]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    browse(page, "--window-size=1300,3200", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_the_page_is_self_contained_and_names_every_attempt(tmp_path):
    page = tmp_path / "job.html"
    run_with_a_retry(tmp_path, report=str(page))
    job = gw.last_job()
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", text)   # nothing to fetch
    stage = job.record.stages[0]["index"]
    ids = set(re.findall(r'id="(attempt-\d+-\d+-\d+)"', text))
    assert ids == {f"attempt-{stage}-{a['task']}-{a['attempt']}" for a in job.record.attempts}
    for heading in ("Stages", "Timeline", "Task time and bytes per stage", "Slowest task attempts",
                    "Retries, backups and stragglers", "Cost", "Task output"):
        assert f"<h2>{heading}" in text, heading
    assert "<td class=''>first</td><td class=''>failed</td>" in text             # the failed attempt
    assert "<td class=''>retry</td><td class=''>committed</td>" in text          # and its retry
    assert f"${job.cost().total:,.6f}" in text and "saw 11" in text


def test_plot_writes_the_timeline_as_png(tmp_path):
    run_with_a_retry(tmp_path)
    path = gw.last_job().plot(str(tmp_path / "timeline.png"))
    import matplotlib.image
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 500


def test_a_report_block_covers_every_job_in_it(tmp_path):
    page = tmp_path / "both.html"
    url = f"file://{tmp_path}/s"
    with gw.report(str(page)) as jobs:
        gw.bag.range(10, npartitions=2).sum().compute(storage=url, progress=False)
        gw.bag.range(20, npartitions=2).map(str).compute(storage=url, progress=False)
    assert len(jobs) == 2
    text = page.read_text()
    assert all(f"id='job-{j.id}'" in text for j in jobs)
    gw.bag.range(5, npartitions=1).sum().compute(storage=url, progress=False)   # after the block
    assert page.read_text() == text


def broken(x):
    raise ValueError(f"cannot take {x}")


def test_a_failed_job_still_gets_its_page(tmp_path):
    page = tmp_path / "failed.html"
    with pytest.raises(ValueError, match="cannot take"):
        gw.bag.from_sequence([1], npartitions=1).map(broken).compute(storage=f"file://{tmp_path}/s",
                                                                     progress=False, report=str(page))
    text = page.read_text()
    assert ": failed</h1>" in text and "ValueError: cannot take 1" in text


def test_graphwren_jobs_and_report_read_a_kept_job(tmp_path, capsys):
    url = f"file://{tmp_path}/s"
    gw.bag.range(30, npartitions=3).map(str).persist(storage=url, progress=False)   # persist keeps the job
    job = gw.last_job()
    capsys.readouterr()
    assert cli.main(["jobs", "--storage", url]) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()[0].split(), next(l for l in out.splitlines() if l.startswith(job.id)).split()
    assert header[:7] == ["JOB", "STATE", "AGE", "KEYS", "STAGES", "DURATION", "COST"]
    assert row[1] == "finished" and row[4] == "1" and row[5] == f"{job.record.duration:.1f}s"
    assert row[6] == f"${job.cost().total:.6f}"
    target = tmp_path / "kept.html"
    assert cli.main(["report", job.id, "--storage", url, "-o", str(target)]) == 0
    assert f"id='job-{job.id}'" in target.read_text()
    assert cli.main(["report", "20200101T000000-0000000000", "--storage", url]) == 1
    assert "keep=True" in capsys.readouterr().err
