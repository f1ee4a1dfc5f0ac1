"""Teacher fallback: ask a bigger model when the student is unsure.

Two targets share one resilient core (:mod:`kdedge.runtimes.http_client`):

* :class:`OpenAIClient` talks to any OpenAI-compatible ``/v1/chat/completions`` endpoint
  (OpenAI, vLLM, llama.cpp's server, llama-cpp-python's server, ...). ``classify`` asks the
  teacher to pick one label and reply ``{"label": ...}``; ``answer`` is plain chat.
* :class:`KdedgeClient` calls another ``kdedge serve`` endpoint (``POST /predict``), e.g. the
  teacher classifier bundle.

Every call is bounded, retried and accounted for by the core: it ends counted in ``stats()``
as ok or failed with one :class:`FallbackError` kind.

This module is the public surface: the error, answer and target types, :func:`parse_label`
and :func:`open_fallback`. The two clients live in :mod:`kdedge.runtimes.teachers` and are
imported from here lazily, so importing this module alone loads neither httpx nor tenacity.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from kdedge.errors import KdedgeError

if TYPE_CHECKING:
    from kdedge.runtimes.teachers import KdedgeClient, OpenAIClient

__all__ = [
    "KINDS",
    "FallbackAnswer",
    "FallbackError",
    "FallbackTarget",
    "KdedgeClient",
    "OpenAIClient",
    "open_fallback",
    "parse_label",
]

_CLIENTS = frozenset({"KdedgeClient", "OpenAIClient"})


def __getattr__(name: str) -> Any:
    """The clients, imported on first use: they need httpx and tenacity, this module not."""
    if name in _CLIENTS:
        from kdedge.runtimes import teachers

        return getattr(teachers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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

_RETRYABLE = frozenset({"timeout", "connection", "http_5xx", "rate_limited"})
_RAW_LIMIT = 2000
_KDEDGE_PREFIX = "kdedge+"


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
        self.message = _one_line(message)
        self.fix = _one_line(fix)
        self.source = source
        self.status = status
        self.retry_after = retry_after
        self.raw = raw[:_RAW_LIMIT]
        self.retryable = kind in _RETRYABLE if retryable is None else retryable
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


# ----------------------------------------------------------------------------- parsing


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _strip_fences(content: str) -> str:
    text = content.strip()
    match = re.fullmatch(r"```[\w+-]*[ \t]*\n?(.*?)\n?[ \t]*```", text, flags=re.DOTALL)
    return match.group(1).strip() if match else text


def _match_label(candidate: str, labels: Sequence[str]) -> str | None:
    candidate = candidate.strip()
    if candidate in labels:
        return candidate
    folded = [label for label in labels if label.casefold() == candidate.casefold()]
    return folded[0] if len(folded) == 1 else None


class _BadContent(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def parse_label(content: str, labels: Sequence[str]) -> str:
    """The label in a teacher's reply, spelled as in ``labels``.

    Accepts ``{"label": "..."}`` (optionally in a code fence, surrounded by whitespace) or
    a bare label; the match is exact, then case-insensitive. Raises :class:`FallbackError`
    ``malformed`` for anything else and ``invalid_label`` for a JSON label outside the set.
    """
    try:
        return _parse_label(content, labels)
    except _BadContent as exc:
        raise FallbackError(exc.kind, str(exc), raw=content) from None


def _parse_label(content: str, labels: Sequence[str]) -> str:
    body = _strip_fences(content)
    try:
        value: Any = json.loads(body)
    except ValueError:
        value = body
        bare = True
    else:
        bare = isinstance(value, str)
    if isinstance(value, dict):
        label = value.get("label")
        if not isinstance(label, str):
            raise _BadContent("malformed", 'reply is JSON without a string "label" field')
        match = _match_label(label, labels)
        if match is None:
            raise _BadContent(
                "invalid_label", f"teacher chose {label[:80]!r}, which is not in the label set"
            )
        return match
    if bare and isinstance(value, str):
        match = _match_label(value, labels)
        if match is not None:
            return match
    raise _BadContent("malformed", f'reply is neither {{"label": ...}} nor a label: {body[:80]!r}')


# ----------------------------------------------------------------------------- factory

_OPENAI_ONLY = ("max_tokens", "structured", "price_prompt_per_1k", "price_completion_per_1k")


def open_fallback(
    url: str, *, kind: str = "auto", model: str | None = None, **kwargs: Any
) -> OpenAIClient | KdedgeClient:
    """A fallback client for ``url``.

    ``kind``: ``"openai"``, ``"kdedge"`` or ``"auto"`` (kdedge when the URL starts with
    ``kdedge+``, e.g. ``kdedge+http://host:8080``, else openai). ``model`` is required for
    openai and ignored for kdedge, as are the OpenAI-only ``kwargs`` (max_tokens,
    structured, prices) and ``api_key_env="OPENAI_API_KEY"`` (an OpenAI key is never sent
    to a kdedge endpoint; name another variable for one behind a token proxy). Other
    ``kwargs`` go to the client.
    """
    from kdedge.runtimes.teachers import KdedgeClient, OpenAIClient

    url = url.strip()
    if kind == "auto":
        kind = "kdedge" if url.startswith(_KDEDGE_PREFIX) else "openai"
    if kind == "kdedge":
        for key in _OPENAI_ONLY:
            kwargs.pop(key, None)
        if kwargs.get("api_key_env") == "OPENAI_API_KEY":
            del kwargs["api_key_env"]  # never send an OpenAI key to a kdedge endpoint
        return KdedgeClient(url, **kwargs)
    if kind == "openai":
        if url.startswith(_KDEDGE_PREFIX):
            raise FallbackError(
                "config",
                f"URL {url!r} names a kdedge endpoint but kind is 'openai'",
                fix="drop the kdedge+ prefix or use kind='kdedge'",
            )
        if not model:
            raise FallbackError(
                "config",
                f"an OpenAI-compatible fallback at {url} needs a model name",
                fix="pass the teacher's model name (any name for a one-model local server)",
            )
        return OpenAIClient(url, model, **kwargs)
    raise FallbackError(
        "config",
        f"unknown fallback kind {kind!r}",
        fix="use one of: auto, openai, kdedge",
    )
