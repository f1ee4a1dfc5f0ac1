"""The JSON prediction API, shared by ``kdedge serve`` and the AWS Lambda handler.

Request: ``{"text": "..."}`` or ``{"texts": ["...", ...]}``, optionally with
``"route": false`` (the student always answers), ``"probs": true`` (all calibrated
probabilities) and ``"top_k": N``. Response: one prediction object for ``text``,
``{"results": [...]}`` for ``texts``; errors are ``{"error": "..."}`` with status 400.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdedge.runtimes.runtime import Runtime

MAX_BATCH = 64
MAX_TEXT_CHARS = 20_000


class BadRequest(ValueError):
    """The request body cannot be served; the message is returned to the client."""


def parse_request(payload: Any, max_batch: int = MAX_BATCH) -> tuple[list[str], bool, dict]:
    """Validate a request body: (texts, single, options)."""
    if not isinstance(payload, dict):
        raise BadRequest('the body must be a JSON object: {"text": "..."} or {"texts": [...]}')
    unknown = set(payload) - {"text", "texts", "route", "probs", "top_k"}
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    if ("text" in payload) == ("texts" in payload):
        raise BadRequest('send exactly one of "text" (a string) or "texts" (a list of strings)')
    single = "text" in payload
    texts = [payload["text"]] if single else payload["texts"]
    if not isinstance(texts, list) or not texts:
        raise BadRequest('"texts" must be a non-empty list of strings')
    if len(texts) > max_batch:
        raise BadRequest(f'"texts" holds {len(texts)} items; the limit is {max_batch} per request')
    for i, text in enumerate(texts):
        where = '"text"' if single else f'"texts"[{i}]'
        if not isinstance(text, str):
            raise BadRequest(f"{where} must be a string, got {type(text).__name__}")
        if len(text) > MAX_TEXT_CHARS:
            raise BadRequest(f"{where} has {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    route = payload.get("route", True)
    probs = payload.get("probs", False)
    top_k = payload.get("top_k", 3)
    if not isinstance(route, bool) or not isinstance(probs, bool):
        raise BadRequest('"route" and "probs" must be true or false')
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= 50:
        raise BadRequest('"top_k" must be an integer from 1 to 50')
    return texts, single, {"route": route, "probs": probs, "top_k": top_k}


def handle_predict(runtime: Runtime, payload: Any, max_batch: int = MAX_BATCH) -> tuple[int, dict]:
    """Serve one request body: (HTTP status, JSON-ready response)."""
    try:
        texts, single, options = parse_request(payload, max_batch)
    except BadRequest as exc:
        return 400, {"error": str(exc)}
    predictions = runtime.predict_batch(texts, route=options["route"])
    results = [p.to_dict(top_k=options["top_k"], probs=options["probs"]) for p in predictions]
    return 200, results[0] if single else {"results": results}


def health(runtime: Runtime) -> dict[str, Any]:
    info = runtime.info()
    return {
        "status": "ok",
        "artifact": info["artifact"],
        "backend": info["backend"],
        "labels": info["labels"],
        "fallback": info["fallback"],
    }
