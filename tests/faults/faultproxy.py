"""Faults on the wire, on loopback: an HTTP proxy in front of S3 and a TCP proxy that loses Redis replies.

FaultProxy forwards S3 requests (path-style, as graphwren sends them to a custom
endpoint) to the real server and, by rules with a seeded probability per request
class, answers 500 / 503 / 503 SlowDown itself, drops the connection before or
after the request reached the server, holds the reply past the client's read
timeout, or cuts a body short. Every wait is bounded and ends at close().
"""
from __future__ import annotations

import collections
import dataclasses
import http.client
import http.server
import random
import socket
import struct
import threading
import time
from urllib.parse import urlsplit

CLASSES = frozenset({"GET", "HEAD", "PUT", "LIST", "DELETE", "OTHER"})
FAULTS = ("500", "503", "slowdown", "drop-request", "drop-reply", "delay", "truncate")
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
        "upgrade", "expect", "content-length"}
_ERRORS = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "ServiceUnavailable", "Service is unable to handle request."),
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
}


@dataclasses.dataclass
class Rule:
    """Inject ``fault`` into requests of ``classes`` with probability ``p``.

    ``start``/``duration`` (seconds after the rules were set) limit it to a window,
    ``limit`` to that many injections, ``path`` to requests whose path contains it;
    ``delay`` is how long a "delay" fault holds.
    """

    fault: str
    classes: frozenset = CLASSES
    p: float = 1.0
    path: str | None = None
    start: float = 0.0
    duration: float | None = None
    limit: int | None = None
    delay: float = 0.0
    fired: int = 0

    def __post_init__(self):
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; known: {FAULTS}")
        self.classes = frozenset(self.classes)
        if not self.classes <= CLASSES:
            raise ValueError(f"unknown request classes {sorted(self.classes - CLASSES)}")


def classify(method: str, path: str) -> str:
    """The request class of a path-style S3 request."""
    parts = urlsplit(path)
    bucket_level = "/" not in parts.path.strip("/")
    if method == "GET":
        return "LIST" if bucket_level else "GET"
    if method == "POST" and "delete" in parts.query:
        return "DELETE"
    if method in ("HEAD", "PUT", "DELETE"):
        return method
    return "OTHER"


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 that injects faults into the requests it forwards."""

    def __init__(self, upstream: str, seed: int = 0):
        up = urlsplit(upstream)
        if up.hostname != "127.0.0.1":
            raise ValueError(f"the fault proxy forwards to loopback only, not {upstream!r}")
        self.upstream = (up.hostname, up.port)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._local = threading.local()
        self.set_rules([], seed)
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="fault-proxy", daemon=True)
        self._thread.start()

    def set_rules(self, rules: list[Rule], seed: int = 0) -> None:
        """Replace the rules; windows count from now; the counters start again."""
        with self._lock:
            self.rules = list(rules)
            self._rng = random.Random(seed)
            self._t0 = time.monotonic()
            self.requests: collections.Counter = collections.Counter()
            self.injected: collections.Counter = collections.Counter()

    def decide(self, kind: str, path: str) -> Rule | None:
        with self._lock:
            self.requests[kind] += 1
            now = time.monotonic() - self._t0
            for rule in self.rules:
                if kind not in rule.classes or now < rule.start:
                    continue
                if rule.path is not None and rule.path not in path:
                    continue
                if rule.duration is not None and now >= rule.start + rule.duration:
                    continue
                if rule.limit is not None and rule.fired >= rule.limit:
                    continue
                if self._rng.random() < rule.p:
                    rule.fired += 1
                    self.injected[rule.fault] += 1
                    return rule
        return None

    def forward(self, method: str, path: str, headers, body: bytes):
        conn = getattr(self._local, "conn", None)
        for attempt in range(2):  # a pooled upstream connection may have gone stale
            if conn is None:
                conn = http.client.HTTPConnection(*self.upstream, timeout=30)
                self._local.conn = conn
            try:
                conn.request(method, path, body=body or None,
                             headers={k: v for k, v in headers.items() if k.lower() not in _HOP}
                             | {"Content-Length": str(len(body))})
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, resp.reason, resp.getheaders(), data
            except (http.client.HTTPException, OSError):
                conn.close()
                conn = self._local.conn = None
                if attempt:
                    raise

    def wait(self, seconds: float) -> None:
        self._closing.wait(seconds)

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class _Handler(http.server.BaseHTTPRequestHandler):
    """One client connection: read a request, maybe inject a fault, forward, reply."""

    protocol_version = "HTTP/1.1"
    owner: FaultProxy
    timeout = 60  # an idle client connection is closed after this

    def log_message(self, *args):  # quiet: the test output is the table
        pass

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _drop(self) -> None:
        # RST instead of FIN: what a crashed server or a broken middlebox looks like.
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass

    def _error(self, fault: str) -> None:
        status, code, message = _ERRORS[fault]
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        proxy = self.owner
        body = self._body()
        rule = proxy.decide(classify(self.command, self.path), self.path)
        fault = rule.fault if rule else None
        if fault == "drop-request":
            return self._drop()
        if fault in _ERRORS:
            return self._error(fault)
        try:
            status, reason, headers, data = proxy.forward(self.command, self.path, self.headers, body)
        except (http.client.HTTPException, OSError):
            return self._drop()
        if fault == "drop-reply":  # the request landed; its reply is lost
            return self._drop()
        if fault == "delay":
            proxy.wait(rule.delay)
        self.send_response(status, reason)
        length = None
        for k, v in headers:
            if k.lower() == "content-length" and self.command == "HEAD":
                length = v  # a HEAD's length is the object's: pass it on
            if k.lower() not in _HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", length if length is not None else str(len(data)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault == "truncate" and len(data) > 1:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            return self._drop()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle


class RedisReplyCutter:
    """A TCP proxy to a loopback Redis that, when armed, lets a command through and then
    cuts the client's connection instead of passing on the reply: the write landed, the
    writer never heard."""

    def __init__(self, upstream_port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._lock = threading.Lock()
        self._armed: list[bytes] = []  # one needle per cut still to make
        self.cuts = 0
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._spawn(self._accept)

    def arm(self, needle: bytes, times: int = 1) -> None:
        """Cut the connection after the reply to each of the next ``times`` commands containing needle."""
        with self._lock:
            self._armed += [needle] * times

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True, name="redis-cutter")
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server = socket.create_connection(self.upstream, timeout=10)
            for s in (client, server):
                s.settimeout(0.2)
            with self._lock:
                self._conns += [client, server]
            state = {"cut_next_reply": False}
            self._spawn(self._pump, client, server, state, True)
            self._spawn(self._pump, server, client, state, False)

    def _pump(self, src: socket.socket, dst: socket.socket, state: dict, upward: bool) -> None:
        while not self._closing.is_set():
            try:
                data = src.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                break
            if upward:
                with self._lock:
                    hit = next((n for n in self._armed if n in data), None)
                    if hit is not None:
                        self._armed.remove(hit)
                        state["cut_next_reply"] = True
            elif state["cut_next_reply"]:
                with self._lock:
                    self.cuts += 1
                break  # the reply is dropped on the floor
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._closing.set()
        self._sock.close()
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            try:
                s.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=5)
