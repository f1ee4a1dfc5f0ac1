"""One teacher call's state across its attempts, and a client's counters over all its calls."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from kdedge.runtimes.fallback_target import KINDS

RESPONSE_FORMATS = ("json_schema", "json_object", "off")
"""Structured-output modes, strictest first; a call steps down when a server refuses one."""


@dataclass
class Call:
    """Mutable state of one call, across its attempts."""

    level: int = len(RESPONSE_FORMATS) - 1
    attempts: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class CallStats:
    """Thread-safe counters over every call of one client, for ``stats()``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.ok = 0
        self.failed = dict.fromkeys(KINDS, 0)
        self.in_flight = 0
        self.attempts = 0
        self.retries = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost = 0.0
        self.latency_ms_total = 0.0

    def begin(self) -> None:
        with self._lock:
            self.in_flight += 1

    def end(self, call: Call, latency_ms: float, cost: float, kind: str | None) -> None:
        with self._lock:
            self.in_flight -= 1
            self.calls += 1
            if kind is None:
                self.ok += 1
            else:
                self.failed[kind] += 1
            self.attempts += call.attempts
            self.retries += call.retries
            self.prompt_tokens += call.prompt_tokens
            self.completion_tokens += call.completion_tokens
            self.cost += cost
            self.latency_ms_total += latency_ms

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": self.calls,
                "ok": self.ok,
                "failed": dict(self.failed),
                "in_flight": self.in_flight,
                "attempts": self.attempts,
                "retries": self.retries,
                "rejected_open": self.failed["circuit_open"],
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "cost": self.cost,
                "latency_ms_mean": self.latency_ms_total / self.calls if self.calls else 0.0,
            }
