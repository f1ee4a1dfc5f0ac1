"""AWS Lambda handler: ``kdedge.runtimes.aws_lambda.handler``.

The bundle is loaded once per execution environment, on the first invocation (the cold
start), from ``$KDEDGE_BUNDLE`` (default: ``bundle/`` next to the function code,
``$LAMBDA_TASK_ROOT/bundle``). ``$KDEDGE_ARTIFACT`` pins an artifact and
``$KDEDGE_THREADS`` the thread count (Lambda gives one vCPU per 1,769 MB of memory).

Accepted events: a direct invocation whose payload is the API body (``{"text": ...}`` or
``{"texts": [...]}``), or an HTTP event from API Gateway (v1 or v2) or a function URL, whose
``body`` (possibly base64) is that JSON. HTTP events get an HTTP-shaped response.
"""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path
from typing import Any

from kdedge import jsonout
from kdedge.runtimes.api import BadRequest, handle_predict, health, parse_body
from kdedge.runtimes.loader import load
from kdedge.runtimes.runtime import Runtime

_runtime: Runtime | None = None
_lock = threading.Lock()


def bundle_path() -> Path:
    default = Path(os.environ.get("LAMBDA_TASK_ROOT", ".")) / "bundle"
    return Path(os.environ.get("KDEDGE_BUNDLE", default))


def runtime() -> Runtime:
    """The process-wide runtime, loaded on first use."""
    global _runtime
    with _lock:
        if _runtime is None:
            threads = os.environ.get("KDEDGE_THREADS")
            _runtime = load(
                bundle_path(),
                artifact=os.environ.get("KDEDGE_ARTIFACT") or None,
                threads=int(threads) if threads else None,
            )
        return _runtime


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    is_http = isinstance(event, dict) and ("requestContext" in event or "body" in event)
    if not is_http:
        status, data = handle_predict(runtime(), event)
        data = jsonout.finite(data)  # the Lambda runtime's own json.dumps would write NaN
        return data if status == 200 else {"statusCode": status, **data}
    method = (
        event.get("requestContext", {}).get("http", {}).get("method")
        or event.get("httpMethod")
        or "POST"
    )
    path = event.get("rawPath") or event.get("path") or "/predict"
    if method == "GET" and path.rstrip("/").endswith("healthz"):
        return _http(200, health(runtime()))
    body = event.get("body") or ""
    try:
        if event.get("isBase64Encoded"):
            body = base64.b64decode(body)
        payload = parse_body(body)
    except BadRequest as exc:
        return _http(400, {"error": str(exc)})
    except ValueError as exc:  # base64
        return _http(400, {"error": f"the body is not valid base64: {exc}"})
    return _http(*handle_predict(runtime(), payload))


def _http(status: int, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": jsonout.dumps(data, ensure_ascii=False),
        "isBase64Encoded": False,
    }
