"""How a running job shows its progress: a bar, a notebook widget, log lines, or nothing.

The driver reports finished tasks per stage; this module decides where the
user will see them without getting in their way:

- a terminal gets a tqdm bar on stderr (after ``progress_delay`` seconds);
- a notebook gets a widget where ipywidgets is installed, tqdm's text bar
  otherwise (no "IProgress not found" warning);
- a job running in the background (``Executor.map`` returns at once and the
  job runs on a thread) draws nothing in an interactive session, where a
  bar would be drawn over the REPL prompt;
- when stderr is not a terminal (CI, a log file), a long job logs one line
  per running stage every few seconds to the ``graphwren`` logger at INFO.

Every display shows each running stage: its tasks done out of its total and
the bytes its committed tasks read and wrote (from their commit records).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
import time

import networkx as nx

from .plan import Plan
from .units import human_bytes

logger = logging.getLogger("graphwren")

LOG_EVERY = 5.0      # seconds between two rounds of stage lines in the log
LABEL_WIDTH = 60     # a stage label longer than this is cut in log lines

SILENT, BAR, WIDGET, TEXT, LOG = "silent", "bar", "widget", "text", "log"


def in_notebook() -> bool:
    """True inside a Jupyter kernel (notebook, lab, VS Code), as tqdm.autonotebook decides."""
    if "ipykernel.zmqshell" not in sys.modules:
        return False
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "qt" not in type(shell).__name__.lower()


def interactive() -> bool:
    """True in a REPL: ``python``, ``python -i`` or IPython's terminal shell."""
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return True
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and type(shell).__name__ == "TerminalInteractiveShell"


def widgets_available() -> bool:
    return importlib.util.find_spec("ipywidgets") is not None


def choose_mode(enabled: bool, background: bool, stream) -> str:
    """Which display suits a job: one of SILENT, BAR, WIDGET, TEXT, LOG."""
    if not enabled:
        return SILENT
    if in_notebook():
        return WIDGET if widgets_available() else TEXT
    if background and interactive():
        return SILENT  # the prompt is back; a bar from this thread would be drawn over it
    if _isatty(stream):
        return BAR
    return LOG


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _has_size(stream) -> bool:
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):  # not a real file: let tqdm decide
        return True
    return size.columns > 0 and size.lines > 0


