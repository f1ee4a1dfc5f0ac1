"""The JSON prediction API, shared by ``kdedge serve`` and the AWS Lambda handler.

Request: ``{"text": "..."}`` or ``{"texts": ["...", ...]}``, optionally with
``"route": false`` (the student always answers), ``"probs": true`` (all calibrated
probabilities) and ``"top_k": N``. Response: one prediction object for ``text``,
``{"results": [...]}`` for ``texts``; errors are ``{"error": "..."}`` with status 400.
Every string must be valid Unicode (a lone surrogate such as ``"\\ud800"`` is a 400), and
a body is parsed by :func:`parse_body`, which turns JSON nested too deeply to read into a
400 as well: no client input reaches the model as something it cannot encode.

A rerank bundle takes ``{"query": "...", "documents": ["...", ...]}`` (the shape of
OpenAI-compatible and llama.cpp ``/rerank`` servers; ``"passages"`` is accepted too),
optionally with ``"top_n"`` (``"top_k"``), ``"return_documents": true`` and ``"route":
false``; the response is ``{"results": [{"index", "relevance_score"}, ...], "route",
"reason", ...}``, best first.

A generate bundle takes one question per request: ``{"text": "...", "evidence": ["catalog
line", ...]}``, optionally with ``"route": false``, ``"max_tokens": N`` and ``"logprobs":
true`` (each answer token's log-probability); the response is one generation object.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from kdedge.errors import DataError
from kdedge.runtimes.generate import GenerationRuntime
from kdedge.runtimes.rerank import RerankRuntime

if TYPE_CHECKING:
    from kdedge.runtimes.runtime import Runtime

MAX_BATCH = 64
MAX_TEXT_CHARS = 20_000
MAX_EVIDENCE = 100  # lines per question


class BadRequest(ValueError):
    """The request body cannot be served; the message is returned to the client."""


def parse_body(body: bytes | str) -> Any:
    """A request body as JSON; invalid JSON, bytes that are not UTF-8, JSON nested too
    deeply to read (json's RecursionError) and integers too long to convert (Python's
    4,300-digit limit, a ValueError) are a :class:`BadRequest`."""
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: not UTF-8 ({exc.reason})") from None
    except RecursionError:
        raise BadRequest("the body is not valid JSON: nested too deeply to read") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def check_text(text: str, where: str) -> None:
    """Refuse a string that is not valid Unicode (a lone UTF-16 surrogate, which JSON's
    ``\\ud800`` escapes can carry): no tokenizer can encode it."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRequest(
            f"{where} holds a lone surrogate (\\u{ord(text[exc.start]):04x} at character "
            f"{exc.start}), which is not valid Unicode; send UTF-8 text"
        ) from None


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
        check_text(text, where)
    route = payload.get("route", True)
    probs = payload.get("probs", False)
    top_k = payload.get("top_k", 3)
    if not isinstance(route, bool) or not isinstance(probs, bool):
        raise BadRequest('"route" and "probs" must be true or false')
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= 50:
        raise BadRequest('"top_k" must be an integer from 1 to 50')
    return texts, single, {"route": route, "probs": probs, "top_k": top_k}


def parse_generate_request(
    payload: Any, max_tokens_limit: int
) -> tuple[str, list[str], dict[str, Any]]:
    """Validate a generate request body: (question, evidence lines, options)."""
    if not isinstance(payload, dict):
        raise BadRequest('the body must be a JSON object: {"text": "...", "evidence": [...]}')
    unknown = set(payload) - {"text", "evidence", "route", "max_tokens", "logprobs"}
    if "texts" in payload:
        raise BadRequest('a generate bundle answers one question per request: send "text"')
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    question = payload.get("text")
    if not isinstance(question, str) or not question.strip():
        raise BadRequest('"text" must be a non-empty string (the question)')
    if len(question) > MAX_TEXT_CHARS:
        raise BadRequest(f'"text" has {len(question)} characters; the limit is {MAX_TEXT_CHARS}')
    check_text(question, '"text"')
    evidence = payload.get("evidence", [])
    if not isinstance(evidence, list) or not all(isinstance(e, str) for e in evidence):
        raise BadRequest('"evidence" must be a list of strings (one catalog record each)')
    if len(evidence) > MAX_EVIDENCE or sum(map(len, evidence)) > MAX_TEXT_CHARS:
        raise BadRequest(
            f'"evidence" is limited to {MAX_EVIDENCE} lines and {MAX_TEXT_CHARS} characters'
        )
    for i, line in enumerate(evidence):
        check_text(line, f'"evidence"[{i}]')
    route, logprobs = payload.get("route", True), payload.get("logprobs", False)
    if not isinstance(route, bool) or not isinstance(logprobs, bool):
        raise BadRequest('"route" and "logprobs" must be true or false')
    max_tokens = payload.get("max_tokens")
    if max_tokens is not None and (
        not isinstance(max_tokens, int)
        or isinstance(max_tokens, bool)
        or not 1 <= max_tokens <= max_tokens_limit
    ):
        raise BadRequest(f'"max_tokens" must be an integer from 1 to {max_tokens_limit}')
    return question, evidence, {"route": route, "max_tokens": max_tokens, "logprobs": logprobs}


