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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from kdedge import __version__
from kdedge.runtimes.fallback_target import (
    KINDS,
    RAW_LIMIT,
    RETRYABLE,
    FallbackAnswer,
    FallbackError,
    one_line,
)
from kdedge.runtimes.resilience import (
    BreakerTicket,
    CircuitBreaker,
    ConcurrencyLimit,
    RetryPolicy,
    parse_retry_after,
)
from kdedge.runtimes.teacher_reply import BadContent


def import_httpx() -> ModuleType:
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
    httpx = import_httpx()

log = logging.getLogger("kdedge.fallback")

# Failures that say the teacher is unavailable, and so count against the circuit breaker.
# A teacher that answered (even with a 4xx, a bad label or unparseable content) is up.
_UNAVAILABLE = RETRYABLE
_MAX_BODY = 4 * 1024 * 1024
RESPONSE_FORMATS = ("json_schema", "json_object", "off")
"""Structured-output modes, strictest first; a call steps down when a server refuses one."""


def _check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    if isinstance(labels, str):
        raise ValueError("labels must be a sequence of strings, not one string")
    out = tuple(labels)
    if not out or not all(isinstance(label, str) and label for label in out):
        raise ValueError("labels must be a non-empty sequence of non-empty strings")
    return out


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
    return one_line(text)[:200]


def display_url(url: httpx.URL) -> str:
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


@dataclass
class Call:
    """Mutable state of one call, across its attempts."""

    level: int = len(RESPONSE_FORMATS) - 1
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
        where = display_url(self.base_url)
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

    def _status_error(self, resp: Response, path: str) -> FallbackError | None:
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
        fix = f"check the URL ({display_url(self.base_url)}{path})" if status == 404 else ""
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

    def _send(self, call: Call, path: str, payload: dict[str, Any]) -> Response:
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
                return Response(resp.status_code, resp.headers, bytes(body))
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc

    async def _asend(self, call: Call, path: str, payload: dict[str, Any]) -> Response:
        client = self._async_client()
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
