"""HTTP bodies: whatever a client sends, the request parsers end in a parsed request or a
BadRequest, and /predict on a real tiny bundle answers 200 or 400 with strict JSON (no NaN),
never raises, and never answers a prediction whose model output was not finite."""

from __future__ import annotations

import json
import math

from hypothesis import example, given
from hypothesis import strategies as st

from kdedge import jsonout
from kdedge.runtimes.api import (
    BadRequest,
    handle_predict,
    parse_body,
    parse_generate_request,
    parse_request,
    parse_rerank_request,
)
from tests.fuzz.conftest import LONG_INT, deep, json_values, texts

KEYS = [
    "text",
    "texts",
    "route",
    "probs",
    "top_k",
    "query",
    "documents",
    "passages",
    "top_n",
    "return_documents",
    "evidence",
    "max_tokens",
    "logprobs",
    "model",
]
bodies = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(KEYS),
        st.one_of(json_values, texts, st.lists(texts, max_size=5)),
        max_size=5,
    ),
)


def _strict(text: str):
    """json.loads that refuses NaN/Infinity, as JavaScript's JSON.parse does."""

    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


@given(bodies)
@example({"text": "\ud800 hi"})
@example({"texts": ["ok", "\udfff"]})
@example({"query": "q", "documents": ["\ud800"]})
@example({"text": "q", "evidence": ["\ud800"]})
def test_parsers_raise_only_bad_request(payload):
    for parse in (
        lambda p: parse_request(p),
        lambda p: parse_rerank_request(p, 10),
        lambda p: parse_generate_request(p, 64),
    ):
        try:
            parse(payload)
        except BadRequest as exc:
            assert str(exc) and "\n" not in str(exc)


@given(st.binary(max_size=200))
@example(deep(100_000).encode())
@example(b'{"text": "\\ud800 hi"}')
@example(b"\xff\xfe{")
@example(b'{"text": "hi", "top_k": ' + LONG_INT.encode() + b"}")
def test_any_body_bytes(body):
    try:
        parse_body(body)
    except BadRequest as exc:
        assert str(exc).startswith("the body is not valid JSON")


@given(bodies)
@example({"text": "\ud800 hi"})
@example({"text": "poison where is my order"})
@example({"texts": ["huge huge order", "fraud lawyer", "where is my order"], "probs": True})
@example({"text": "this is fraud call my lawyer", "route": False})
def test_predict_on_a_real_bundle(tiny_runtime, payload):
    status, data = handle_predict(tiny_runtime, payload)
    assert status in (200, 400)
    body = _strict(jsonout.dumps(data))
    if status == 400:
        assert set(body) == {"error"}
        return
    for row in body.get("results", [body]):
        if row["confidence"] is None:  # the model's output was not finite
            assert row["route"] != "answer" and row["reason"] == "model_error"
        else:
            assert math.isfinite(row["confidence"])
        if row["route"] == "answer":
            assert row["confidence"] is not None and all(
                t["prob"] is not None for t in row["top_k"]
            )
