"""The report: one self-contained HTML page per job (or jobs), readable without a server.

The figures are inline SVG drawn by matplotlib (``plots.py``); everything
else is tables: per-stage statistics, the slowest tasks, the attempts that
failed, were lost, retried or backed up, the bill, and the tasks' output.
A few lines of script count the timeline's bars into ``data-bars`` on the
body and any script error into ``data-errors``, so a browser test can read
what the page showed.
"""
from __future__ import annotations

import datetime
import html
import os

from ..runtime import stats
from . import plots
from .numbers import HEADERS, human_bytes, task_seconds

SLOWEST = 10
LOG_CHARS = 20_000   # of all tasks' output, per job, in the page

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1.2em; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f3f3f8; } td.l, th.l { text-align: left; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 1.6em; } svg { max-width: 100%; height: auto; }
pre { background: #f7f7f7; padding: .5em; overflow-x: auto; font-size: 12px; }
.job { border-top: 3px solid #446; margin-top: 2em; }
"""

_SCRIPT = """
window.__errors = 0;
window.addEventListener('error', function () { window.__errors += 1; document.body.dataset.errors = window.__errors; });
document.addEventListener('DOMContentLoaded', function () {
  var bars = document.querySelectorAll('svg [id^="attempt-"]').length;
  document.body.dataset.bars = bars;
  document.body.dataset.errors = window.__errors;
  document.querySelectorAll('[data-timeline]').forEach(function (el) {
    el.dataset.drawn = el.querySelectorAll('[id^="attempt-"]').length;
  });
});
"""


def _table(headers, rows, left=()) -> str:
    head = "".join(f"<th class='{'l' if i in left else ''}'>{html.escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td class='{'l' if i in left else ''}'>{html.escape(str(c))}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _when(t) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if t else "?"


def job_section(job) -> str:
    r = job.record
    summaries = job.stage_summaries()
    index = {s["name"]: s["index"] for s in r.stages}
    parts = [f"<section class='job' id='job-{html.escape(r.job)}'>",
             f"<h1>job {html.escape(r.job)}: {html.escape(r.state)}</h1>",
             f"<p>{html.escape(r.description or '')} started {_when(r.started)}, "
             + (f"ran {r.duration:.2f} s" if r.duration is not None else "did not finish")
             + f", backend {html.escape(str(r.settings.get('backend')))}, storage "
             f"{html.escape(str(r.settings.get('storage')))}, {len(r.attempts)} task attempt(s).</p>"]
    if r.error:
        parts.append(f"<p><b>error:</b> {html.escape(r.error)}</p>")
    parts.append("<h2>Stages</h2>" + plots.svg(plots.stage_graph_figure(r)))
    parts.append(_table(HEADERS, [s.row() for s in summaries], left=(13,)))
    bars = plots.timeline_bars(r)
    parts.append(f"<h2>Timeline</h2><div data-timeline data-attempts='{len(bars)}'>"
                 + plots.svg(plots.timeline_figure(r)) + "</div>")
    parts.append("<h2>Task time and bytes per stage</h2>" + plots.svg(plots.histogram_figure(r, summaries)))

    timed = sorted(((task_seconds(a), a) for a in r.attempts if task_seconds(a) is not None),
                   key=lambda x: -x[0])[:SLOWEST]
    parts.append("<h2>Slowest task attempts</h2>" + _table(
        ["stage", "task", "attempt", "seconds", "outcome", "worker", "read", "written"],
        [[index.get(a["stage"], a["stage"]), a["task"], a["attempt"], f"{t:.3f}", a["outcome"],
          (a.get("stats") or {}).get("worker", "-"), human_bytes((a.get("stats") or {}).get("bytes_read")),
          human_bytes((a.get("stats") or {}).get("bytes_written"))] for t, a in timed], left=(5,)))

    odd = [a for a in r.attempts if a["kind"] != stats.FIRST or a["outcome"] in (stats.FAILED, stats.LOST)]
    parts.append("<h2>Retries, backups and stragglers</h2>" + (_table(
        ["stage", "task", "attempt", "kind", "outcome", "why"],
        [[index.get(a["stage"], a["stage"]), a["task"], a["attempt"], a["kind"], a["outcome"], a.get("why", "")]
         for a in odd], left=(5,)) if odd else "<p>none: every task committed on its first attempt.</p>"))

    try:
        bill = job.cost()
        parts.append(f"<h2>Cost</h2><p>{html.escape(bill.basis)}: <b>${bill.total:,.6f}</b>"
                     + (f"; the tasks used {bill.cpu_seconds:,.2f} CPU-seconds" if bill.cpu_seconds is not None else "")
                     + "</p>" + _table(["item", "quantity", "unit", "unit price ($)", "dollars"],
                                       [[l.item, f"{l.quantity:,.6g}", l.unit, f"{l.price:.10g}", f"{l.dollars:,.6f}"]
                                        for l in bill.lines if l.quantity or l.unit in ("GB-s", "invocations")],
                                       left=(0, 2))
                     + "".join(f"<p>note: {html.escape(n)}</p>" for n in bill.notes))
    except Exception as exc:  # noqa: BLE001 - a bad price table must not lose the rest of the page
        parts.append(f"<h2>Cost</h2><p>not reckoned: {html.escape(str(exc))}</p>")

    text = job.logs()
    if text:
        cut = f" (the first {LOG_CHARS:,} characters; Job.logs() has them all)" if len(text) > LOG_CHARS else ""
        parts.append(f"<h2>Task output{cut}</h2><details><summary>what the tasks printed and logged</summary>"
                     f"<pre>{html.escape(text[:LOG_CHARS])}</pre></details>")
    parts.append("</section>")
    return "\n".join(parts)


def render(jobs: list) -> str:
    title = f"graphwren job {jobs[0].id}" if len(jobs) == 1 else f"graphwren: {len(jobs)} jobs"
    body = "\n".join(job_section(j) for j in jobs) if jobs else "<p>no job finished in the block.</p>"
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>\n{body}\n</body></html>\n")


def write(jobs: list, filename) -> str:
    """Write the page for ``jobs`` to ``filename`` (atomically: a reader never sees half a page)."""
    text = render(jobs)
    tmp = f"{filename}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, filename)
    return str(filename)
