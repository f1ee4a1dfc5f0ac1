"""``kdedge serve``: the runtime behind a small threaded HTTP JSON API.

Endpoints: ``POST /predict`` (see :mod:`kdedge.runtimes.api`; a generate bundle answers
questions there), ``POST /rerank`` (also ``/v1/rerank``) for rerank bundles, ``GET
/healthz`` and ``GET /metrics`` (Prometheus text format, via ``prometheus_client``: routes,
latency, teacher calls, and tokens by source and kind).

Built on the standard library's ``ThreadingHTTPServer``: the runtime is already
thread-safe and the API is three routes, so an ASGI stack would add start-up time and
dependencies to every Lambda image and container without serving requests any faster.
Put a reverse proxy in front for TLS.

Hardened against clients that hold or flood it (docs/runtime.md, "Hardening"): strict
``Content-Length`` (digits only, at most ``max_body_bytes``: else 400, 411 or 413), a
``request_timeout`` for each socket read and write and for each whole request, at most
``max_connections`` connections (and threads) at once, the longest-reading one evicted
for a new connection when the table is full, 503 when all are busy; invalid JSON, JSON
nested too deeply and invalid Unicode are 400s, and an unexpected failure is a 500 with
a one-line error, never a dropped connection.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from kdedge import jsonout
from kdedge.errors import ConfigError
from kdedge.runtimes.api import MAX_BATCH, BadRequest, handle_predict, health, parse_body

if TYPE_CHECKING:
    from kdedge.runtimes.generate import GenerationRuntime
    from kdedge.runtimes.rerank import RerankRuntime
    from kdedge.runtimes.runtime import Runtime

MAX_BODY_BYTES = 1 << 20
REQUEST_TIMEOUT = 10.0  # seconds a client has to send a whole request (and to read a reply)
MAX_CONNECTIONS = 64  # client connections open at once, each with its own thread
RERANK_PATHS = ("/rerank", "/v1/rerank")
KNOWN_PATHS = frozenset({"/predict", "/healthz", "/metrics", *RERANK_PATHS})
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
_DIGITS = re.compile(r"[0-9]{1,18}")  # a Content-Length: ASCII digits only, no sign, no "_"
_ADMIT_WAIT_S = 0.5  # how long a new connection waits for an evicted one to let go


class Connections:
    """The table of open client connections, bounded at ``limit``.

    Each connection is *reading* (waiting for a complete request: a new connection, a
    keep-alive one between requests, or one whose body is still arriving) or *busy* (its
    request is being answered). A connection may read for at most ``timeout`` seconds in
    a row; :meth:`reap` closes those that take longer (a slowloris trickling one byte at a
    time never reaches a socket timeout, but does reach this deadline). When the table is
    full, a new connection evicts the one that has been reading longest, so clients that
    only hold connections open cannot lock out a request that is ready (``/healthz``
    included); when every connection is busy, the new one is refused (503).
    """

    def __init__(self, limit: int, timeout: float) -> None:
        self.limit = limit
        self.timeout = timeout
        self._cond = threading.Condition()
        self._reading: dict[socket.socket, float] = {}  # -> since (monotonic); oldest first
        self._busy: set[socket.socket] = set()
        self._closing: set[socket.socket] = set()  # shut down, its thread not yet gone
        self.evicted = {"capacity": 0, "timeout": 0}
        self.rejected = 0

    @property
    def open(self) -> int:
        return len(self._reading) + len(self._busy) + len(self._closing)

    def admit(self, sock: socket.socket) -> bool:
        """Take a slot for ``sock`` (evicting the longest-reading connection if need be);
        False when every slot is busy answering a request."""
        with self._cond:
            if self.open >= self.limit and self._reading:
                self._close(next(iter(self._reading)), "capacity")
            deadline = time.monotonic() + _ADMIT_WAIT_S
            while self.open >= self.limit:
                left = deadline - time.monotonic()
                if left <= 0 or (not self._closing and not self._reading):
                    self.rejected += 1
                    return False
                if not self._closing and self._reading:
                    self._close(next(iter(self._reading)), "capacity")
                self._cond.wait(left)
            self._reading[sock] = time.monotonic()
            return True

    def busy(self, sock: socket.socket) -> bool:
        """``sock`` has a whole request; False if it was closed meanwhile (do not answer)."""
        with self._cond:
            if self._reading.pop(sock, None) is None:
                return False
            self._busy.add(sock)
            return True

    def reading(self, sock: socket.socket) -> None:
        """``sock`` was answered and waits for its next request (keep-alive)."""
        with self._cond:
            if sock in self._busy:
                self._busy.discard(sock)
                self._reading[sock] = time.monotonic()

    def release(self, sock: socket.socket) -> None:
        """The connection's thread is done with it."""
        with self._cond:
            self._reading.pop(sock, None)
            self._busy.discard(sock)
            self._closing.discard(sock)
            self._cond.notify_all()

    def reap(self) -> None:
        """Close the connections that have been reading for longer than ``timeout`` (plus
        half a second: a silent client meets its socket timeout first and gets a 408; this
        catches those that keep the socket timeout at bay by trickling bytes)."""
        now = time.monotonic()
        with self._cond:
            late = [s for s, since in self._reading.items() if now - since > self.timeout + 0.5]
            for sock in late:
                self._close(sock, "timeout")

    def close_all(self) -> None:
        with self._cond:
            for sock in [*self._reading, *self._busy]:
                self._close(sock, None)

    def _close(self, sock: socket.socket, why: str | None) -> None:
        """Shut ``sock`` down (its thread wakes from recv with EOF and ends); lock held."""
        self._reading.pop(sock, None)
        self._busy.discard(sock)
        self._closing.add(sock)
        if why is not None:
            self.evicted[why] += 1
        with contextlib.suppress(OSError):  # already closed by its thread
            sock.shutdown(socket.SHUT_RDWR)


