"""The runtime with a real HTTP teacher: every kind of fault ends in a routed prediction,
never an exception, and every fallback is accounted for."""

from __future__ import annotations

import json

import pytest

from kdedge.runtimes import KdedgeClient, OpenAIClient, load
from kdedge.runtimes.requestlog import TieredLog
from kdedge.runtimes.server import PredictServer

from .fault_server import FaultServer, chat_completion, malformed, ok, reset, sleep, slow_body
from .fault_server import status as http_status

CHAT = "/v1/chat/completions"
ALWAYS_FALL_BACK = {
    "confidence_threshold": 1.0,
    "low_confidence_action": "fallback",
    "max_fallback_rate": None,
}


def test_every_fault_becomes_a_counted_clarify_and_good_answers_pass(exported):
    good = ok(chat_completion('{"label": "faq"}'))
    script = [
        good,
        http_status(503),
        good,  # retried, then answered
        http_status(429, headers={"Retry-After": "0"}),
        good,
        malformed(),
        ok(chat_completion('{"label": "not_a_label"}')),
        sleep(2.0),
        sleep(2.0),  # both attempts time out
        slow_body(2.0),
        slow_body(2.0),
        reset(),
        reset(),
        http_status(500),
        http_status(500),
        good,
    ]
    lines: list[str] = []
    with FaultServer(default=good) as server:
        server.push(CHAT, *script)
        client = OpenAIClient(
            server.url,
            "teacher",
            api_key_env=None,
            timeout=0.5,
            max_retries=1,
            backoff=0.01,
            backoff_max=0.05,
            breaker_failures=100,
            structured=False,
        )
        with load(
            exported[1],
            artifact="onnx",
            policy=ALWAYS_FALL_BACK,
            fallback=client,
            log=TieredLog(lines.append),
        ) as rt:
            results = [rt.predict(f"message {i}") for i in range(10)]
            stats = rt.stats()["fallback"]
    routes = [(p.route, p.fallback_error) for p in results]
    assert routes == [
        ("fallback", None), ("fallback", None), ("fallback", None),
        ("clarify", "malformed"), ("clarify", "invalid_label"), ("clarify", "timeout"),
        ("clarify", "timeout"), ("clarify", "connection"), ("clarify", "http_5xx"),
        ("fallback", None),
    ]  # fmt: skip
    assert all(p.label == "faq" for p in results if p.route == "fallback")
    assert all(p.clarify for p in results if p.route == "clarify")
    assert stats["calls"] == 10 and stats["ok"] == 4
    assert stats["ok"] + sum(stats["failed"].values()) == stats["calls"]
    assert [json.loads(line)["tier"] for line in lines] == ["fallback"] * 10


def test_an_open_breaker_degrades_to_clarify_without_calling(exported):
    with FaultServer(default=http_status(502)) as server:
        client = OpenAIClient(
            server.url,
            "teacher",
            api_key_env=None,
            timeout=0.5,
            max_retries=0,
            breaker_failures=2,
            breaker_reset_s=60,
            structured=False,
        )
        with load(exported[1], artifact="onnx", policy=ALWAYS_FALL_BACK, fallback=client) as rt:
            results = rt.predict_batch([f"m{i}" for i in range(5)])
            sent = server.count(CHAT)
            stats = rt.stats()["fallback"]
    assert [p.fallback_error for p in results] == ["http_5xx"] * 2 + ["circuit_open"] * 3
    assert sent == 2 and stats["state"] == "open"


def test_a_kdedge_teacher_endpoint_serves_fallbacks(exported):
    """The teacher bundle behind `kdedge serve`, used by a student runtime."""
    with load(exported[1], artifact="onnx") as teacher_rt:
        server = PredictServer(teacher_rt, "127.0.0.1", 0)
        server.start_background()
        try:
            client = KdedgeClient(server.url, timeout=10)
            with load(
                exported[1], artifact="onnx-int8", policy=ALWAYS_FALL_BACK, fallback=client
            ) as rt:
                p = rt.predict("where is my order please")
                direct = teacher_rt.predict("where is my order please", route=False)
        finally:
            server.shutdown()
            server.server_close()
    assert (p.route, p.source, p.label) == ("fallback", "teacher", direct.label)


def test_router_and_server_metrics_count_teacher_outcomes(exported):
    with FaultServer(default=ok(chat_completion('{"label": "faq"}'))) as fault:
        fault.push(CHAT, malformed())
        client = OpenAIClient(fault.url, "teacher", api_key_env=None, timeout=2, structured=False)
        with load(exported[1], artifact="onnx", policy=ALWAYS_FALL_BACK, fallback=client) as rt:
            server = PredictServer(rt, "127.0.0.1", 0)
            server.start_background()
            try:
                import urllib.request

                body = json.dumps({"texts": ["a", "b", "c"]}).encode()
                with urllib.request.urlopen(server.url + "/predict", data=body) as response:
                    results = json.loads(response.read())["results"]
                with urllib.request.urlopen(server.url + "/metrics") as response:
                    metrics = response.read().decode()
            finally:
                server.shutdown()
                server.server_close()
    assert [r["route"] for r in results] == ["clarify", "fallback", "fallback"]
    assert 'kdedge_fallback_calls_total{outcome="ok"} 2.0' in metrics
    assert 'kdedge_fallback_calls_total{outcome="malformed"} 1.0' in metrics
    assert "kdedge_fallback_breaker_state 0.0" in metrics


@pytest.mark.parametrize("port", [1])
def test_an_unreachable_teacher_never_raises(exported, port):
    client = OpenAIClient(
        f"http://127.0.0.1:{port}",
        "teacher",
        api_key_env=None,
        timeout=0.5,
        max_retries=1,
        backoff=0.01,
    )
    with load(exported[1], artifact="onnx", policy=ALWAYS_FALL_BACK, fallback=client) as rt:
        p = rt.predict("hello")
    assert (p.route, p.reason, p.fallback_error) == ("clarify", "fallback_failed", "connection")
