"""The Prometheus metrics of one ``kdedge serve`` process, in their own registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdedge.runtimes.generate import GenerationRuntime
    from kdedge.runtimes.rerank import RerankRuntime
    from kdedge.runtimes.runtime import Runtime
    from kdedge.runtimes.server_connections import Connections

BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


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