class Metrics:
    """Prometheus metrics of one server, in their own registry."""

    def __init__(self, runtime: Runtime | GenerationRuntime | RerankRuntime) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.runtime = runtime
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "kdedge_http_requests",
            "HTTP requests by path and status",
            ["path", "status"],
            registry=r,
        )
        self.predictions = Counter(
            "kdedge_predictions",
            "Predictions by route and reason",
            ["route", "reason"],
            registry=r,
        )
        self.latency = Histogram(
            "kdedge_predict_seconds",
            "Wall time of POST /predict",
            registry=r,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
        )
        self.fallbacks = Counter(
            "kdedge_fallback_calls", "Teacher calls by outcome", ["outcome"], registry=r
        )
        self.tokens = Counter(
            "kdedge_tokens",
            "Tokens by source (student, teacher) and kind (prompt, completion)",
            ["source", "kind"],
            registry=r,
        )
        self.window_rate = Gauge(
            "kdedge_fallback_window_rate",
            "Fallback share in the router's budget window",
            registry=r,
        )
        self.breaker = (
            None
            if runtime.fallback is None
            else Gauge(
                "kdedge_fallback_breaker_state",
                "Teacher breaker: 0 closed, 1 half-open, 2 open",
                registry=r,
            )
        )
        self.log_bytes = Gauge(
            "kdedge_log_avg_bytes", "Average request-log payload per tier", ["tier"], registry=r
        )
        self.info = Gauge(
            "kdedge_runtime_info", "The artifact being served", ["artifact", "backend"], registry=r
        )
        self.model_errors = Counter(
            "kdedge_model_errors",
            "Predictions whose model output was not finite (NaN/inf), never answered",
            registry=r,
        )
        self.connections_open = Gauge(
            "kdedge_connections_open", "Client connections open now", registry=r
        )
        self.connections_evicted = Gauge(
            "kdedge_connections_evicted",
            "Connections closed while still sending their request, by why: capacity (the "
            "table was full) or timeout (no whole request within --request-timeout)",
            ["reason"],
            registry=r,
        )
        self.connections_rejected = Gauge(
            "kdedge_connections_rejected",
            "Connections answered 503 because every slot was busy answering a request",
            registry=r,
        )
        info = runtime.info()
        self.info.labels(info["artifact"], info["backend"]).set(1)

    def observe(self, results: list[dict[str, Any]]) -> None:
        for r in results:
            self.predictions.labels(r["route"], r["reason"]).inc()
            if r["reason"] == "model_error":
                self.model_errors.inc()
            if "tokens" in r:  # a generation: the student's own tokens
                self.tokens.labels("student", "prompt").inc(r["prompt_tokens"])
                self.tokens.labels("student", "completion").inc(r["tokens"])
            if "fallback" in r:
                self.fallbacks.labels("ok").inc()
                self.tokens.labels("teacher", "prompt").inc(r["fallback"]["prompt_tokens"])
                self.tokens.labels("teacher", "completion").inc(r["fallback"]["completion_tokens"])
            elif "fallback_error" in r:
                self.fallbacks.labels(r["fallback_error"]).inc()

    def render(self, connections: Connections | None = None) -> bytes:
        from prometheus_client import generate_latest

        if connections is not None:
            self.connections_open.set(connections.open)
            for why, n in connections.evicted.items():
                self.connections_evicted.labels(why).set(n)
            self.connections_rejected.set(connections.rejected)
        stats = self.runtime.stats()
        self.window_rate.set(stats["router"]["window_fallback_rate"])
        state = stats.get("fallback", {}).get("state")
        if self.breaker is not None and state in BREAKER_STATES:
            self.breaker.set(BREAKER_STATES[state])
        for tier, t in stats.get("log", {}).get("tiers", {}).items():
            self.log_bytes.labels(tier).set(t["avg_bytes"])
        return generate_latest(self.registry)


