"""What a task prints and logs, captured up to a size cap, for its commit record (or its error).

A user of stateless tasks cannot log into the machine that ran one: what the
task wrote is kept with it. While an attempt runs, ``sys.stdout`` and
``sys.stderr`` are tees that copy each write into the attempt's ``Capture``
(found through a context variable, so concurrent attempts in one process
keep theirs apart) and on to the real stream as before (a local worker's
stderr still reaches the driver's terminal; Lambda's goes to CloudWatch).
A handler on the root logger copies log records the same way. A capture
keeps the first half of its limit and the last half, and counts what it cut
in between: the end of a failing task's output is what explains it.
"""
from __future__ import annotations

import collections
import contextvars
import logging
import sys
import threading

DEFAULT_LIMIT = 64 * 1024   # characters kept per attempt (the task_log_limit setting)
NOTE_LINES = 20             # lines of a failing task's output in its exception's note

_current: contextvars.ContextVar["Capture | None"] = contextvars.ContextVar("graphwren_capture", default=None)
_active: set = set()        # captures running in this process: a thread the user started has no context
_lock = threading.Lock()


class Capture:
    """One attempt's output: its head and tail within ``limit`` characters, and how much was cut."""

    def __init__(self, limit: int):
        self.limit = limit
        self._head: list[str] = []
        self._head_size = 0
        self._tail: collections.deque[str] = collections.deque()
        self._tail_size = 0
        self.cut = 0
        self._token = None
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        if not text or self.limit <= 0:
            return
        with self._lock:
            room = self.limit // 2 - self._head_size
            if room > 0:
                self._head.append(text[:room])
                self._head_size += min(room, len(text))
                text = text[room:]
            if text:
                self._tail.append(text)
                self._tail_size += len(text)
                keep = self.limit - self.limit // 2
                while self._tail_size > keep:
                    first = self._tail[0]
                    over = self._tail_size - keep
                    if len(first) <= over:
                        self._tail.popleft()
                        self._tail_size -= len(first)
                        self.cut += len(first)
                    else:
                        self._tail[0] = first[over:]
                        self._tail_size -= over
                        self.cut += over

    def text(self) -> str:
        with self._lock:
            head, tail = "".join(self._head), "".join(self._tail)
        if not self.cut:
            return head + tail
        return head + f"\n[... graphwren cut {self.cut:,} characters here: task_log_limit={self.limit:,} ...]\n" + tail

    def stop(self) -> None:
        """Stop capturing (idempotent)."""
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
            with _lock:
                _active.discard(self)


def start(limit: int = DEFAULT_LIMIT) -> Capture:
    """Capture this context's prints and log records from now until ``Capture.stop``."""
    _install()
    cap = Capture(limit)
    cap._token = _current.set(cap)
    with _lock:
        _active.add(cap)
    return cap


def _target() -> "Capture | None":
    cap = _current.get()
    if cap is not None:
        return cap
    with _lock:   # a thread the task started: its output is the task's when only one task runs here
        return next(iter(_active)) if len(_active) == 1 else None


class _Tee:
    """``sys.stdout`` or ``sys.stderr`` while graphwren runs tasks: copies writes to the running task."""

    def __init__(self, inner):
        self._inner = inner

    def write(self, text):
        cap = _target()
        if cap is not None and isinstance(text, str):
            cap.write(text)
        return self._inner.write(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        return self._inner.flush()

    def __getattr__(self, name):   # fileno, isatty, encoding, buffer...: the real stream's
        return getattr(self._inner, name)


class _Handler(logging.Handler):
    """Copies log records into the running task's capture; where the root logger had no handler of its
    own, writes warnings on to stderr as Python's last-resort handler would have."""

    def __init__(self):
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        cap = _target()
        try:
            line = self.format(record) + "\n"
        except Exception:  # noqa: BLE001 - a bad log call must not fail the task
            return
        if cap is not None:
            cap.write(line)
        if (logging.lastResort is not None and record.levelno >= logging.lastResort.level
                and logging.root.handlers == [self] and not _has_own_handlers(record.name)):
            stream = sys.stderr
            inner = getattr(stream, "_inner", stream)   # not through the tee: it is captured already
            try:
                inner.write(line)
            except Exception:  # noqa: BLE001
                pass


def _has_own_handlers(name: str) -> bool:
    logger = logging.getLogger(name)
    while logger is not None and logger is not logging.root:
        if logger.handlers:
            return True
        logger = logger.parent if logger.propagate else None
    return False


_handler = _Handler()


def _install() -> None:
    # Cheap when in place; done again when someone (pytest, a notebook) swapped the streams since.
    if not isinstance(sys.stdout, _Tee) and sys.stdout is not None:
        sys.stdout = _Tee(sys.stdout)
    if not isinstance(sys.stderr, _Tee) and sys.stderr is not None:
        sys.stderr = _Tee(sys.stderr)
    if _handler not in logging.root.handlers:
        logging.root.addHandler(_handler)


def attach(exc: BaseException, text: str, where: str) -> None:
    """Give a failing task's exception its output: whole as ``exc.task_log``, its last lines in a note."""
    if not text:
        return
    try:
        exc.task_log = text
    except Exception:  # noqa: BLE001 - an exception type that refuses attributes still gets the note
        pass
    lines = text.rstrip("\n").splitlines()
    shown = lines[-NOTE_LINES:]
    more = f" (last {len(shown)} of {len(lines)} lines)" if len(lines) > len(shown) else ""
    note = f"graphwren: {where} printed{more}:\n" + "\n".join("    " + line for line in shown)
    if hasattr(exc, "add_note"):
        try:
            exc.add_note(note)
        except Exception:  # noqa: BLE001
            pass
