"""``kdedge serve``: the runtime behind a small threaded HTTP JSON API.

Endpoints: ``POST /predict`` (see :mod:`kdedge.runtimes.api`; a generate bundle answers
questions there), ``POST /rerank`` (also ``/v1/rerank``) for rerank bundles, ``GET
/healthz`` and ``GET /metrics`` (Prometheus text format, via ``prometheus_client``: routes,
latency, teacher calls, and tokens by source and kind).

Built on the standard library's ``ThreadingHTTPServer``: the runtime is already
thread-safe and the API is three routes, so an ASGI stack would add start-up time and
dependencies to every Lambda image and container without serving requests any faster.
Put a reverse proxy in front for TLS.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from kdedge.runtimes.api import MAX_BATCH, handle_predict, health

if TYPE_CHECKING:
    from kdedge.runtimes.generate import GenerationRuntime
    from kdedge.runtimes.runtime import Runtime

MAX_BODY_BYTES = 1 << 20
RERANK_PATHS = ("/rerank", "/v1/rerank")
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class Metrics:
    """Prometheus metrics of one server, in their own registry."""

    def __init__(self, runtime: Runtime | GenerationRuntime) -> None:
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
        info = runtime.info()
        self.info.labels(info["artifact"], info["backend"]).set(1)

    def observe(self, results: list[dict[str, Any]]) -> None:
        for r in results:
            self.predictions.labels(r["route"], r["reason"]).inc()
            if "tokens" in r:  # a generation: the student's own tokens
                self.tokens.labels("student", "prompt").inc(r["prompt_tokens"])
                self.tokens.labels("student", "completion").inc(r["tokens"])
            if "fallback" in r:
                self.fallbacks.labels("ok").inc()
                self.tokens.labels("teacher", "prompt").inc(r["fallback"]["prompt_tokens"])
                self.tokens.labels("teacher", "completion").inc(r["fallback"]["completion_tokens"])
            elif "fallback_error" in r:
                self.fallbacks.labels(r["fallback_error"]).inc()

    def render(self) -> bytes:
        from prometheus_client import generate_latest

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

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are logged by the runtime's TieredLog, not as access lines

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.metrics.requests.labels(self.path.split("?")[0], str(status)).inc()

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode("utf-8"))

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/healthz":
            self._json(200, {**health(self.server.runtime), "uptime_s": self.server.uptime})
        elif path == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST

            self._send(200, self.server.metrics.render(), CONTENT_TYPE_LATEST)
        else:
            self._json(404, {"error": f"no route {path}; try POST /predict, GET /healthz"})

    def do_POST(self) -> None:
        path = self.path.split("?")[0]
        rerank = self.server.runtime.info().get("task") == "rerank"
        paths = ("/predict", *RERANK_PATHS) if rerank else ("/predict",)
        if path not in paths:
            self._json(404, {"error": f"no route {path}; POST to {' or '.join(paths)}"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._json(411, {"error": "send a Content-Length header"})
            return
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._json(413, {"error": f"body of {length} bytes exceeds {MAX_BODY_BYTES}"})
            return
        try:
            payload = json.loads(self.rfile.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._json(400, {"error": f"the body is not valid JSON: {exc}"})
            return
        start = time.perf_counter()
        try:
            status, data = handle_predict(self.server.runtime, payload, self.server.max_batch)
        except Exception as exc:  # a bug or a backend failure: answer 500, keep serving
            self._json(500, {"error": f"prediction failed: {type(exc).__name__}: {exc}"})
            return
        self.server.metrics.latency.observe(time.perf_counter() - start)
        if status == 200:
            self.server.metrics.observe([data] if rerank else data.get("results", [data]))
        self._json(status, data)

    def do_PUT(self) -> None:
        self._json(405, {"error": "use POST /predict or GET /healthz, /metrics"})

    do_DELETE = do_PATCH = do_PUT


class PredictServer(ThreadingHTTPServer):
    """A threaded HTTP server around one :class:`Runtime` or generation runtime."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        runtime: Runtime | GenerationRuntime,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.runtime = runtime
        self.max_batch = max_batch
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

    def start_background(self) -> threading.Thread:
        """Serve from a daemon thread (tests, notebooks); stop with :meth:`shutdown`."""
        thread = threading.Thread(target=self.serve_forever, name="kdedge-serve", daemon=True)
        thread.start()
        return thread