class _Handler(BaseHTTPRequestHandler):
    server: PredictServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.timeout = self.server.request_timeout  # every recv and send, not only the first
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are logged by the runtime's TieredLog, not as access lines

    def handle_one_request(self) -> None:
        """One request; a bug anywhere in answering it is a 500 (then the traceback, for the
        operator, via handle_error), never a connection dropped without a reply."""
        self._replied = False
        try:
            super().handle_one_request()
        except OSError:
            raise
        except Exception as exc:
            self.close_connection = True
            if not self._replied:
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                with contextlib.suppress(OSError):
                    self._json(500, {"error": f"internal error: {type(exc).__name__}: {first}"})
            raise

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        path = self.path.split("?")[0]
        # counted before the reply leaves: a client that reads /metrics right after its
        # answer must see it. Known paths only: a label per invented path grows unbounded.
        self.server.metrics.requests.labels(
            path if path in KNOWN_PATHS else "other", str(status)
        ).inc()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self._replied = True
        self.wfile.write(body)
        if not self.close_connection:
            self.server.connections.reading(self.request)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, jsonout.dumps(data, ensure_ascii=False).encode("utf-8"))

    def _refuse(self, status: int, message: str) -> None:
        """An error after which the rest of the request is not read: close the connection."""
        self.close_connection = True
        self._json(status, {"error": message})

    def do_GET(self) -> None:
        if not self.server.connections.busy(self.request):
            self.close_connection = True
            return
        path = self.path.split("?")[0]
        if path == "/healthz":
            self._json(200, {**health(self.server.runtime), "uptime_s": self.server.uptime})
        elif path == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST

            body = self.server.metrics.render(self.server.connections)
            self._send(200, body, CONTENT_TYPE_LATEST)
        else:
            self._json(404, {"error": f"no route {path}; try POST /predict, GET /healthz"})

    def _body(self) -> bytes | None:
        """The request body, after strict checks of its framing; None when the request was
        answered with an error (or the connection is gone)."""
        if "Transfer-Encoding" in self.headers:
            self._refuse(
                411, "send the body with a Content-Length header (chunked bodies are not accepted)"
            )
            return None
        values = self.headers.get_all("Content-Length") or []
        if not values:
            self._refuse(411, "send a Content-Length header")
            return None
        value = values[0].strip()
        if len(set(values)) > 1 or not _DIGITS.fullmatch(value):
            self._refuse(
                400,
                "Content-Length must be one non-negative integer in digits, got "
                f"{', '.join(values)[:40]!r}",
            )
            return None
        length = int(value)
        limit = self.server.max_body_bytes
        if length > limit:
            self._refuse(413, f"body of {length} bytes exceeds {limit}")
            return None
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self._refuse(408, f"the body did not arrive within {self.server.request_timeout:g} s")
            return None
        if len(body) < length:  # the client went away, or the connection was evicted
            self.close_connection = True
            return None
        return body

    def do_POST(self) -> None:
        path = self.path.split("?")[0]
        runtime = self.server.runtime
        rerank = runtime.info().get("task") == "rerank"
        paths = ("/predict", *RERANK_PATHS) if rerank else ("/predict",)
        if path not in paths:
            self._refuse(404, f"no route {path}; POST to {' or '.join(paths)}")
            return
        body = self._body()
        if body is None:
            return
        if not self.server.connections.busy(self.request):
            self.close_connection = True
            return
        try:
            payload = parse_body(body)
        except BadRequest as exc:
            self._json(400, {"error": str(exc)})
            return
        start = time.perf_counter()
        try:
            status, data = handle_predict(runtime, payload, self.server.max_batch)
        except Exception as exc:  # a bug or a backend failure: answer 500, keep serving
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            self._json(500, {"error": f"prediction failed: {type(exc).__name__}: {first}"})
            return
        self.server.metrics.latency.observe(time.perf_counter() - start)
        if status == 200:
            self.server.metrics.observe([data] if rerank else data.get("results", [data]))
        self._json(status, data)

    def do_PUT(self) -> None:
        self._refuse(405, "use POST /predict or GET /healthz, /metrics")

    do_DELETE = do_PATCH = do_PUT


