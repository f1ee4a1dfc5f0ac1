"""A deterministic OpenAI-compatible teacher for tests and demos.

This is NOT a model: it serves :class:`kdedge.llm.demo_answers.DemoTeacher`, which writes
answers from the catalog facts with hand-written phrasings and, at ``--error-rate``, states
one wrong fact in that share of its fact-bearing answers (the response's ``kdedge_demo``
field says which, so tests can score the grounding gate). Same prompt, same seed: same
answer.

    python -m kdedge.llm.demo_teacher --catalog catalog.jsonl --port 8000 [--error-rate 0.1]

serves ``POST /v1/chat/completions`` and ``GET /v1/models`` on 127.0.0.1 with the standard
library's ``ThreadingHTTPServer`` (a test fixture needs no web framework); :func:`serve`
starts it on a thread for tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kdedge.errors import KdedgeError
from kdedge.llm.catalog import Catalog
from kdedge.llm.demo_answers import MODEL, TOKENS, DemoTeacher, count_tokens


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": {"message": message, "type": "invalid_request_error"}})

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            model = self.server.teacher.model
            self._send(
                200,
                {
                    "object": "list",
                    "data": [{"id": model, "object": "model", "owned_by": "kdedge"}],
                },
            )
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, f"no route {self.path}")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
        except (ValueError, json.JSONDecodeError):
            self._error(400, "the request body is not JSON")
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._error(400, "the request needs a 'messages' list")
            return
        if body.get("stream"):
            self._error(400, "the demo teacher does not stream; send stream=false")
            return
        teacher = self.server.teacher
        try:
            found = teacher.reply(body["messages"])
        except ValueError as exc:
            self._error(400, str(exc))
            return
        text, finish = found.text, "stop"
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        spans = list(TOKENS.finditer(text))
        if isinstance(limit, int) and 0 < limit < len(spans):
            text, finish = text[: spans[limit - 1].end()], "length"
        prompt = sum(
            count_tokens(str(m.get("content", ""))) for m in body["messages"] if isinstance(m, dict)
        )
        completion = count_tokens(text)
        digest = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest()
        self._send(
            200,
            {
                "id": f"chatcmpl-demo-{digest[:16]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": teacher.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
                "kdedge_demo": {"kind": found.kind, "injected_error": found.error},
            },
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    teacher: DemoTeacher


def serve(
    catalog_path: str | Path,
    port: int = 0,
    *,
    error_rate: float = 0.0,
    seed: int = 0,
    host: str = "127.0.0.1",
    model: str = MODEL,
) -> tuple[ThreadingHTTPServer, str]:
    """Start the demo teacher on a daemon thread: ``(server, base_url)``, the URL ending in
    ``/v1``. Stop it with ``server.shutdown(); server.server_close()``."""
    server = _Server((host, port), _Handler)
    server.teacher = DemoTeacher(
        Catalog.load(catalog_path), error_rate=error_rate, seed=seed, model=model
    )
    threading.Thread(target=server.serve_forever, name="demo-teacher", daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}/v1"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kdedge.llm.demo_teacher",
        description="Serve a deterministic, template-based stand-in teacher (not a model).",
    )
    parser.add_argument("--catalog", required=True, help="catalog JSONL the answers come from")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="share of answers given one wrong fact"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=MODEL, help="name reported in responses")
    args = parser.parse_args(argv)
    if not 0.0 <= args.error_rate <= 1.0:
        parser.error(f"--error-rate must be in [0, 1], got {args.error_rate}")
    try:
        server, url = serve(
            args.catalog,
            args.port,
            error_rate=args.error_rate,
            seed=args.seed,
            host=args.host,
            model=args.model,
        )
    except KdedgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"demo teacher (not a model) serving {url} (model {args.model!r}); Ctrl-C stops it",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
