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
from kdedge.runtimes.server_connections import Connections
from kdedge.runtimes.server_metrics import Metrics

if TYPE_CHECKING:
    from kdedge.runtimes.generate import GenerationRuntime
    from kdedge.runtimes.rerank import RerankRuntime
    from kdedge.runtimes.runtime import Runtime

MAX_BODY_BYTES = 1 << 20
REQUEST_TIMEOUT = 10.0  # seconds a client has to send a whole request (and to read a reply)
MAX_CONNECTIONS = 64  # client connections open at once, each with its own thread
RERANK_PATHS = ("/rerank", "/v1/rerank")
KNOWN_PATHS = frozenset({"/predict", "/healthz", "/metrics", *RERANK_PATHS})
_DIGITS = re.compile(r"[0-9]{1,18}")  # a Content-Length: ASCII digits only, no sign, no "_"


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
