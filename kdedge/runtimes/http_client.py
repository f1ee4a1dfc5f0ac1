"""The resilient HTTP core shared by the teacher clients of :mod:`kdedge.runtimes.teachers`.

Every call runs through the same machinery (see :mod:`kdedge.runtimes.resilience`): a
per-attempt deadline of ``timeout`` seconds (async: ``asyncio.wait_for`` on the whole
attempt; sync: the body is streamed and the deadline checked as bytes arrive, so a slow-drip
server cannot hold a call -- it may overrun by at most one ``timeout``-long silent read),
retries (tenacity) with jittered exponential backoff and ``Retry-After`` on timeouts,
connection errors, 5xx and 429, a circuit breaker shared by sync and async calls, and a
concurrency limit. Every call ends counted in ``stats()`` as ok or failed with one
:class:`~kdedge.runtimes.fallback.FallbackError` kind; a call cancelled by its caller counts
as ``timeout``.

API keys: read once, at construction, from the environment variable named by
``api_key_env`` and sent as ``Authorization: Bearer``. The key is never logged and never
appears in ``repr``, stats or error messages. ``api_key_env=None`` sends no header; so does
a named variable that is unset (local servers need no key) -- if the server then answers
401/403, the error has kind ``config`` and names the variable.

The connections are :mod:`kdedge.runtimes.http_pool`'s, the mapping of HTTP failures to
error kinds :mod:`kdedge.runtimes.http_errors`'s, the per-call counters
:mod:`kdedge.runtimes.calls`'.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from kdedge import __version__
from kdedge.runtimes.calls import Call, CallStats
from kdedge.runtimes.fallback_target import (
    RAW_LIMIT,
    RETRYABLE,
    FallbackAnswer,
    FallbackError,
    one_line,
)
from kdedge.runtimes.http_errors import status_error, transport_error
from kdedge.runtimes.http_pool import ConnectionPool, display_url, import_httpx
from kdedge.runtimes.resilience import (
    BreakerTicket,
    CircuitBreaker,
    ConcurrencyLimit,
    RetryPolicy,
)
from kdedge.runtimes.teacher_reply import BadContent

if TYPE_CHECKING:
    import httpx
else:
    httpx = import_httpx()

log = logging.getLogger("kdedge.fallback")

# Failures that say the teacher is unavailable, and so count against the circuit breaker.
# A teacher that answered (even with a 4xx, a bad label or unparseable content) is up.
_UNAVAILABLE = RETRYABLE
_MAX_BODY = 4 * 1024 * 1024


def _check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    if isinstance(labels, str):
        raise ValueError("labels must be a sequence of strings, not one string")
    out = tuple(labels)
    if not out or not all(isinstance(label, str) and label for label in out):
        raise ValueError("labels must be a non-empty sequence of non-empty strings")
    return out


@dataclass
class Response:
    """One HTTP reply, read whole (bounded by the body limit)."""

    status: int
    headers: httpx.Headers
    body: bytes


@dataclass
class Outcome:
    """What a client made of a reply: a label, a text, and the raw content."""

    label: str | None
    text: str | None
    raw: str


_C = TypeVar("_C", bound="ResilientClient")


class ResilientClient:
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
        ensure(timeout > 0, f"timeout must be > 0 s, got {timeout}")
        ensure(max_retries >= 0, f"max_retries must be >= 0, got {max_retries}")
        ensure(backoff >= 0 and backoff_max >= 0, "backoff and backoff_max must be >= 0")
        ensure(breaker_reset_s >= 0, f"breaker_reset_s must be >= 0, got {breaker_reset_s}")
        ensure(max_concurrency >= 1, f"max_concurrency must be >= 1, got {max_concurrency}")
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
        self._pool = ConnectionPool(
            timeout=self.timeout,
            verify=verify,
            headers=self._headers,
            transport=transport,
            async_transport=async_transport,
            closed_error=lambda: self._error(
                "config", "the client is closed", fix="create a new fallback client"
            ),
        )
        self._stats = CallStats()

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
        """Close the HTTP connections (:meth:`ConnectionPool.close`); later calls fail."""
        self._pool.close()

    async def aclose(self) -> None:
        """Close this event loop's connections, then everything else."""
        await self._pool.aclose()

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
        return transport_error(exc, error=self._error, base_url=self.base_url, timeout=self.timeout)

    def _status_error(self, resp: Response, path: str) -> FallbackError | None:
        return status_error(
            resp.status,
            resp.headers,
            resp.body,
            path,
            error=self._error,
            base_url=self.base_url,
            api_key_env=self.api_key_env,
            has_key=self._secret is not None,
        )

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

    def _send(self, call: Call, path: str, payload: dict[str, Any]) -> Response:
        client = self._pool.client()
        call.attempts += 1
        deadline = time.monotonic() + self.timeout
        try:
            with client.stream("POST", self._url(path), json=payload) as resp:
                body = bytearray()
                self._check_body(body, deadline)
                for chunk in resp.iter_bytes():
                    body += chunk
                    self._check_body(body, deadline)
                return Response(resp.status_code, resp.headers, bytes(body))
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc

    async def _asend(self, call: Call, path: str, payload: dict[str, Any]) -> Response:
        client = self._pool.aclient()
        call.attempts += 1
        deadline = time.monotonic() + self.timeout

        async def fetch() -> Response:
            async with client.stream("POST", self._url(path), json=payload) as resp:
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    self._check_body(body, deadline)
                return Response(resp.status_code, resp.headers, bytes(body))

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

    def _on_retry(self, call: Call, retry_state: Any) -> None:
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

    def _finish(self, call: Call, start: float, kind: str | None) -> tuple[float, float]:
        latency_ms = (time.perf_counter() - start) * 1000.0
        prompt_cost = call.prompt_tokens * self._price_prompt
        cost = (prompt_cost + call.completion_tokens * self._price_completion) / 1000.0
        self._stats.end(call, latency_ms, cost, kind)
        return latency_ms, cost

    def _answer(
        self, outcome: Outcome, call: Call, latency_ms: float, cost: float
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
        self._finish(Call(), time.perf_counter(), error.kind)
        return error

    def _run(self, op: Callable[[Call], Outcome], call: Call) -> FallbackAnswer:
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

    def _retry(self, op: Callable[[Call], Outcome], call: Call) -> Outcome:
        for attempt in self.policy.retrying(before_sleep=lambda rs: self._on_retry(call, rs)):
            with attempt:
                try:
                    outcome = op(call)
                except FallbackError:
                    raise
                except Exception as exc:
                    raise self._unexpected(exc) from exc
        return outcome

    async def _arun(self, op: Callable[[Call], Awaitable[Outcome]], call: Call) -> FallbackAnswer:
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

    async def _aretry(self, op: Callable[[Call], Awaitable[Outcome]], call: Call) -> Outcome:
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

    def _json_body(self, resp: Response) -> Any:
        try:
            return json.loads(resp.body)
        except ValueError:
            text = resp.body[:RAW_LIMIT].decode("utf-8", errors="replace")
            raise self._error(
                "malformed",
                f"response is not JSON: {one_line(text)[:80]!r}",
                fix=f"check that {display_url(self.base_url)} is the right kind of endpoint",
                raw=text,
            ) from None

    def _content_error(self, exc: BadContent, raw: str, labels: Sequence[str]) -> FallbackError:
        shown = ", ".join(labels[:8]) + (", ..." if len(labels) > 8 else "")
        return self._error(
            exc.kind,
            f"{exc} (labels: {shown})",
            fix="use a stronger teacher or structured output",
            raw=raw,
        )


def ensure(ok: bool, message: str) -> None:
    """Raise a ``config`` :class:`FallbackError` with ``message`` unless ``ok``."""
    if not ok:
        raise FallbackError("config", message, fix="fix the fallback settings")
