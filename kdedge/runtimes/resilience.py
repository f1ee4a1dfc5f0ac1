"""Resilience primitives for the teacher fallback: retries, Retry-After, breaker, concurrency.

* :class:`RetryPolicy` builds tenacity ``Retrying`` / ``AsyncRetrying`` loops. It retries an
  exception whose ``retryable`` attribute is true, waits with exponential backoff and full
  jitter (``uniform(0, min(backoff_max, backoff * 2**n))``), and honours a server's
  ``Retry-After`` (carried as the exception's ``retry_after``) exactly when it is at most
  ``4 * backoff_max`` seconds; a longer one ends the retries at once, since waiting that long
  inside a request is worse than failing over.
* :class:`CircuitBreaker` is written here rather than taken from pybreaker: pybreaker has no
  native asyncio support, and one breaker must be shared by the sync and async calls of a
  client (a serve process may use both). It is a small lock-guarded state machine with an
  injectable clock, so tests move time instead of sleeping.
* :class:`ConcurrencyLimit` caps in-flight calls: a ``threading.BoundedSemaphore`` for sync
  callers and one ``asyncio.Semaphore`` per event loop, created lazily, for async callers.

tenacity is imported lazily so that ``import kdedge.runtimes`` stays small.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tenacity

log = logging.getLogger("kdedge.fallback")

__all__ = [
    "BreakerTicket",
    "CircuitBreaker",
    "ConcurrencyLimit",
    "RetryPolicy",
    "parse_retry_after",
]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), else None.

    A date in the past gives 0. Unparseable or non-finite values give None.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:  # HTTP-dates are GMT; read a zone-less one as such
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _is_retryable(exc: BaseException) -> bool:
    return bool(getattr(exc, "retryable", False))


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a failed attempt.

    ``attempts = 1 + max_retries``. Waits use exponential backoff with full jitter capped at
    ``backoff_max``; a ``retry_after`` on the exception is used as-is when it is at most
    :attr:`retry_after_limit` (``4 * backoff_max``) and stops the retries otherwise.
    """

    max_retries: int = 3
    backoff: float = 0.5
    backoff_max: float = 8.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.backoff < 0 or self.backoff_max < 0:
            raise ValueError("backoff and backoff_max must be >= 0")

    @property
    def attempts(self) -> int:
        """Total attempts allowed for one call."""
        return 1 + self.max_retries

    @property
    def retry_after_limit(self) -> float:
        """The longest ``Retry-After`` that is waited for; longer ones end the retries."""
        return 4.0 * self.backoff_max

    def backoff_wait(self, retry_number: int) -> float:
        """Full-jitter wait before retry ``retry_number`` (1 for the first retry)."""
        high = min(self.backoff_max, self.backoff * 2.0 ** max(retry_number - 1, 0))
        return random.uniform(0.0, high)

    def wait(self, retry_state: tenacity.RetryCallState) -> float:
        """tenacity wait: the server's Retry-After when given, else jittered backoff."""
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return max(float(retry_after), 0.0)
        return self.backoff_wait(retry_state.attempt_number)

    def stop(self, retry_state: tenacity.RetryCallState) -> bool:
        """tenacity stop: out of attempts, or the server asked for too long a pause."""
        if retry_state.attempt_number >= self.attempts:
            return True
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        return retry_after is not None and retry_after > self.retry_after_limit

    def _kwargs(self, before_sleep: Callable[[Any], None] | None) -> dict[str, Any]:
        import tenacity

        return {
            "stop": self.stop,
            "wait": self.wait,
            "retry": tenacity.retry_if_exception(_is_retryable),
            "reraise": True,
            "before_sleep": before_sleep,
        }

    def retrying(
        self,
        *,
        before_sleep: Callable[[Any], None] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> tenacity.Retrying:
        """A sync tenacity loop: ``for attempt in policy.retrying(): with attempt: ...``."""
        import tenacity

        kwargs = self._kwargs(before_sleep)
        if sleep is not None:
            kwargs["sleep"] = sleep
        return tenacity.Retrying(**kwargs)

    def aretrying(
        self, *, before_sleep: Callable[[Any], None] | None = None
    ) -> tenacity.AsyncRetrying:
        """An async tenacity loop: ``async for attempt in policy.aretrying(): ...``."""
        import tenacity

        return tenacity.AsyncRetrying(**self._kwargs(before_sleep))


@dataclass(frozen=True)
class BreakerTicket:
    """Permission for one call; hand it back with success/failure/release."""

    epoch: int
    trial: bool


class CircuitBreaker:
    """Closed -> open after ``failures`` consecutive failed calls; open -> half-open after
    ``reset_s``; half-open lets one trial call through, whose success closes the breaker and
    whose failure re-opens it.

    Outcomes of calls admitted before the last state change are ignored (their ticket's epoch
    is stale), so a slow call from the closed period cannot decide a half-open trial.
    ``failures <= 0`` disables the breaker. Thread-safe.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    def __init__(
        self,
        failures: int = 5,
        reset_s: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        name: str = "fallback",
    ) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._state = self.CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._epoch = 0
        self._trial_out = False
        self.opens = 0

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open`` (open turns half-open once reset_s passed)."""
        with self._lock:
            if self._state == self.OPEN and self._clock() - self._opened_at >= self.reset_s:
                return self.HALF_OPEN
            return self._state

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 when not open)."""
        with self._lock:
            if self._state != self.OPEN:
                return 0.0
            return max(self.reset_s - (self._clock() - self._opened_at), 0.0)

    def allow(self) -> BreakerTicket | None:
        """A ticket when a call may go ahead, None when it must be rejected."""
        with self._lock:
            if self.failures <= 0 or self._state == self.CLOSED:
                return BreakerTicket(self._epoch, trial=False)
            if self._state == self.OPEN:
                if self._clock() - self._opened_at < self.reset_s:
                    return None
                self._state = self.HALF_OPEN
                self._trial_out = False
            if self._trial_out:
                return None
            self._trial_out = True
            return BreakerTicket(self._epoch, trial=True)

    def success(self, ticket: BreakerTicket) -> None:
        """The call reached a healthy teacher."""
        with self._lock:
            if ticket.epoch != self._epoch:
                return
            if self._state == self.HALF_OPEN and ticket.trial:
                self._state = self.CLOSED
                self._epoch += 1
                self._trial_out = False
                log.info("fallback %s: circuit closed", self.name)
            self._consecutive = 0

    def failure(self, ticket: BreakerTicket) -> bool:
        """The call found the teacher unavailable; True when this opened the breaker."""
        with self._lock:
            if self.failures <= 0 or ticket.epoch != self._epoch:
                return False
            if self._state == self.CLOSED:
                self._consecutive += 1
                if self._consecutive < self.failures:
                    return False
            elif not ticket.trial:
                return False
            self._state = self.OPEN
            self._opened_at = self._clock()
            self._epoch += 1
            self._trial_out = False
            self._consecutive = 0
            self.opens += 1
        log.warning("fallback %s: circuit open for %.1f s", self.name, self.reset_s)
        return True

    def release(self, ticket: BreakerTicket) -> None:
        """The call ended without telling anything about the teacher (e.g. cancelled)."""
        with self._lock:
            if ticket.trial and ticket.epoch == self._epoch and self._state == self.HALF_OPEN:
                self._trial_out = False


class ConcurrencyLimit:
    """At most ``limit`` calls in flight: across threads for sync callers, per event loop
    for async callers (an ``asyncio.Semaphore`` is created lazily for each loop)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {limit}")
        self.limit = limit
        self._sync = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._per_loop: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Block until a slot is free, hold it for the ``with`` body."""
        with self._sync:
            yield

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        with self._lock:
            sem = self._per_loop.get(loop)
            if sem is None:
                for old in [lp for lp in self._per_loop if lp.is_closed()]:
                    del self._per_loop[old]
                sem = self._per_loop[loop] = asyncio.Semaphore(self.limit)
            return sem

    @asynccontextmanager
    async def ahold(self) -> AsyncIterator[None]:
        """Await a slot of this event loop's semaphore, hold it for the ``async with`` body."""
        async with self._semaphore():
            yield
