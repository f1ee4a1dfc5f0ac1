"""HTTP connections for the teacher clients: httpx imported without its command-line client,
TLS verification settings, and a pool of one sync client plus one async client per event
loop, made on first use and closed together."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kdedge.runtimes.fallback_target import FallbackError


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


def display_url(url: httpx.URL) -> str:
    """The URL without user info, for names and messages."""
    return f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}".rstrip("/")


def ssl_verify(verify: bool | str | ssl.SSLContext) -> bool | ssl.SSLContext:
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


class ConnectionPool:
    """httpx clients with one set of settings: a sync client shared by every thread, and an
    async client per event loop (an httpx.AsyncClient is bound to the loop it was made on).

    After :meth:`close`, asking for a client raises ``closed_error()``.
    """

    def __init__(
        self,
        *,
        timeout: float,
        verify: bool | str | ssl.SSLContext,
        headers: dict[str, str],
        transport: httpx.BaseTransport | None,
        async_transport: httpx.AsyncBaseTransport | None,
        closed_error: Callable[[], FallbackError],
    ) -> None:
        self.timeout = timeout
        self._verify = ssl_verify(verify)
        self._headers = headers
        self._transport = transport
        self._async_transport = async_transport
        self._closed_error = closed_error
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._aclients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._closed = False
        self._pending_closes: set[Any] = set()

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

    def client(self) -> httpx.Client:
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

    def aclient(self) -> httpx.AsyncClient:
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
