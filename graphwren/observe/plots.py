"""The figures of a job, drawn with matplotlib: the task timeline, histograms per stage, the stage graph.

The timeline has one row per worker (a local process, or a Lambda execution
environment) and a bar per task attempt from its start to its end, coloured
by stage; a failed attempt is cross-hatched, a lost one hatched, a backup
copy outlined in red, and an attempt overtaken by another's commit is pale.
Attempts no worker reported on (failed or lost ones) sit on a row of their
own, drawn from when the driver launched them to when it learnt the outcome.
Each bar carries the id ``attempt-{stage}-{task}-{attempt}`` in SVG output.
"""
from __future__ import annotations

import io

from ..runtime import stats
from .numbers import human_bytes, task_seconds

NO_WORKER = "(no worker report)"


def _pyplot():
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ModuleNotFoundError("graphwren's plots and report need matplotlib: pip install 'graphwren[report]'",
                                  name="matplotlib") from None
    matplotlib.use("Agg", force=False)   # files, never a window: this runs in scripts and on servers
    import matplotlib.pyplot as plt
    return plt


def _span(attempt: dict, t0: float) -> tuple[float, float] | None:
    s = attempt.get("stats")
    if s:
        return s["start"] - t0, s["end"] - s["start"]
    if attempt.get("launched") is not None and attempt.get("ended") is not None:
        return attempt["launched"] - t0, attempt["ended"] - attempt["launched"]
    return None


def attempt_id(index: int, attempt: dict) -> str:
    return f"attempt-{index}-{attempt['task']}-{attempt['attempt']}"


def timeline_bars(record) -> list[dict]:
    """One entry per drawable attempt: its row, start, length, stage index and how it ended."""
    index = {s["name"]: s["index"] for s in record.stages}
    bars = []
    for a in record.attempts:
        span = _span(a, record.started)
        if span is None or a["stage"] not in index:
            continue
        worker = (a.get("stats") or {}).get("worker") or NO_WORKER
        bars.append({"id": attempt_id(index[a["stage"]], a), "worker": worker, "start": span[0],
                     "length": max(span[1], 1e-4), "stage": index[a["stage"]], "kind": a["kind"],
                     "outcome": a["outcome"], "task": a["task"], "attempt": a["attempt"]})
    return bars


def timeline_figure(record):
    plt = _pyplot()
    bars = timeline_bars(record)
    workers = sorted({b["worker"] for b in bars}, key=lambda w: (w == NO_WORKER, w))
    row = {w: i for i, w in enumerate(workers)}
    fig, ax = plt.subplots(figsize=(11, max(2.5, 0.35 * len(workers) + 1.5)))
    colours = plt.get_cmap("tab10")
    labels = {s["index"]: s["label"] for s in record.stages}
    drawn_stages = set()
    for b in bars:
        failed, lost = b["outcome"] == stats.FAILED, b["outcome"] == stats.LOST
        (rect,) = ax.barh(row[b["worker"]], b["length"], left=b["start"], height=0.7,
                          color=colours(b["stage"] % 10), alpha=0.35 if b["outcome"] == stats.SUPERSEDED else 0.9,
                          hatch="xx" if failed else "//" if lost else None,
                          edgecolor="red" if b["kind"] == stats.BACKUP or failed else "black",
                          linewidth=1.5 if b["kind"] == stats.BACKUP else 0.3,
                          label=None if b["stage"] in drawn_stages else f"stage {b['stage']}: {labels[b['stage']][:40]}")
        rect.set_gid(b["id"])
        drawn_stages.add(b["stage"])
    ax.set_yticks(range(len(workers)), [w[-28:] for w in workers], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(left=0)
    ax.set_xlabel("seconds since the job started")
    ax.set_title(f"job {record.job}: {len(bars)} task attempts on {len(workers)} worker(s)", fontsize=10)
    if bars:   # under the axes: over them it would hide the bars of the last seconds
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def histogram_figure(record, summaries):
    """Per stage: the spread of task times and of bytes read, side by side."""
    plt = _pyplot()
    n = max(1, len(summaries))
    fig, axes = plt.subplots(n, 2, figsize=(11, 2.2 * n + 0.5), squeeze=False)
    for (left, right), st in zip(axes, summaries):
        winners = record.winners(st.name)
        times = [t for t in (task_seconds(a) for a in winners) if t is not None]
        read = [a["stats"]["bytes_read"] for a in winners if a.get("stats")]
        left.hist(times or [0], bins=min(30, max(5, len(times))), color="tab:blue")
        left.set_title(f"stage {st.index}: task time (s)", fontsize=9)
        right.hist(read or [0], bins=min(30, max(5, len(read))), color="tab:orange")
        right.set_title(f"stage {st.index}: bytes read per task (total {human_bytes(sum(read))})", fontsize=9)
    fig.tight_layout()
    return fig


def stage_graph_figure(record):
    """The stages as boxes in run order, an arrow from each stage to the stages reading it."""
    import networkx as nx
    plt = _pyplot()
    g = nx.DiGraph()
    for s in record.stages:
        g.add_node(s["name"], label=f"{s['index']}: {s['label'][:30]}\n{s['ntasks']} task(s)")
    for s in record.stages:
        for src in s.get("inputs", ()):
            if src in g:
                g.add_edge(src, s["name"])
    depth = {}
    for name in nx.topological_sort(g):
        depth[name] = max((depth[p] + 1 for p in g.predecessors(name)), default=0)
    for name, d in depth.items():
        g.nodes[name]["layer"] = d
    pos = nx.multipartite_layout(g, subset_key="layer") if g else {}
    fig, ax = plt.subplots(figsize=(11, 2.5))
    nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, arrowsize=15, node_size=3000)
    nx.draw_networkx_labels(g, pos, ax=ax, labels=nx.get_node_attributes(g, "label"), font_size=8,
                            bbox={"boxstyle": "round", "fc": "#eef", "ec": "#446"})
    ax.set_axis_off()
    fig.tight_layout()
    return fig


def svg(fig) -> str:
    """A figure as inline SVG text (no XML declaration), and the figure closed."""
    plt = _pyplot()
    out = io.StringIO()
    fig.savefig(out, format="svg")
    plt.close(fig)
    text = out.getvalue()
    return text[text.index("<svg"):]


def save_timeline(record, filename: str) -> str:
    """The timeline written to ``filename`` (PNG, or the format its suffix names)."""
    plt = _pyplot()
    fig = timeline_figure(record)
    fig.savefig(filename, dpi=120)
    plt.close(fig)
    return str(filename)
