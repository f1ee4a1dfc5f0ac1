"""`kdedge serve` over real HTTP, the Lambda handler, and fallbacks that fail."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from kdedge.runtimes import aws_lambda, load
from kdedge.runtimes.fallback import FallbackAnswer, FallbackError
from kdedge.runtimes.requestlog import TieredLog
from kdedge.runtimes.server import PredictServer

ALWAYS_FALL_BACK = {"confidence_threshold": 1.0, "low_confidence_action": "fallback"}


class ScriptedTeacher:
    """A fallback target that answers from a script: a label, or a FallbackError kind."""

    name = "scripted"

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def classify(self, text, labels):
        outcome = self.outcomes[self.calls % len(self.outcomes)]
        self.calls += 1
        if outcome in labels:
            return FallbackAnswer(
                label=outcome, text=None, source=self.name, latency_ms=1.0, attempts=1
            )
        raise FallbackError(outcome, f"scripted {outcome}")

    async def aclassify(self, text, labels):
        return self.classify(text, labels)

    def stats(self):
        return {"calls": self.calls, "state": "closed"}

    def close(self):
        pass


def call(url, payload=None, method=None):
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def served(exported):
    log_lines = []
    rt = load(exported[1], artifact="onnx", log=TieredLog(log_lines.append))
    server = PredictServer(rt, "127.0.0.1", 0)
    server.start_background()
    yield server, log_lines
    server.shutdown()
    server.server_close()
    rt.close()


def test_predict_single_and_batch(served):
    server, log_lines = served
    status, body = call(server.url + "/predict", {"text": "where is my order please"})
    assert status == 200
    one = json.loads(body)
    assert one["label"] and one["route"] in ("answer", "clarify", "fallback")
    status, body = call(
        server.url + "/predict", {"texts": ["hello", "return it"], "top_k": 2, "probs": True}
    )
    results = json.loads(body)["results"]
    assert status == 200 and len(results) == 2 and len(results[0]["top_k"]) == 2
    assert abs(sum(results[0]["probs"].values()) - 1) < 1e-4
    assert len(log_lines) == 3


def test_health_and_metrics(served):
    server, _ = served
    call(server.url + "/predict", {"text": "hello"})
    status, body = call(server.url + "/healthz")
    assert status == 200 and json.loads(body)["artifact"] == "onnx"
    status, text = call(server.url + "/metrics")
    assert status == 200
    assert "kdedge_predictions_total" in text and "kdedge_predict_seconds_bucket" in text
    assert 'kdedge_http_requests_total{path="/predict",status="200"} 1.0' in text
    assert "kdedge_log_avg_bytes" in text


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ("not json", 400, "not valid JSON"),
        ([1, 2], 400, "must be a JSON object"),
        ({}, 400, "exactly one of"),
        ({"text": 3}, 400, "must be a string"),
        ({"texts": []}, 400, "non-empty list"),
        ({"texts": ["a"] * 65}, 400, "limit is 64"),
        ({"text": "a", "colour": "red"}, 400, "unknown field"),
        ({"text": "a", "top_k": 0}, 400, "top_k"),
    ],
)
def test_bad_requests_get_400_and_the_server_keeps_serving(served, payload, status, message):
    server, _ = served
    data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    request = urllib.request.Request(server.url + "/predict", data=data)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == status and message in info.value.read().decode()
    assert call(server.url + "/predict", {"text": "hello"})[0] == 200


def test_unknown_routes_and_methods(served):
    server, _ = served
    assert call(server.url + "/nope")[0] == 404
    assert call(server.url + "/predict", {"text": "x"}, method="PUT")[0] == 405


def test_concurrent_http_clients_get_serial_answers(served):
    server, _ = served
    texts = ["where is my order", "return the damaged book", "hello", "tell me a joke"] * 6
    serial = [
        json.loads(call(server.url + "/predict", {"text": t, "route": False})[1]) for t in texts
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(
            pool.map(
                lambda t: json.loads(call(server.url + "/predict", {"text": t, "route": False})[1]),
                texts,
            )
        )
    for a, b in zip(serial, parallel, strict=True):
        assert (a["label"], a["confidence"]) == (b["label"], b["confidence"])


def test_fallbacks_use_the_teacher_and_failures_become_clarify(exported):
    teacher = ScriptedTeacher("return_request", "timeout", "invalid_label")
    lines = []
    with load(
        exported[1],
        artifact="onnx",
        policy=ALWAYS_FALL_BACK,
        fallback=teacher,
        log=TieredLog(lines.append),
    ) as rt:
        results = rt.predict_batch(["a", "b", "c"])
        assert [p.route for p in results] == ["fallback", "clarify", "clarify"]
        assert results[0].label == "return_request" and results[0].source == "teacher"
        assert [p.fallback_error for p in results] == [None, "timeout", "invalid_label"]
        assert results[1].clarify and results[1].reason == "fallback_failed"
        assert teacher.calls == 3
        tiers = [json.loads(line)["tier"] for line in lines]
        assert tiers == ["fallback"] * 3


def test_async_predict_awaits_the_teacher(exported):
    import asyncio

    teacher = ScriptedTeacher("faq")
    with load(exported[1], artifact="onnx", policy=ALWAYS_FALL_BACK, fallback=teacher) as rt:
        p = asyncio.run(rt.apredict("hello"))
    assert (p.route, p.label, p.source) == ("fallback", "faq", "teacher")


def test_low_cost_fallback_takes_low_confidence_traffic(exported):
    teacher, cheap = ScriptedTeacher("faq"), ScriptedTeacher("order_tracking")
    with load(
        exported[1], artifact="onnx", policy=ALWAYS_FALL_BACK, fallback=teacher, low_cost=cheap
    ) as rt:
        p = rt.predict("hello")
    assert p.label == "order_tracking" and cheap.calls == 1 and teacher.calls == 0


# -- AWS Lambda ------------------------------------------------------------------------------


@pytest.fixture
def lambda_env(exported, monkeypatch):
    monkeypatch.setenv("KDEDGE_BUNDLE", str(exported[1]))
    monkeypatch.setenv("KDEDGE_ARTIFACT", "onnx-int8")
    monkeypatch.setattr(aws_lambda, "_runtime", None)
    yield
    if aws_lambda._runtime is not None:
        aws_lambda._runtime.close()
    aws_lambda._runtime = None


def test_lambda_direct_invocation(lambda_env):
    out = aws_lambda.handler({"text": "where is my order"}, None)
    assert out["label"] and out["artifact"] == "onnx-int8"
    batch = aws_lambda.handler({"texts": ["a", "b"]}, None)
    assert len(batch["results"]) == 2
    assert aws_lambda.handler({"txt": "a"}, None)["statusCode"] == 400


def test_lambda_function_url_and_api_gateway_events(lambda_env):
    body = base64.b64encode(json.dumps({"text": "hello"}).encode()).decode()
    v2 = {
        "requestContext": {"http": {"method": "POST"}},
        "rawPath": "/predict",
        "body": body,
        "isBase64Encoded": True,
    }
    out = aws_lambda.handler(v2, None)
    assert out["statusCode"] == 200 and json.loads(out["body"])["label"]
    v1 = {"httpMethod": "POST", "path": "/predict", "body": "{oops"}
    bad = aws_lambda.handler(v1, None)
    assert bad["statusCode"] == 400 and "not valid JSON" in json.loads(bad["body"])["error"]
    health = aws_lambda.handler(
        {"requestContext": {"http": {"method": "GET"}}, "rawPath": "/healthz"}, None
    )
    assert json.loads(health["body"])["status"] == "ok"
