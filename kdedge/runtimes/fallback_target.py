"""What a teacher fallback is: the target protocol, its answer and its errors.

The router calls a :class:`FallbackTarget`; every failed call ends as one
:class:`FallbackError` whose :attr:`~FallbackError.kind` is one of :data:`KINDS`. The
clients (:mod:`kdedge.runtimes.teachers`) and their resilient HTTP core
(:mod:`kdedge.runtimes.http_client`) build on this module; it imports neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from kdedge.errors import KdedgeError

KINDS: tuple[str, ...] = (
    "timeout",
    "connection",
    "http_5xx",
    "rate_limited",
    "http_4xx",
    "malformed",
    "invalid_label",
    "circuit_open",
    "config",
)
"""Every :attr:`FallbackError.kind`, in the order stats list them."""

RETRYABLE = frozenset({"timeout", "connection", "http_5xx", "rate_limited"})
RAW_LIMIT = 2000
"""Characters of a teacher reply kept on an error."""
KDEDGE_PREFIX = "kdedge+"
"""URL prefix naming a ``kdedge serve`` teacher."""


class FallbackError(KdedgeError):
    """A fallback call failed; :attr:`kind` says how (one of :data:`KINDS`).

    Also carries ``source``, ``status`` (HTTP status when there was one), ``retry_after``
    (seconds, from the server), ``raw`` (the teacher's reply, truncated, for malformed and
    invalid_label) and ``attempts`` (requests sent by the call).
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        fix: str = "",
        source: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        raw: str = "",
        retryable: bool | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fallback error kind {kind!r}")
        self.kind = kind
        self.message = one_line(message)
        self.fix = one_line(fix)
        self.source = source
        self.status = status
        self.retry_after = retry_after
        self.raw = raw[:RAW_LIMIT]
        self.retryable = kind in RETRYABLE if retryable is None else retryable
        self.attempts = 0
        super().__init__(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, self.message), self.__dict__.copy())

    def __str__(self) -> str:
        where = f"fallback {self.source}" if self.source else "fallback"
        tail = f" (after {self.attempts} attempts)" if self.attempts > 1 else ""
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"{where}: {self.message.rstrip('.')}{tail}.{fix}"


@dataclass(frozen=True)
class FallbackAnswer:
    """What the teacher said, with the cost of asking."""

    label: str | None
    text: str | None
    source: str
    latency_ms: float
    attempts: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    raw: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


@runtime_checkable
class FallbackTarget(Protocol):
    """What the router needs from a fallback: classify, sync or async, plus stats."""

    name: str

    def classify(self, text: str, labels: Sequence[str]) -> FallbackAnswer: ...

    async def aclassify(self, text: str, labels: Sequence[str]) -> FallbackAnswer: ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def one_line(text: str) -> str:
    """``text`` on one line, runs of whitespace folded to one space."""
    return " ".join(str(text).split())