class JobProgress:
    """Counts one job's finished tasks per stage and shows them in the chosen mode."""

    def __init__(self, plan: Plan, job: str, description: str, mode: str, delay: float = 0.0,
                 stream=None, clock=time.monotonic, log_every: float | None = None):
        self.job, self.mode, self.delay, self.clock = job, mode, delay, clock
        self.log_every = LOG_EVERY if log_every is None else log_every
        self.description = description or "graphwren"
        graph = plan.graph()
        order = [n for n in nx.topological_sort(graph) if plan.stage(n).external is None]
        self.stages = {name: plan.stage(name) for name in order}
        self.index = {name: i + 1 for i, name in enumerate(order)}
        self.needs = {name: [p for p in graph.predecessors(name) if p in self.stages] for name in order}
        self.done = dict.fromkeys(order, 0)
        self.bytes = dict.fromkeys(order, 0)   # read + written by each stage's committed tasks
        self.total = sum(s.ntasks for s in self.stages.values())
        self.started = clock()
        self.last_logged = self.started
        self.logged = False
        self._lock = threading.Lock()
        self._bar = self._make_bar(stream if stream is not None else sys.stderr)
        self._stop = threading.Event()
        self._ticker = None
        if mode == LOG:
            # Stage lines must come even while no task finishes (one long task).
            self._ticker = threading.Thread(target=self._tick_loop, name=f"graphwren-progress-{job}", daemon=True)
            self._ticker.start()

    # -- what the driver calls ------------------------------------------------------
    def update(self, n: int, stage: str | None = None, nbytes: int = 0) -> None:
        """``n`` more tasks of ``stage`` committed, having read and written ``nbytes`` more."""
        with self._lock:
            if stage in self.done:
                self.done[stage] += n
                self.bytes[stage] += nbytes
        if self._bar is not None:
            self._bar.update(n)
            self._bar.set_postfix_str(self.postfix(), refresh=False)
        if self.mode == LOG:
            self.tick()

    def retotal(self) -> None:
        """A stage's task count changed before it started (adaptive coalescing): count the new total."""
        with self._lock:
            self.total = sum(s.ntasks for s in self.stages.values())
        if self._bar is not None:
            self._bar.total = self.total   # drawn at the next update (a refresh now would ignore the delay)

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join(timeout=1.0)
        if self._bar is not None:
            self._bar.close()
        if self.mode == LOG and self.logged:
            finished = sum(self.done.values())
            elapsed = self.clock() - self.started
            if finished >= self.total:
                logger.info("job %s done: %d tasks in %.1f s", self.job, self.total, elapsed)
            else:
                logger.info("job %s stopped: %d/%d tasks after %.1f s", self.job, finished, self.total, elapsed)

    # -- state --------------------------------------------------------------------------
    def running(self) -> list[str]:
        """Stages that run now: not finished, and every stage they read has finished (BSP)."""
        with self._lock:
            complete = {n for n, s in self.stages.items() if self.done[n] >= s.ntasks}
            return [n for n in self.stages if n not in complete and all(p in complete for p in self.needs[n])]

    def postfix(self) -> str:
        """The running stages on a bar: ``stage 1/2: 3/8 tasks, 1.2 MiB``, one after another."""
        parts = []
        for name in self.running():
            text = f"stage {self.index[name]}/{len(self.stages)}: {self.done[name]}/{self.stages[name].ntasks} tasks"
            if self.bytes[name]:
                text += f", {human_bytes(self.bytes[name])}"
            parts.append(text)
        return " | ".join(parts)

    def lines(self) -> list[str]:
        """One line per running stage: ``job J stage 1/3 map(f): 120/400 tasks, 12.3 s``."""
        elapsed = self.clock() - self.started
        out = []
        for name in self.running():
            label = self.stages[name].label or name
            if len(label) > LABEL_WIDTH:
                label = label[:LABEL_WIDTH - 3] + "..."
            moved = f", {human_bytes(self.bytes[name])}" if self.bytes[name] else ""
            out.append(f"job {self.job} stage {self.index[name]}/{len(self.stages)} {label}: "
                       f"{self.done[name]}/{self.stages[name].ntasks} tasks{moved}, {elapsed:.1f} s")
        return out

    def tick(self, now: float | None = None) -> bool:
        """Log the stage lines if they are due; True if it logged."""
        now = self.clock() if now is None else now
        with self._lock:
            due = (now - self.started >= max(self.delay, self.log_every)
                   and now - self.last_logged >= self.log_every)
            if not due:
                return False
            self.last_logged = now
            self.logged = True
        for line in self.lines():
            logger.info("%s", line)
        return True

    # -- displays ---------------------------------------------------------------------
    def _make_bar(self, stream):
        if self.mode == WIDGET:
            from tqdm.notebook import tqdm as bar
        elif self.mode in (BAR, TEXT):
            from tqdm.std import tqdm as bar
        else:
            return None
        size = {}
        if self.mode == BAR and not _has_size(stream):
            size = {"ncols": 80, "nrows": 24}  # a terminal reporting 0x0 (some ptys): tqdm would draw nothing
        # The finished bar stays, with the job's time; a job done within the delay never shows one.
        return bar(total=self.total, desc=self.description, unit="task", leave=True, delay=self.delay,
                   file=stream, dynamic_ncols=self.mode == BAR and not size, **size)

    def _tick_loop(self) -> None:
        while not self._stop.wait(min(1.0, max(0.05, self.log_every))):
            self.tick()



def job_progress(plan: Plan, job: str, description: str, settings: dict, background: bool = False,
                 stream=None) -> JobProgress:
    """The progress display of one job; ``background`` says it runs on a thread behind the caller."""
    stream = stream if stream is not None else sys.stderr
    mode = choose_mode(settings["progress"], background, stream)
    return JobProgress(plan, job, description, mode, settings["progress_delay"], stream)