class PredictServer(ThreadingHTTPServer):
    """A threaded HTTP server around one runtime (classifier, generator or reranker).

    Bounded: at most ``max_connections`` client connections (and so threads) at once; a
    client has ``request_timeout`` seconds to send a whole request, and each socket read or
    write times out after as long; bodies over ``max_body_bytes`` are refused (413). See
    :class:`Connections` for what happens when the table is full.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the listen backlog

    def __init__(
        self,
        runtime: Runtime | GenerationRuntime | RerankRuntime,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        max_batch: int = MAX_BATCH,
        request_timeout: float = REQUEST_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        if not request_timeout > 0 or max_connections < 1 or max_body_bytes < 1:
            raise ConfigError(
                "request_timeout must be > 0, max_connections and max_body_bytes >= 1; got "
                f"{request_timeout}, {max_connections}, {max_body_bytes}"
            )
        self.runtime = runtime
        self.max_batch = max_batch
        self.request_timeout = float(request_timeout)
        self.max_body_bytes = max_body_bytes
        self.connections = Connections(max_connections, self.request_timeout)
        self.metrics = Metrics(runtime)
        self.started = time.monotonic()
        super().__init__((host, port), _Handler)

    @property
    def uptime(self) -> float:
        return round(time.monotonic() - self.started, 3)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def serve_forever(self, poll_interval: float = 0.25) -> None:
        super().serve_forever(poll_interval)

    def service_actions(self) -> None:
        """Called by :meth:`serve_forever` between requests (every ``poll_interval``)."""
        self.connections.reap()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.connections.admit(request):
            self._busy_reply(request)
            return
        try:
            super().process_request(request, client_address)  # a thread for this connection
        except BaseException:
            self.connections.release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release(request)

    def _busy_reply(self, request: socket.socket) -> None:
        """503 to a connection no slot is free for, without a thread, in milliseconds."""
        body = jsonout.dumps(
            {
                "error": f"server busy: all {self.connections.limit} connections are answering "
                "requests; retry shortly"
            }
        ).encode()
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
        ).encode()
        try:
            request.settimeout(0.02)
            request.sendall(head + body)
            request.shutdown(socket.SHUT_WR)
            _drain(request)  # closing with unread bytes would reset the connection
        except OSError:
            pass
        finally:
            request.close()
        self.metrics.requests.labels("other", "503").inc()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away, timed out or was evicted is not an error worth a
        traceback; anything else is a bug and keeps it."""
        import sys

        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def server_close(self) -> None:
        super().server_close()
        self.connections.close_all()

    def start_background(self) -> threading.Thread:
        """Serve from a daemon thread (tests, notebooks); stop with :meth:`shutdown`."""
        thread = threading.Thread(target=self.serve_forever, name="kdedge-serve", daemon=True)
        thread.start()
        return thread


def _drain(sock: socket.socket, limit: int = 1 << 16) -> None:
    """Read what the client already sent (up to ``limit`` bytes, until the socket's timeout)."""
    got = 0
    while got < limit:
        chunk = sock.recv(4096)
        if not chunk:
            return
        got += len(chunk)
