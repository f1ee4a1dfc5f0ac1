"""A scriptable, fault-injecting HTTP server on 127.0.0.1 for client and serve tests.

Each request pops the next scripted action for its path (or runs the default)::

    with FaultServer() as server:
        server.push("/v1/chat/completions", status(500), ok(chat_completion('{"label": "faq"}')))
        ...  # point a client at server.url
        assert server.count("/v1/chat/completions") == 2
        assert server.requests[0].headers.get("authorization") is None

Actions: :func:`ok`, :func:`status`, :func:`sleep`, :func:`malformed`, :func:`slow_body`,
:func:`reset`. The server records every request (method, path, headers, body, JSON) and the
most requests it had in flight at once (:attr:`FaultServer.max_in_flight`). ``stop()`` (or
leaving the ``with`` block) wakes sleeping actions, closes open connections and joins the
worker threads, so tests leak no sockets.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Action = Callable[["_Handler", threading.Event], None]


@dataclass(frozen=True)
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    json: Any = None


# ----------------------------------------------------------------------------- actions


def _encode(body: Any) -> tuple[bytes, str]:
    if isinstance(body, bytes):
        return body, "application/octet-stream"
    if isinstance(body, str):
        return body.encode("utf-8"), "text/plain; charset=utf-8"
    return json.dumps(body).encode("utf-8"), "application/json"


def _respond(
    handler: _Handler, code: int, body: Any = b"", headers: dict[str, str] | None = None
) -> None:
    data, content_type = _encode(body)
    handler.send_response(code)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def status(code: int, body: Any = None, headers: dict[str, str] | None = None) -> Action:
    """Answer ``code`` with ``body`` (JSON for dicts/lists) and extra ``headers``."""
    if body is None:
        body = {"error": {"message": f"scripted HTTP {code}", "type": "fault_server"}}

    def action(handler: _Handler, stop: threading.Event) -> None:
        _respond(handler, code, body, headers)

    action.__qualname__ = f"status({code})"
    return action


def ok(body: Any, headers: dict[str, str] | None = None) -> Action:
    """Answer 200 with ``body`` (JSON for dicts/lists, text for str, as-is for bytes)."""
    return status(200, body, headers)


def malformed(body: str = "<html><body>upstream proxy error</body></html>") -> Action:
    """Answer 200 with a body that is not JSON."""
    return ok(body)


def sleep(seconds: float, then: Action | None = None) -> Action:
    """Wait ``seconds`` (woken early by ``stop()``), then run ``then`` (default: a 200 JSON)."""

    def action(handler: _Handler, stop: threading.Event) -> None:
        if stop.wait(seconds):
            handler.close_connection = True
            return
        (then or ok({"slept": seconds}))(handler, stop)

    return action


def slow_body(total_seconds: float, body: Any = None, interval: float = 0.1) -> Action:
    """Send 200 headers at once, then trickle leading whitespace one byte per ``interval``
    for ``total_seconds`` before the rest of ``body`` (a valid JSON reply if it finishes)."""
    payload, content_type = _encode({"slow": True} if body is None else body)
    drips = max(int(total_seconds / interval), 1)

    def action(handler: _Handler, stop: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(drips + len(payload)))
        handler.end_headers()
        for _ in range(drips):
            handler.wfile.write(b" ")
            if stop.wait(interval):
                handler.close_connection = True
                return
        handler.wfile.write(payload)

    return action


def reset() -> Action:
    """Close the connection abruptly (TCP RST via SO_LINGER 0), sending no response."""

    def action(handler: _Handler, stop: threading.Event) -> None:
        conn = handler.connection
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.close_connection = True
        handler.rfile.close()
        handler.wfile.close()
        conn.close()

    return action


def chat_completion(
    content: str | None,
    *,
    prompt_tokens: int | None = 12,
    completion_tokens: int | None = 5,
    model: str = "teacher",
) -> dict[str, Any]:
    """An OpenAI chat-completions response with ``content``; usage omitted when both token
    counts are None."""
    reply: dict[str, Any] = {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }
    if prompt_tokens is not None or completion_tokens is not None:
        p, c = prompt_tokens or 0, completion_tokens or 0
        reply["usage"] = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
    return reply


# ----------------------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = self.server.fault
        action = fault._take(self.command, self.path, self.headers.items(), body)
        fault._enter()
        try:
            action(self, fault._stop)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, ValueError):
            self.close_connection = True  # the client gave up; nothing to answer
        finally:
            fault._leave()

    do_GET = do_POST = do_PUT = do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fault: FaultServer

    def __init__(self, fault: FaultServer) -> None:
        self.fault = fault
        self._conn_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._workers: list[threading.Thread] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        worker = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self._conn_lock:
            self._conns.add(request)
            self._workers = [w for w in self._workers if w.is_alive()]
            self._workers.append(worker)
        worker.start()

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that vanish mid-request are part of the script

    def close_all(self, timeout: float = 5.0) -> None:
        with self._conn_lock:
            conns, workers = list(self._conns), list(self._workers)
        for conn in conns:
            with contextlib.suppress(OSError):  # wakes workers blocked reading keep-alives
                conn.shutdown(socket.SHUT_RDWR)
        for worker in workers:
            worker.join(timeout)


class FaultServer:
    """A threaded HTTP server on 127.0.0.1 (free port) that answers from a script.

    ``push(path, *actions)`` queues actions for a path (query ignored); a request whose
    queue is empty runs ``default`` (a 404 JSON unless given). Use as a context manager or
    call ``start()`` / ``stop()``.
    """

    def __init__(self, default: Action | None = None) -> None:
        self.default: Action = default or status(404, {"error": {"message": "no scripted action"}})
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Action]] = defaultdict(deque)
        self._requests: list[Recorded] = []
        self._in_flight = 0
        self.max_in_flight = 0
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> FaultServer:
        """Bind a free port and serve in a background thread."""
        if self._server is not None:
            return self
        self._stop.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping actions, close connections, join threads."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stop.set()
        server.shutdown()
        server.close_all()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port."""
        if self._server is None:
            raise RuntimeError("FaultServer is not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    # -- script

    def push(self, path: str, *actions: Action) -> None:
        """Queue ``actions`` for requests to ``path``, in order."""
        with self._lock:
            self._queues[path].extend(actions)

    def pending(self, path: str) -> int:
        """Scripted actions not yet used for ``path``."""
        with self._lock:
            return len(self._queues[path])

    @property
    def requests(self) -> list[Recorded]:
        """A copy of every request received so far."""
        with self._lock:
            return list(self._requests)

    def count(self, path: str | None = None) -> int:
        """Requests received, for ``path`` or in all."""
        with self._lock:
            return sum(1 for r in self._requests if path is None or r.path == path)

    # -- handler side

    def _take(self, method: str, raw_path: str, headers: Any, body: bytes) -> Action:
        path = urlsplit(raw_path).path
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        record = Recorded(method, path, {k.lower(): v for k, v in headers}, body, parsed)
        with self._lock:
            self._requests.append(record)
            queue = self._queues.get(path)
            return queue.popleft() if queue else self.default

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


__all__ = [
    "Action",
    "FaultServer",
    "Recorded",
    "chat_completion",
    "malformed",
    "ok",
    "reset",
    "sleep",
    "slow_body",
    "status",
]
