"""What an HTTP failure means for a teacher call: each transport error and non-2xx status
becomes one :class:`~kdedge.runtimes.fallback.FallbackError` kind, with a fix that names
what to change (retryable kinds carry the server's Retry-After)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kdedge.runtimes.fallback_target import FallbackError, one_line
from kdedge.runtimes.http_pool import display_url, import_httpx
from kdedge.runtimes.resilience import parse_retry_after

if TYPE_CHECKING:
    import httpx
else:
    httpx = import_httpx()

MakeError = Callable[..., FallbackError]
"""``error(kind, message, fix=..., **details)``: the client's error factory (it adds the
source and scrubs the API key)."""


def error_snippet(body: bytes) -> str:
    """The server's error message (a JSON ``error``/``detail``, else the body), one line."""
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


def transport_error(
    exc: httpx.HTTPError, *, error: MakeError, base_url: httpx.URL, timeout: float
) -> FallbackError:
    """The FallbackError for an httpx failure: timeout, undecodable body, untrusted TLS
    certificate or connection failure."""
    where = display_url(base_url)
    if isinstance(exc, httpx.TimeoutException):
        return error(
            "timeout",
            f"no answer within {timeout:g} s ({type(exc).__name__})",
            fix="raise the fallback timeout or check the teacher's load",
        )
    if isinstance(exc, httpx.DecodingError):
        return error("malformed", f"response body could not be decoded: {exc}")
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return error(
            "connection",
            f"TLS certificate of {where} not trusted ({detail})",
            fix="pass verify=<CA bundle path>, or verify=False for a test server",
            retryable=False,
        )
    return error(
        "connection",
        f"connection to {where} failed ({detail})",
        fix="check that the teacher is running and reachable",
    )


def status_error(
    status: int,
    headers: Any,
    body: bytes,
    path: str,
    *,
    error: MakeError,
    base_url: httpx.URL,
    api_key_env: str | None,
    has_key: bool,
) -> FallbackError | None:
    """The FallbackError for a non-2xx reply (None for 2xx): 429 and 5xx (retryable, with
    Retry-After), 401/403 (naming the key variable), redirects and other 4xx."""
    if 200 <= status < 300:
        return None
    snippet = error_snippet(body)
    retry_after = parse_retry_after(headers.get("retry-after"))
    if status == 429:
        wait = f", Retry-After {retry_after:g} s" if retry_after is not None else ""
        return error(
            "rate_limited",
            f"rate limited (HTTP 429{wait}): {snippet}",
            fix="lower the fallback rate or raise the teacher's quota",
            status=status,
            retry_after=retry_after,
        )
    if status >= 500:
        return error(
            "http_5xx",
            f"teacher error HTTP {status}: {snippet}",
            fix="check the teacher's logs",
            status=status,
            retry_after=retry_after,
        )
    if status in (401, 403):
        if api_key_env and not has_key:
            return error(
                "config",
                f"HTTP {status} and the API key variable {api_key_env} is not set",
                fix=f"export {api_key_env}=<your key>",
                status=status,
            )
        fix = (
            f"check the key in {api_key_env}"
            if api_key_env
            else "this teacher needs a key: pass api_key_env=<variable holding it>"
        )
        return error("http_4xx", f"HTTP {status}: {snippet}", fix=fix, status=status)
    if 300 <= status < 400:
        location = headers.get("location", "?")
        return error(
            "http_4xx",
            f"HTTP {status} redirect to {location}",
            fix="use the final URL as the fallback URL",
            status=status,
        )
    fix = f"check the URL ({display_url(base_url)}{path})" if status == 404 else ""
    return error("http_4xx", f"HTTP {status}: {snippet}", fix=fix, status=status)
