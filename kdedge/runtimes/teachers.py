"""The teacher clients: an OpenAI-compatible chat endpoint, or another ``kdedge serve``.

Both are built on the resilient core of :mod:`kdedge.runtimes.http_client` and are exported
by :mod:`kdedge.runtimes.fallback` (see :func:`~kdedge.runtimes.fallback.open_fallback`).

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

import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from kdedge.runtimes.calls import RESPONSE_FORMATS, Call
from kdedge.runtimes.fallback_target import KDEDGE_PREFIX, RAW_LIMIT, FallbackAnswer, FallbackError
from kdedge.runtimes.http_client import Outcome, ResilientClient, Response, ensure
from kdedge.runtimes.http_pool import display_url, import_httpx
from kdedge.runtimes.teacher_reply import BadContent, match_label, read_label

if TYPE_CHECKING:
    import httpx
else:
    httpx = import_httpx()

__all__ = ["KdedgeClient", "OpenAIClient"]

log = logging.getLogger("kdedge.fallback")


def _tokens(usage: Any, key: str) -> int:
    if not isinstance(usage, dict):
        return 0
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


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
            f"fallback URL {display_url(url) or base_url!r} is not an http(s) URL",
            fix="pass http(s)://host:port",
        )
    return url.copy_with(path=url.path.rstrip("/") or "/", query=None, fragment=None)


# ----------------------------------------------------------------------------- OpenAI


class OpenAIClient(ResilientClient):
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
        ensure(bool(model), "an OpenAI-compatible fallback needs a model name")
        ensure(max_tokens >= 1, f"max_tokens must be >= 1, got {max_tokens}")
        ensure(price_prompt_per_1k >= 0 and price_completion_per_1k >= 0, "prices must be >= 0")
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
        self._level = 0 if structured else len(RESPONSE_FORMATS) - 1

    @property
    def structured(self) -> str:
        """The response_format in use: ``json_schema``, ``json_object`` or ``off``."""
        return RESPONSE_FORMATS[self._level]

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
        if labels is not None and RESPONSE_FORMATS[level] != "off":
            schema = {
                "type": "object",
                "properties": {"label": {"type": "string", "enum": list(labels)}},
                "required": ["label"],
            }
            if RESPONSE_FORMATS[level] == "json_schema":
                payload["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "intent", "schema": schema},
                }
            else:
                payload["response_format"] = {"type": "json_object", "schema": schema}
        return payload

    @staticmethod
    def _format_refused(call: Call, resp: Response) -> bool:
        if RESPONSE_FORMATS[call.level] == "off":
            return False
        if resp.status in (400, 422):
            return True
        return resp.status >= 500 and b"response_format" in resp.body

    def _downgrade(self, call: Call, resp: Response) -> None:
        log.info(
            "fallback %s: response_format %s refused (HTTP %d); trying %s",
            self.source,
            RESPONSE_FORMATS[call.level],
            resp.status,
            RESPONSE_FORMATS[call.level + 1],
        )
        call.level += 1

    def _remember(self, call: Call, resp: Response) -> None:
        if call.level > self._level and resp.status not in (400, 422):
            self._level = call.level

    def _interpret(self, call: Call, resp: Response, labels: Sequence[str] | None) -> Outcome:
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
                raw=resp.body[:RAW_LIMIT].decode("utf-8", errors="replace"),
            ) from None
        usage = data.get("usage")
        call.prompt_tokens += _tokens(usage, "prompt_tokens")
        call.completion_tokens += _tokens(usage, "completion_tokens")
        if not isinstance(content, str):
            raise self._error("malformed", "reply content is not text (null or parts)")
        raw = content[:RAW_LIMIT]
        if labels is None:
            if not content.strip():
                raise self._error("malformed", "teacher replied with empty text", raw=raw)
            return Outcome(label=None, text=content, raw=raw)
        try:
            label = read_label(content, labels)
        except BadContent as exc:
            raise self._content_error(exc, raw, labels) from None
        return Outcome(label=label, text=None, raw=raw)

    def _chat(
        self, messages: list[dict[str, str]], labels: Sequence[str] | None, max_tokens: int
    ) -> Callable[[Call], Outcome]:
        def attempt(call: Call) -> Outcome:
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
    ) -> Callable[[Call], Awaitable[Outcome]]:
        async def attempt(call: Call) -> Outcome:
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
        return self._run(op, Call(level=self._level))

    async def aclassify(self, text: str, labels: Sequence[str]) -> FallbackAnswer:
        """Async :meth:`classify`."""
        labels = self._labels(labels)
        op = self._achat(self.classify_messages(text, labels), labels, self.max_tokens)
        return await self._arun(op, Call(level=self._level))

    def answer(
        self, text: str, system: str | None = None, *, max_tokens: int | None = None
    ) -> FallbackAnswer:
        """Plain chat: the teacher's reply to ``text`` as :attr:`FallbackAnswer.text`."""
        op = self._chat(self._answer_messages(text, system), None, max_tokens or self.max_tokens)
        return self._run(op, Call())

    async def aanswer(
        self, text: str, system: str | None = None, *, max_tokens: int | None = None
    ) -> FallbackAnswer:
        """Async :meth:`answer`."""
        op = self._achat(self._answer_messages(text, system), None, max_tokens or self.max_tokens)
        return await self._arun(op, Call())


# ----------------------------------------------------------------------------- kdedge


class KdedgeClient(ResilientClient):
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
        if base_url.startswith(KDEDGE_PREFIX):
            base_url = base_url[len(KDEDGE_PREFIX) :]
        url = _parse_base_url(base_url)
        super().__init__(
            url,
            source=f"kdedge:{display_url(url)}",
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

    def _interpret(self, resp: Response, labels: Sequence[str]) -> Outcome:
        error = self._status_error(resp, "/predict")
        if error is not None:
            raise error
        data = self._json_body(resp)
        raw = resp.body[:RAW_LIMIT].decode("utf-8", errors="replace")
        label = data.get("label") if isinstance(data, dict) else None
        if not isinstance(label, str):
            raise self._error(
                "malformed",
                'response has no string "label"',
                fix="check that the URL is a kdedge serve endpoint",
                raw=raw,
            )
        match = match_label(label, labels)
        if match is None:
            bad = BadContent("invalid_label", f"teacher chose {label[:80]!r}, not in the set")
            raise self._content_error(bad, raw, labels)
        return Outcome(label=match, text=None, raw=raw)

    def classify(self, text: str, labels: Sequence[str]) -> FallbackAnswer:
        """Ask the kdedge endpoint for a label of ``labels``; raises :class:`FallbackError`."""
        labels = self._labels(labels)
        payload = {"text": text, "route": False}

        def attempt(call: Call) -> Outcome:
            return self._interpret(self._send(call, "/predict", payload), labels)

        return self._run(attempt, Call())

    async def aclassify(self, text: str, labels: Sequence[str]) -> FallbackAnswer:
        """Async :meth:`classify`."""
        labels = self._labels(labels)
        payload = {"text": text, "route": False}

        async def attempt(call: Call) -> Outcome:
            return self._interpret(await self._asend(call, "/predict", payload), labels)

        return await self._arun(attempt, Call())
