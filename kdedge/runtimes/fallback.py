"""Teacher fallback clients: ask a bigger model when the student is unsure.

Two targets share one resilient core:

* :class:`OpenAIClient` talks to any OpenAI-compatible ``/v1/chat/completions`` endpoint
  (OpenAI, vLLM, llama.cpp's server, llama-cpp-python's server, ...). ``classify`` asks the
  teacher to pick one label and reply ``{"label": ...}``; ``answer`` is plain chat.
* :class:`KdedgeClient` calls another ``kdedge serve`` endpoint (``POST /predict``), e.g. the
  teacher classifier bundle.

Every call runs through the same machinery (see :mod:`kdedge.runtimes.resilience`): a
per-attempt deadline of ``timeout`` seconds (async: ``asyncio.wait_for`` on the whole
attempt; sync: the body is streamed and the deadline checked as bytes arrive, so a slow-drip
server cannot hold a call -- it may overrun by at most one ``timeout``-long silent read),
retries with jittered exponential backoff and ``Retry-After`` on timeouts, connection
errors, 5xx and 429, a circuit breaker shared by sync and async calls, and a concurrency
limit. Every call ends counted in :meth:`stats` as
ok or failed with one :class:`FallbackError` kind; a call cancelled by its caller counts as
``timeout``.

API keys: read once, at construction, from the environment variable named by
``api_key_env`` and sent as ``Authorization: Bearer``. The key is never logged and never
appears in ``repr``, stats or error messages. ``api_key_env=None`` sends no header; so does
a named variable that is unset (local servers need no key) -- if the server then answers
401/403, the error has kind ``config`` and names the variable.

Structured output (``structured=True``): the first request asks for OpenAI's
``{"type": "json_schema", ...}`` with the label set as an enum. Servers that refuse it
(HTTP 400/422, or a 5xx whose body names ``response_format`` -- llama-cpp-python answers
500 to ``json_schema``) are asked again at once with ``{"type": "json_object", "schema":
...}`` (what llama-cpp-python and llama.cpp turn into a grammar), then with no
``response_format``. The first format the server accepts is remembered for the client; these
re-asks do not use up retries but do count as attempts. Structured output is a hint: the
reply is parsed and checked against the label set either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from kdedge import __version__
from kdedge.errors import KdedgeError
from kdedge.runtimes.resilience import (
    BreakerTicket,
    CircuitBreaker,
    ConcurrencyLimit,
    RetryPolicy,
    parse_retry_after,
)


def _import_httpx() -> ModuleType:
    """``import httpx`` without its optional command-line client.

    httpx's ``__init__`` imports ``httpx._main`` whenever click, rich and pygments are
    installed (they are, for kdedge's CLI), which roughly triples its import time and breaks
    the runtime's rule of never loading click or rich. Blocking that one submodule during
    the import makes httpx fall back to its stub ``main``; the block is lifted afterwards.
    """
    if "httpx" in sys.modules:
        return sys.modules["httpx"]
    blocked = "httpx._main" not in sys.modules
    if blocked:
        sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx
    finally:
        if blocked and sys.modules.get("httpx._main", 0) is None:
            del sys.modules["httpx._main"]
    return httpx


if TYPE_CHECKING:
    import httpx
else:
    httpx = _import_httpx()

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

log = logging.getLogger("kdedge.fallback")

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
# Failures that say the teacher is unavailable, and so count against the circuit breaker.
# A teacher that answered (even with a 4xx, a bad label or unparseable content) is up.
_UNAVAILABLE = _RETRYABLE
_RAW_LIMIT = 2000
_MAX_BODY = 4 * 1024 * 1024
_FORMATS = ("json_schema", "json_object", "off")
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


def _check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    if isinstance(labels, str):
        raise ValueError("labels must be a sequence of strings, not one string")
    out = tuple(labels)
    if not out or not all(isinstance(label, str) and label for label in out):
        raise ValueError("labels must be a non-empty sequence of non-empty strings")
    return out


def _tokens(usage: Any, key: str) -> int:
    if not isinstance(usage, dict):
        return 0
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _error_snippet(body: bytes) -> str:
    text = body[:2000].decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error", data.get("detail"))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error is not None:
            text = str(error)
    return _one_line(text)[:200]


def _display_url(url: httpx.URL) -> str:
    """The URL without user info, for names and messages."""
    return f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}".rstrip("/")


def _ssl_verify(verify: bool | str | ssl.SSLContext) -> bool | ssl.SSLContext:
    if isinstance(verify, (bool, ssl.SSLContext)):
        return verify
    path = Path(verify)
    if not path.exists():
        raise FallbackError(
            "config",
            f"CA bundle {verify} does not exist",
            fix="pass verify=<path to a PEM bundle or directory>, True or False",
        )
    if path.is_dir():
        return ssl.create_default_context(capath=str(path))
    return ssl.create_default_context(cafile=str(path))


# ----------------------------------------------------------------------------- core


@dataclass
class _Response:
    status: int
    headers: httpx.Headers
    body: bytes


@dataclass
class _Outcome:
    label: str | None
    text: str | None
    raw: str


@dataclass
class _Call:
    """Mutable state of one call, across its attempts."""

    level: int = len(_FORMATS) - 1
    attempts: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Stats:
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

    def end(self, call: _Call, latency_ms: float, cost: float, kind: str | None) -> None:
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


_C = TypeVar("_C", bound="_ResilientClient")


class _ResilientClient:
    """HTTP plumbing, retries, breaker, limit and stats shared by the fallback clients."""

    _price_prompt = 0.0
    _price_completion = 0.0

    def __init__(
        self,
        base_url: httpx.URL,
        *,
        source: str,
        api_key_env: str | None,
        timeout: float,
        max_retries: int,
        backoff: float,
        backoff_max: float,
        breaker_failures: int,
        breaker_reset_s: float,
        max_concurrency: int,
        verify: bool | str | ssl.SSLContext,
        transport: httpx.BaseTransport | None,
        async_transport: httpx.AsyncBaseTransport | None,
        clock: Callable[[], float],
    ) -> None:
        self.source = source
        self.name = source
        _require(timeout > 0, f"timeout must be > 0 s, got {timeout}")
        _require(max_retries >= 0, f"max_retries must be >= 0, got {max_retries}")
        _require(backoff >= 0 and backoff_max >= 0, "backoff and backoff_max must be >= 0")
        _require(breaker_reset_s >= 0, f"breaker_reset_s must be >= 0, got {breaker_reset_s}")
        _require(max_concurrency >= 1, f"max_concurrency must be >= 1, got {max_concurrency}")
        self.base_url = base_url
        self.timeout = float(timeout)
        self.policy = RetryPolicy(max_retries, backoff, backoff_max)
        self.breaker = CircuitBreaker(breaker_failures, breaker_reset_s, clock=clock, name=source)
        self.limit = ConcurrencyLimit(max_concurrency)
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env, "").strip() if api_key_env else ""
        self._secret = key or None
        self._headers = {"Accept": "application/json", "User-Agent": f"kdedge/{__version__}"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._verify = _ssl_verify(verify)
        self._transport = transport
        self._async_transport = async_transport
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._aclients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._closed = False
        self._stats = _Stats()
        self._pending_closes: set[Any] = set()

    # -- lifecycle

    def __repr__(self) -> str:
        return f"{type(self).__name__}(source={self.source!r}, state={self.breaker.state!r})"

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self: _C) -> _C:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def close(self) -> None:
        """Close the HTTP connections. Async connections of a loop that is still running in
        another thread are closed there; call :meth:`aclose` from async code instead."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            aclients, self._aclients = self._aclients, {}
        if client is not None:
            client.close()
        for loop, aclient in aclients.items():
            if loop.is_closed():
                continue
            if not loop.is_running():
                with contextlib.suppress(RuntimeError):  # another loop runs in this thread
                    loop.run_until_complete(aclient.aclose())
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                task = loop.create_task(aclient.aclose())
                self._pending_closes.add(task)
                task.add_done_callback(self._pending_closes.discard)
            else:
                asyncio.run_coroutine_threadsafe(aclient.aclose(), loop)

    async def aclose(self) -> None:
        """Close this event loop's connections, then everything else (see :meth:`close`)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._closed = True
            aclient = self._aclients.pop(loop, None)
        if aclient is not None:
            await aclient.aclose()
        self.close()

    def _closed_error(self) -> FallbackError:
        return self._error("config", "the client is closed", fix="create a new fallback client")

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._closed:
                raise self._closed_error()
            if self._client is None:
                self._client = httpx.Client(
                    timeout=httpx.Timeout(self.timeout),
                    verify=self._verify,
                    transport=self._transport,
                    headers=self._headers,
                    follow_redirects=False,
                )
            return self._client

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                raise self._closed_error()
            aclient = self._aclients.get(loop)
            if aclient is None:
                for old in [lp for lp in self._aclients if lp.is_closed()]:
                    del self._aclients[old]  # its loop is gone; nothing can close it now
                aclient = self._aclients[loop] = httpx.AsyncClient(
                    timeout=httpx.Timeout(self.timeout),
                    verify=self._verify,
                    transport=self._async_transport,
                    headers=self._headers,
                    follow_redirects=False,
                )
            return aclient

    # -- stats

    def stats(self) -> dict[str, Any]:
        """Counters since construction: calls, ok, failed by kind, attempts, retries, breaker
        opens, rejected_open, tokens, cost (USD), latency_ms_mean and breaker state."""
        out = {"name": self.name, "state": self.breaker.state}
        out.update(self._stats.snapshot())
        out["breaker_opens"] = self.breaker.opens
        return out

    # -- errors

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _error(self, kind: str, message: str, **kwargs: Any) -> FallbackError:
        fix = kwargs.pop("fix", "")
        return FallbackError(
            kind, self._scrub(message), fix=self._scrub(fix), source=self.source, **kwargs
        )

    def _transport_error(self, exc: httpx.HTTPError) -> FallbackError:
        where = _display_url(self.base_url)
        if isinstance(exc, httpx.TimeoutException):
            return self._error(
                "timeout",
                f"no answer within {self.timeout:g} s ({type(exc).__name__})",
                fix="raise the fallback timeout or check the teacher's load",
            )
        if isinstance(exc, httpx.DecodingError):
            return self._error("malformed", f"response body could not be decoded: {exc}")
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return self._error(
                "connection",
                f"TLS certificate of {where} not trusted ({detail})",
                fix="pass verify=<CA bundle path>, or verify=False for a test server",
                retryable=False,
            )
        return self._error(
            "connection",
            f"connection to {where} failed ({detail})",
            fix="check that the teacher is running and reachable",
        )

    def _status_error(self, resp: _Response, path: str) -> FallbackError | None:
        status = resp.status
        if 200 <= status < 300:
            return None
        snippet = _error_snippet(resp.body)
        retry_after = parse_retry_after(resp.headers.get("retry-after"))
        if status == 429:
            wait = f", Retry-After {retry_after:g} s" if retry_after is not None else ""
            return self._error(
                "rate_limited",
                f"rate limited (HTTP 429{wait}): {snippet}",
                fix="lower the fallback rate or raise the teacher's quota",
                status=status,
                retry_after=retry_after,
            )
        if status >= 500:
            return self._error(
                "http_5xx",
                f"teacher error HTTP {status}: {snippet}",
                fix="check the teacher's logs",
                status=status,
                retry_after=retry_after,
            )
        if status in (401, 403):
            if self.api_key_env and self._secret is None:
                return self._error(
                    "config",
                    f"HTTP {status} and the API key variable {self.api_key_env} is not set",
                    fix=f"export {self.api_key_env}=<your key>",
                    status=status,
                )
            fix = (
                f"check the key in {self.api_key_env}"
                if self.api_key_env
                else "this teacher needs a key: pass api_key_env=<variable holding it>"
            )
            return self._error("http_4xx", f"HTTP {status}: {snippet}", fix=fix, status=status)
        if 300 <= status < 400:
            location = resp.headers.get("location", "?")
            return self._error(
                "http_4xx",
                f"HTTP {status} redirect to {location}",
                fix="use the final URL as the fallback URL",
                status=status,
            )
        fix = f"check the URL ({_display_url(self.base_url)}{path})" if status == 404 else ""
        return self._error("http_4xx", f"HTTP {status}: {snippet}", fix=fix, status=status)

    # -- transport

    def _url(self, path: str) -> httpx.URL:
        return self.base_url.copy_with(path=self.base_url.path.rstrip("/") + path)

    def _check_body(self, body: bytearray, deadline: float) -> None:
        if len(body) > _MAX_BODY:
            raise self._error("malformed", f"response body larger than {_MAX_BODY} bytes")
        if time.monotonic() > deadline:
            raise self._error(
                "timeout",
                f"response body not complete within {self.timeout:g} s",
                fix="raise the fallback timeout or check the teacher's load",
            )

    def _send(self, call: _Call, path: str, payload: dict[str, Any]) -> _Response:
        client = self._sync_client()
        call.attempts += 1
        deadline = time.monotonic() + self.timeout
        try:
            with client.stream("POST", self._url(path), json=payload) as resp:
                body = bytearray()
                self._check_body(body, deadline)
                for chunk in resp.iter_bytes():
                    body += chunk
                    self._check_body(body, deadline)
                return _Response(resp.status_code, resp.headers, bytes(body))
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc

    async def _asend(self, call: _Call, path: str, payload: dict[str, Any]) -> _Response:
        client = self._async_client()
        call.attempts += 1
        deadline = time.monotonic() + self.timeout

        async def fetch() -> _Response:
            async with client.stream("POST", self._url(path), json=payload) as resp:
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    self._check_body(body, deadline)
                return _Response(resp.status_code, resp.headers, bytes(body))

        try:
            return await asyncio.wait_for(fetch(), self.timeout)
        except asyncio.TimeoutError:
            raise self._error(
                "timeout",
                f"no complete answer within {self.timeout:g} s",
                fix="raise the fallback timeout or check the teacher's load",
            ) from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc

    # -- the resilient call

    def _on_retry(self, call: _Call, retry_state: Any) -> None:
        call.retries += 1
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        log.debug("fallback %s: %s; retry %d in %.2f s", self.source, exc, call.retries, wait)

    def _admit(self) -> BreakerTicket:
        ticket = self.breaker.allow()
        if ticket is None:
            raise self._error(
                "circuit_open",
                f"circuit open after repeated failures; next trial in "
                f"{self.breaker.retry_in():.1f} s",
                fix="check the teacher; calls resume on their own once it answers",
            )
        return ticket

    def _settle(self, ticket: BreakerTicket, kind: str) -> None:
        if kind in _UNAVAILABLE:
            self.breaker.failure(ticket)
        else:
            self.breaker.success(ticket)

    def _unexpected(self, exc: Exception) -> FallbackError:
        return self._error("malformed", f"unexpected {type(exc).__name__}: {exc}")

    def _finish(self, call: _Call, start: float, kind: str | None) -> tuple[float, float]:
        latency_ms = (time.perf_counter() - start) * 1000.0
        prompt_cost = call.prompt_tokens * self._price_prompt
        cost = (prompt_cost + call.completion_tokens * self._price_completion) / 1000.0
        self._stats.end(call, latency_ms, cost, kind)
        return latency_ms, cost

    def _answer(
        self, outcome: _Outcome, call: _Call, latency_ms: float, cost: float
    ) -> FallbackAnswer:
        return FallbackAnswer(
            label=outcome.label,
            text=outcome.text,
            source=self.source,
            latency_ms=latency_ms,
            attempts=call.attempts,
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
            cost=cost,
            raw=outcome.raw,
        )

    def _fail_fast(self, error: FallbackError) -> FallbackError:
        """Count a call that failed before it started (bad arguments) and return its error."""
        self._stats.begin()
        self._finish(_Call(), time.perf_counter(), error.kind)
        return error

    def _run(self, op: Callable[[_Call], _Outcome], call: _Call) -> FallbackAnswer:
        start = time.perf_counter()
        self._stats.begin()
        kind: str | None = "timeout"  # interrupted calls count as timed out
        try:
            ticket = self._admit()
            try:
                with self.limit.hold():
                    outcome = self._retry(op, call)
            except FallbackError as exc:
                self._settle(ticket, exc.kind)
                raise
            except BaseException:
                self.breaker.release(ticket)
                raise
            self.breaker.success(ticket)
            kind = None
        except FallbackError as exc:
            kind = exc.kind
            exc.attempts = call.attempts
            raise
        finally:
            latency_ms, cost = self._finish(call, start, kind)
        return self._answer(outcome, call, latency_ms, cost)

    def _retry(self, op: Callable[[_Call], _Outcome], call: _Call) -> _Outcome:
        for attempt in self.policy.retrying(before_sleep=lambda rs: self._on_retry(call, rs)):
            with attempt:
                try:
                    outcome = op(call)
                except FallbackError:
                    raise
                except Exception as exc:
                    raise self._unexpected(exc) from exc
        return outcome

    async def _arun(
        self, op: Callable[[_Call], Awaitable[_Outcome]], call: _Call
    ) -> FallbackAnswer:
        start = time.perf_counter()
        self._stats.begin()
        kind: str | None = "timeout"  # cancelled calls count as timed out
        try:
            ticket = self._admit()
            try:
                async with self.limit.ahold():
                    outcome = await self._aretry(op, call)
            except FallbackError as exc:
                self._settle(ticket, exc.kind)
                raise
            except BaseException:
                self.breaker.release(ticket)
                raise
            self.breaker.success(ticket)
            kind = None
        except FallbackError as exc:
            kind = exc.kind
            exc.attempts = call.attempts
            raise
        finally:
            latency_ms, cost = self._finish(call, start, kind)
        return self._answer(outcome, call, latency_ms, cost)

    async def _aretry(self, op: Callable[[_Call], Awaitable[_Outcome]], call: _Call) -> _Outcome:
        async for attempt in self.policy.aretrying(
            before_sleep=lambda rs: self._on_retry(call, rs)
        ):
            with attempt:
                try:
                    outcome = await op(call)
                except FallbackError:
                    raise
                except Exception as exc:
                    raise self._unexpected(exc) from exc
        return outcome

    def _labels(self, labels: Sequence[str]) -> tuple[str, ...]:
        try:
            return _check_labels(labels)
        except ValueError as exc:
            raise self._fail_fast(
                self._error("config", str(exc), fix="pass the label set as a list of strings")
            ) from None

    def _json_body(self, resp: _Response) -> Any:
        try:
            return json.loads(resp.body)
        except ValueError:
            text = resp.body[:_RAW_LIMIT].decode("utf-8", errors="replace")
            raise self._error(
                "malformed",
                f"response is not JSON: {_one_line(text)[:80]!r}",
                fix=f"check that {_display_url(self.base_url)} is the right kind of endpoint",
                raw=text,
            ) from None

    def _content_error(self, exc: _BadContent, raw: str, labels: Sequence[str]) -> FallbackError:
        shown = ", ".join(labels[:8]) + (", ..." if len(labels) > 8 else "")
        return self._error(
            exc.kind,
            f"{exc} (labels: {shown})",
            fix="use a stronger teacher or structured output",
            raw=raw,
        )


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise FallbackError("config", message, fix="fix the fallback settings")


def _parse_base_url(base_url: str) -> httpx.URL:
    try:
        url = httpx.URL(base_url.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise FallbackError(
            "config",
            f"fallback URL {base_url!r} is invalid ({exc})",
            fix="pass http(s)://host:port",
        ) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise FallbackError(
            "config",
            f"fallback URL {_display_url(url) or base_url!r} is not an http(s) URL",
            fix="pass http(s)://host:port",
        )
    return url.copy_with(path=url.path.rstrip("/") or "/", query=None, fragment=None)


# ----------------------------------------------------------------------------- OpenAI


class OpenAIClient(_ResilientClient):
    """A teacher behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    ``base_url`` may end in ``/v1`` or not. ``timeout`` bounds each attempt end to end;
    ``1 + max_retries`` attempts at most. ``price_*_per_1k`` are USD per 1,000 tokens, for
    :attr:`FallbackAnswer.cost`. ``clock`` drives the circuit breaker (tests inject one).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
        breaker_failures: int = 5,
        breaker_reset_s: float = 30.0,
        max_concurrency: int = 8,
        verify: bool | str | ssl.SSLContext = True,
        price_prompt_per_1k: float = 0.0,
        price_completion_per_1k: float = 0.0,
        max_tokens: int = 64,
        structured: bool = True,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        url = _parse_base_url(base_url)
        path = url.path.rstrip("/")
        if not path.endswith("/v1"):
            url = url.copy_with(path=path + "/v1")
        _require(bool(model), "an OpenAI-compatible fallback needs a model name")
        _require(max_tokens >= 1, f"max_tokens must be >= 1, got {max_tokens}")
        _require(price_prompt_per_1k >= 0 and price_completion_per_1k >= 0, "prices must be >= 0")
        super().__init__(
            url,
            source=f"openai:{model}@{url.netloc.decode('ascii')}",
            api_key_env=api_key_env,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            backoff_max=backoff_max,
            breaker_failures=breaker_failures,
            breaker_reset_s=breaker_reset_s,
            max_concurrency=max_concurrency,
            verify=verify,
            transport=transport,
            async_transport=async_transport,
            clock=clock,
        )
        self.model = model
        self.max_tokens = max_tokens
        self._price_prompt = float(price_prompt_per_1k)
        self._price_completion = float(price_completion_per_1k)
        self._level = 0 if structured else len(_FORMATS) - 1

    @property
    def structured(self) -> str:
        """The response_format in use: ``json_schema``, ``json_object`` or ``off``."""
        return _FORMATS[self._level]

    def stats(self) -> dict[str, Any]:
        """Base stats plus ``structured``, the response_format in use."""
        out = super().stats()
        out["structured"] = self.structured
        return out

    # -- requests

    @staticmethod
    def classify_messages(text: str, labels: Sequence[str]) -> list[dict[str, str]]:
        """The chat messages of a classify call."""
        choices = ", ".join(json.dumps(label) for label in labels)
        system = (
            "You are an intent classifier. Choose exactly one label for the user's message "
            f"from this list: {choices}. Reply with JSON only, exactly "
            '{"label": "<one of the labels>"}, and nothing else.'
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": text}]

    def _payload(
        self,
        messages: list[dict[str, str]],
        labels: Sequence[str] | None,
        level: int,
        max_tokens: int,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": 0,
            "max_tokens": max_tokens,
        }
        if labels is not None and _FORMATS[level] != "off":
            schema = {
                "type": "object",
                "properties": {"label": {"type": "string", "enum": list(labels)}},
                "required": ["label"],
            }
            if _FORMATS[level] == "json_schema":
                payload["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "intent", "schema": schema},
                }
            else:
                payload["response_format"] = {"type": "json_object", "schema": schema}
        return payload

    @staticmethod
    def _format_refused(call: _Call, resp: _Response) -> bool:
        if _FORMATS[call.level] == "off":
            return False
        if resp.status in (400, 422):
            return True
        return resp.status >= 500 and b"response_format" in resp.body

    def _downgrade(self, call: _Call, resp: _Response) -> None:
        log.info(
            "fallback %s: response_format %s refused (HTTP %d); trying %s",
            self.source,
            _FORMATS[call.level],
            resp.status,
            _FORMATS[call.level + 1],
        )
        call.level += 1

    def _remember(self, call: _Call, resp: _Response) -> None:
        if call.level > self._level and resp.status not in (400, 422):
            self._level = call.level

    def _interpret(self, call: _Call, resp: _Response, labels: Sequence[str] | None) -> _Outcome:
        error = self._status_error(resp, "/chat/completions")
        if error is not None:
            raise error
        data = self._json_body(resp)
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise self._error(
                "malformed",
                "response has no choices[0].message.content",
                fix="check that the URL is an OpenAI-compatible chat completions endpoint",
                raw=resp.body[:_RAW_LIMIT].decode("utf-8", errors="replace"),
            ) from None
        usage = data.get("usage")
        call.prompt_tokens += _tokens(usage, "prompt_tokens")
        call.completion_tokens += _tokens(usage, "completion_tokens")
        if not isinstance(content, str):
            raise self._error("malformed", "reply content is not text (null or parts)")
        raw = content[:_RAW_LIMIT]
        if labels is None:
            if not content.strip():
                raise self._error("malformed", "teacher replied with empty text", raw=raw)
            return _Outcome(label=None, text=content, raw=raw)
        try:
            label = _parse_label(content, labels)
        except _BadContent as exc:
            raise self._content_error(exc, raw, labels) from None
        return _Outcome(label=label, text=None, raw=raw)

    def _chat(
        self, messages: list[dict[str, str]], labels: Sequence[str] | None, max_tokens: int
    ) -> Callable[[_Call], _Outcome]:
        def attempt(call: _Call) -> _Outcome:
            while True:
                payload = self._payload(messages, labels, call.level, max_tokens)
                resp = self._send(call, "/chat/completions", payload)
                if labels is None or not self._format_refused(call, resp):
                    break
                self._downgrade(call, resp)
            self._remember(call, resp)
            return self._interpret(call, resp, labels)

        return attempt

    def _achat(
        self, messages: list[dict[str, str]], labels: Sequence[str] | None, max_tokens: int
    ) -> Callable[[_Call], Awaitable[_Outcome]]:
        async def attempt(call: _Call) -> _Outcome:
            while True:
                payload = self._payload(messages, labels, call.level, max_tokens)
                resp = await self._asend(call, "/chat/completions", payload)
                if labels is None or not self._format_refused(call, resp):
                    break
                self._downgrade(call, resp)
            self._remember(call, resp)
            return self._interpret(call, resp, labels)

        return attempt

    @staticmethod
    def _answer_messages(text: str, system: str | None) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": system}] if system else []
        return [*messages, {"role": "user", "content": text}]

    # -- public calls

    def classify(self, text: str, labels: Sequence[str]) -> FallbackAnswer:
        """Ask the teacher for one label of ``labels``; raises :class:`FallbackError`."""
        labels = self._labels(labels)
        op = self._chat(self.classify_messages(text, labels), labels, self.max_tokens)
        return self._run(op, _Call(level=self._level))

    async def aclassify(self, text: str, labels: Sequence[str]) -> FallbackAnswer:
        """Async :meth:`classify`."""
        labels = self._labels(labels)
        op = self._achat(self.classify_messages(text, labels), labels, self.max_tokens)
        return await self._arun(op, _Call(level=self._level))

    def answer(
        self, text: str, system: str | None = None, *, max_tokens: int | None = None
    ) -> FallbackAnswer:
        """Plain chat: the teacher's reply to ``text`` as :attr:`FallbackAnswer.text`."""
        op = self._chat(self._answer_messages(text, system), None, max_tokens or self.max_tokens)
        return self._run(op, _Call())

    async def aanswer(
        self, text: str, system: str | None = None, *, max_tokens: int | None = None
    ) -> FallbackAnswer:
        """Async :meth:`answer`."""
        op = self._achat(self._answer_messages(text, system), None, max_tokens or self.max_tokens)
        return await self._arun(op, _Call())


# ----------------------------------------------------------------------------- kdedge


class KdedgeClient(_ResilientClient):
    """Another ``kdedge serve`` endpoint as the fallback (``POST {base_url}/predict``).

    ``base_url`` may carry the ``kdedge+`` prefix of :func:`open_fallback`. The server's
    label must be in the caller's label set, else ``invalid_label``. No key by default;
    pass ``api_key_env`` if the endpoint sits behind a bearer-token proxy.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key_env: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
        breaker_failures: int = 5,
        breaker_reset_s: float = 30.0,
        max_concurrency: int = 8,
        verify: bool | str | ssl.SSLContext = True,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        base_url = base_url.strip()
        if base_url.startswith(_KDEDGE_PREFIX):
            base_url = base_url[len(_KDEDGE_PREFIX) :]
        url = _parse_base_url(base_url)
        super().__init__(
            url,
            source=f"kdedge:{_display_url(url)}",
            api_key_env=api_key_env,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            backoff_max=backoff_max,
            breaker_failures=breaker_failures,
            breaker_reset_s=breaker_reset_s,
            max_concurrency=max_concurrency,
            verify=verify,
            transport=transport,
            async_transport=async_transport,
            clock=clock,
        )

    def _interpret(self, resp: _Response, labels: Sequence[str]) -> _Outcome:
        error = self._status_error(resp, "/predict")
        if error is not None:
            raise error
        data = self._json_body(resp)
        raw = resp.body[:_RAW_LIMIT].decode("utf-8", errors="replace")
        label = data.get("label") if isinstance(data, dict) else None
        if not isinstance(label, str):
            raise self._error(
                "malformed",
                'response has no string "label"',
                fix="check that the URL is a kdedge serve endpoint",
                raw=raw,
            )
        match = _match_label(label, labels)
        if match is None:
            bad = _BadContent("invalid_label", f"teacher chose {label[:80]!r}, not in the set")
            raise self._content_error(bad, raw, labels)
        return _Outcome(label=match, text=None, raw=raw)

    def classify(self, text: str, labels: Sequence[str]) -> FallbackAnswer:
        """Ask the kdedge endpoint for a label of ``labels``; raises :class:`FallbackError`."""
        labels = self._labels(labels)
        payload = {"text": text, "route": False}

        def attempt(call: _Call) -> _Outcome:
            return self._interpret(self._send(call, "/predict", payload), labels)

        return self._run(attempt, _Call())

    async def aclassify(self, text: str, labels: Sequence[str]) -> FallbackAnswer:
        """Async :meth:`classify`."""
        labels = self._labels(labels)
        payload = {"text": text, "route": False}

        async def attempt(call: _Call) -> _Outcome:
            return self._interpret(await self._asend(call, "/predict", payload), labels)

        return await self._arun(attempt, _Call())


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