def handle_generate(runtime: GenerationRuntime, payload: Any) -> tuple[int, dict]:
    """Serve one generate request body: (HTTP status, JSON-ready response)."""
    try:
        question, evidence, options = parse_generate_request(payload, runtime.generator.n_ctx)
    except BadRequest as exc:
        return 400, {"error": str(exc)}
    try:
        generation = runtime.generate(
            question, evidence, route=options["route"], max_tokens=options["max_tokens"]
        )
    except DataError as exc:  # the prompt does not fit the model's context
        return 400, {"error": str(exc)}
    return 200, generation.to_dict(logprobs=options["logprobs"])


def parse_rerank_request(
    payload: Any, max_candidates: int
) -> tuple[str, list[str], dict[str, Any]]:
    """Validate a rerank request body: (query, documents, options)."""
    if not isinstance(payload, dict):
        raise BadRequest('the body must be a JSON object: {"query": "...", "documents": [...]}')
    docs_key = "passages" if "passages" in payload and "documents" not in payload else "documents"
    top_key = "top_k" if "top_k" in payload and "top_n" not in payload else "top_n"
    known = {"query", docs_key, top_key, "return_documents", "route", "model"}
    unknown = set(payload) - known
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    query = payload.get("query")
    if not isinstance(query, str) or not query.strip():
        raise BadRequest('"query" must be a non-empty string')
    if len(query) > MAX_TEXT_CHARS:
        raise BadRequest(f'"query" has {len(query)} characters; the limit is {MAX_TEXT_CHARS}')
    check_text(query, '"query"')
    docs = payload.get(docs_key)
    if not isinstance(docs, list) or not docs:
        raise BadRequest(f'"{docs_key}" must be a non-empty list of strings')
    if len(docs) > max_candidates:
        raise BadRequest(
            f'"{docs_key}" holds {len(docs)} items; the limit is {max_candidates} per request'
        )
    for i, doc in enumerate(docs):
        if not isinstance(doc, str) or not doc.strip():
            raise BadRequest(f'"{docs_key}"[{i}] must be a non-empty string')
        if len(doc) > MAX_TEXT_CHARS:
            raise BadRequest(
                f'"{docs_key}"[{i}] has {len(doc)} characters; the limit is {MAX_TEXT_CHARS}'
            )
        check_text(doc, f'"{docs_key}"[{i}]')
    top_n = payload.get(top_key)
    if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1):
        raise BadRequest(f'"{top_key}" must be a positive integer')
    route, documents = payload.get("route", True), payload.get("return_documents", False)
    if not isinstance(route, bool) or not isinstance(documents, bool):
        raise BadRequest('"route" and "return_documents" must be true or false')
    return query, docs, {"top_k": top_n, "route": route, "return_documents": documents}


def handle_rerank(runtime: RerankRuntime, payload: Any) -> tuple[int, dict]:
    """Serve one rerank request body: (HTTP status, JSON-ready response)."""
    try:
        query, docs, options = parse_rerank_request(payload, runtime.max_candidates)
    except BadRequest as exc:
        return 400, {"error": str(exc)}
    ranking = runtime.rerank(query, docs, options["top_k"], route=options["route"])
    return 200, ranking.to_dict(docs if options["return_documents"] else None)


def handle_predict(
    runtime: Runtime | GenerationRuntime | RerankRuntime, payload: Any, max_batch: int = MAX_BATCH
) -> tuple[int, dict]:
    """Serve one request body: (HTTP status, JSON-ready response)."""
    if isinstance(runtime, GenerationRuntime):
        return handle_generate(runtime, payload)
    if isinstance(runtime, RerankRuntime):
        return handle_rerank(runtime, payload)
    try:
        texts, single, options = parse_request(payload, max_batch)
    except BadRequest as exc:
        return 400, {"error": str(exc)}
    predictions = runtime.predict_batch(texts, route=options["route"])
    results = [p.to_dict(top_k=options["top_k"], probs=options["probs"]) for p in predictions]
    return 200, results[0] if single else {"results": results}


def health(runtime: Runtime | GenerationRuntime | RerankRuntime) -> dict[str, Any]:
    info = runtime.info()
    return {
        "status": "ok",
        "task": info.get("task", "intent"),
        "artifact": info["artifact"],
        "backend": info["backend"],
        "labels": info["labels"],
        "fallback": info["fallback"],
    }
