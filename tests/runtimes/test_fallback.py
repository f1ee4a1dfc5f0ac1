"""The teacher fallback clients against a real local socket server that injects faults."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from kdedge.errors import KdedgeError
from kdedge.runtimes.fallback import (
    KINDS,
    FallbackAnswer,
    FallbackError,
    FallbackTarget,
    KdedgeClient,
    OpenAIClient,
    open_fallback,
    parse_label,
)
from kdedge.runtimes.resilience import CircuitBreaker, RetryPolicy, parse_retry_after

from .fault_server import (
    FaultServer,
    chat_completion,
    malformed,
    ok,
    reset,
    sleep,
    slow_body,
    status,
)

CHAT = "/v1/chat/completions"
LABELS = ["order_tracking", "return_request", "faq", "escalation"]
FAST = {"api_key_env": None, "timeout": 1.0, "max_retries": 2, "backoff": 0.01, "backoff_max": 0.1}


def label_reply(label: str, **usage: int) -> object:
    return ok(chat_completion(json.dumps({"label": label}), **usage))


def check_accounting(client: OpenAIClient | KdedgeClient) -> dict:
    stats = client.stats()
    assert stats["ok"] + sum(stats["failed"].values()) == stats["calls"]
    assert set(stats["failed"]) == set(KINDS)
    assert stats["in_flight"] == 0
    return stats


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server():
    with FaultServer() as fault:
        yield fault


@pytest.fixture
def make_client(server):
    clients: list[OpenAIClient | KdedgeClient] = []

    def make(cls=OpenAIClient, **kwargs):
        options = {**FAST, **kwargs}
        if cls is OpenAIClient:
            client = OpenAIClient(server.url, "teacher", **options)
        else:
            client = KdedgeClient(server.url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------------- success


def test_classify_returns_label_with_tokens_and_cost(server, make_client):
    server.push(CHAT, label_reply("faq", prompt_tokens=100, completion_tokens=10))
    client = make_client(price_prompt_per_1k=0.5, price_completion_per_1k=2.0)
    answer = client.classify("do you sell gift cards?", LABELS)

    assert isinstance(answer, FallbackAnswer)
    assert (answer.label, answer.text, answer.attempts) == ("faq", None, 1)
    assert answer.source == f"openai:teacher@127.0.0.1:{server.port}"
    assert (answer.prompt_tokens, answer.completion_tokens) == (100, 10)
    assert answer.cost == pytest.approx(0.05 + 0.02)
    assert answer.raw == '{"label": "faq"}'
    assert answer.latency_ms > 0
    assert answer.to_dict()["label"] == "faq"

    sent = server.requests[0].json
    assert sent["model"] == "teacher" and sent["temperature"] == 0 and sent["max_tokens"] == 64
    system, user = sent["messages"]
    assert system["role"] == "system" and all(label in system["content"] for label in LABELS)
    assert '{"label"' in system["content"]
    assert user == {"role": "user", "content": "do you sell gift cards?"}
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "intent",
            "schema": {
                "type": "object",
                "properties": {"label": {"type": "string", "enum": LABELS}},
                "required": ["label"],
            },
        },
    }
    stats = check_accounting(client)
    assert (stats["calls"], stats["ok"], stats["attempts"], stats["retries"]) == (1, 1, 1, 0)
    assert (stats["prompt_tokens"], stats["completion_tokens"]) == (100, 10)
    assert stats["cost"] == pytest.approx(0.07)
    assert stats["state"] == "closed" and stats["structured"] == "json_schema"
    assert isinstance(client, FallbackTarget)


@pytest.mark.parametrize(
    ("content", "label"),
    [
        ('```json\n{"label": "return_request"}\n```', "return_request"),
        ('  ```\n{"label": "FAQ"}\n```  \n', "faq"),
        (" escalation \n", "escalation"),
        ('"order_tracking"', "order_tracking"),
        ("Return_Request", "return_request"),
    ],
)
def test_fenced_json_and_bare_labels_are_accepted(server, make_client, content, label):
    server.push(CHAT, ok(chat_completion(content, prompt_tokens=None, completion_tokens=None)))
    answer = make_client().classify("text", LABELS)
    assert answer.label == label
    assert (answer.prompt_tokens, answer.completion_tokens, answer.cost) == (0, 0, 0.0)


def test_base_url_with_v1_and_trailing_slash(server, make_client):
    server.push(CHAT, label_reply("faq"), label_reply("faq"))
    for url in (server.url + "/v1", server.url + "/v1/"):
        with OpenAIClient(url, "teacher", **FAST) as client:
            assert client.classify("x", LABELS).label == "faq"
    assert [r.path for r in server.requests] == [CHAT, CHAT]


def test_answer_mode_returns_text_without_response_format(server, make_client):
    server.push(CHAT, ok(chat_completion("We open at 9am.", completion_tokens=6)))
    client = make_client()
    answer = client.answer("when do you open?", system="Be brief.", max_tokens=20)
    assert (answer.label, answer.text, answer.completion_tokens) == (None, "We open at 9am.", 6)
    sent = server.requests[0].json
    assert "response_format" not in sent and sent["max_tokens"] == 20
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    server.push(CHAT, ok(chat_completion("   ")))
    with pytest.raises(FallbackError) as err:
        client.answer("hi")
    assert err.value.kind == "malformed"
    check_accounting(client)


# ----------------------------------------------------------------------------- bad replies


def test_invalid_label_is_not_retried(server, make_client):
    server.push(CHAT, label_reply("refund"))
    client = make_client()
    with pytest.raises(FallbackError) as err:
        client.classify("i want my money back", LABELS)
    assert err.value.kind == "invalid_label"
    assert "refund" in err.value.raw and "refund" in str(err.value)
    assert isinstance(err.value, KdedgeError)
    assert server.count(CHAT) == 1 and err.value.attempts == 1
    stats = check_accounting(client)
    assert stats["failed"]["invalid_label"] == 1 and stats["retries"] == 0
    assert stats["prompt_tokens"] == 12  # the teacher was paid for the bad answer
    assert client.breaker.state == "closed"


@pytest.mark.parametrize(
    "action",
    [
        malformed(),
        ok(chat_completion("I think this is about shipping.")),
        ok(chat_completion('{"intent": "faq"}')),
        ok(chat_completion(None)),
        ok({"unexpected": "shape"}),
        ok([1, 2, 3]),
    ],
    ids=["html", "prose", "wrong-key", "null-content", "no-choices", "json-list"],
)
def test_malformed_is_not_retried(server, make_client, action):
    server.push(CHAT, action)
    client = make_client()
    with pytest.raises(FallbackError) as err:
        client.classify("text", LABELS)
    assert err.value.kind == "malformed"
    assert "\n" not in str(err.value)
    assert server.count(CHAT) == 1
    assert check_accounting(client)["failed"]["malformed"] == 1


def test_other_4xx_is_not_retried(server, make_client):
    server.push(CHAT, status(404, {"error": {"message": "model not found"}}))
    client = make_client(structured=False)
    with pytest.raises(FallbackError) as err:
        client.classify("text", LABELS)
    assert (err.value.kind, err.value.status) == ("http_4xx", 404)
    assert "model not found" in str(err.value)
    assert server.count(CHAT) == 1


# ----------------------------------------------------------------------------- retries


def test_5xx_then_success_is_retried(server, make_client):
    server.push(CHAT, status(500), label_reply("escalation"))
    client = make_client()
    answer = client.classify("i will sue", LABELS)
    assert (answer.label, answer.attempts) == ("escalation", 2)
    stats = check_accounting(client)
    assert (stats["ok"], stats["retries"], stats["attempts"]) == (1, 1, 2)


def test_retry_after_is_honoured(server, make_client):
    server.push(CHAT, status(429, headers={"Retry-After": "0.3"}), label_reply("faq"))
    client = make_client(backoff=0.0, backoff_max=0.1)  # Retry-After limit: 0.4 s
    answer = client.classify("x", LABELS)
    assert answer.attempts == 2
    assert 280 <= answer.latency_ms < 2000


def test_too_long_retry_after_gives_up_rate_limited(server, make_client):
    server.push(CHAT, status(429, headers={"Retry-After": "3600"}), label_reply("faq"))
    client = make_client()
    start = time.perf_counter()
    with pytest.raises(FallbackError) as err:
        client.classify("x", LABELS)
    assert time.perf_counter() - start < 1.0
    assert (err.value.kind, err.value.retry_after) == ("rate_limited", 3600)
    assert server.count(CHAT) == 1


def test_timeouts_exhaust_retries(server, make_client):
    server.push(CHAT, *[sleep(3.0) for _ in range(3)])
    client = make_client(timeout=0.2, max_retries=2)
    start = time.perf_counter()
    with pytest.raises(FallbackError) as err:
        client.classify("x", LABELS)
    assert time.perf_counter() - start < 2.0
    assert err.value.kind == "timeout" and err.value.attempts == 3
    assert "after 3 attempts" in str(err.value)
    assert server.count(CHAT) == 3
    stats = check_accounting(client)
    assert (stats["failed"]["timeout"], stats["attempts"], stats["retries"]) == (1, 3, 2)


def test_slow_drip_body_hits_the_per_attempt_deadline(server, make_client):
    body = chat_completion('{"label": "faq"}')
    server.push(CHAT, slow_body(3.0, body), slow_body(3.0, body))
    client = make_client(timeout=0.4, max_retries=1)
    start = time.perf_counter()
    with pytest.raises(FallbackError) as err:
        client.classify("x", LABELS)
    elapsed = time.perf_counter() - start
    assert err.value.kind == "timeout" and err.value.attempts == 2
    assert elapsed < 2.0  # two 0.4 s attempts, not two 3 s bodies


def test_slow_body_within_deadline_succeeds(server, make_client):
    server.push(CHAT, slow_body(0.2, chat_completion('{"label": "faq"}'), interval=0.05))
    assert make_client(timeout=2.0).classify("x", LABELS).label == "faq"


def test_connection_reset_is_retried(server, make_client):
    server.push(CHAT, reset(), label_reply("faq"))
    client = make_client()
    assert client.classify("x", LABELS).attempts == 2

    server.push(CHAT, reset(), reset(), reset())
    with pytest.raises(FallbackError) as err:
        client.classify("x", LABELS)
    assert err.value.kind == "connection" and err.value.attempts == 3
    stats = check_accounting(client)
    assert (stats["ok"], stats["failed"]["connection"]) == (1, 1)


def test_connection_refused_is_a_connection_error(make_client):
    client = OpenAIClient(f"http://127.0.0.1:{free_port()}", "teacher", **FAST)
    with client, pytest.raises(FallbackError) as err:
        client.classify("x", LABELS)
    assert err.value.kind == "connection" and err.value.attempts == 3
    assert "check that the teacher is running" in str(err.value)


# ----------------------------------------------------------------------------- breaker


def test_breaker_opens_rejects_then_half_opens_and_closes(server, make_client):
    clock = FakeClock()
    server.default = status(503)
    client = make_client(max_retries=0, breaker_failures=2, breaker_reset_s=10.0, clock=clock)
    for _ in range(2):
        with pytest.raises(FallbackError) as err:
            client.classify("x", LABELS)
        assert err.value.kind == "http_5xx"
    assert client.breaker.state == "open"

    with pytest.raises(FallbackError) as err:
        client.classify("x", LABELS)
    assert err.value.kind == "circuit_open" and err.value.attempts == 0
    assert "next trial in 10.0 s" in str(err.value)
    assert server.count(CHAT) == 2  # rejected without touching the teacher

    clock.now += 10.0
    assert client.stats()["state"] == "half_open"
    server.push(CHAT, label_reply("faq"))
    assert client.classify("x", LABELS).label == "faq"
    assert client.breaker.state == "closed"
    stats = check_accounting(client)
    assert (stats["breaker_opens"], stats["rejected_open"], stats["ok"]) == (1, 1, 1)
    assert stats["failed"]["http_5xx"] == 2


def test_failed_half_open_trial_reopens(server, make_client):
    clock = FakeClock()
    server.default = status(502)
    client = make_client(max_retries=1, breaker_failures=1, breaker_reset_s=5.0, clock=clock)
    with pytest.raises(FallbackError):
        client.classify("x", LABELS)
    assert client.breaker.state == "open" and server.count(CHAT) == 2  # retries, then opened
    clock.now += 5.0
    with pytest.raises(FallbackError) as err:
        client.classify("x", LABELS)
    assert err.value.kind == "http_5xx"
    assert client.breaker.state == "open" and client.breaker.opens == 2
    with pytest.raises(FallbackError) as err:
        client.classify("x", LABELS)
    assert err.value.kind == "circuit_open"
    check_accounting(client)


def test_answered_failures_do_not_trip_the_breaker(server, make_client):
    server.push(CHAT, *[label_reply("nope") for _ in range(3)])
    client = make_client(breaker_failures=2)
    for _ in range(3):
        with pytest.raises(FallbackError):
            client.classify("x", LABELS)
    assert client.breaker.state == "closed"


def test_breaker_unit_one_trial_and_stale_tickets():
    clock = FakeClock()
    breaker = CircuitBreaker(2, 1.0, clock=clock)
    early = breaker.allow()
    first, second = breaker.allow(), breaker.allow()
    assert breaker.failure(first) is False and breaker.failure(second) is True
    assert breaker.allow() is None and breaker.retry_in() == pytest.approx(1.0)
    breaker.success(early)  # admitted before the breaker opened: ignored
    assert breaker.state == "open"
    clock.now += 1.0
    trial = breaker.allow()
    assert trial is not None and trial.trial and breaker.allow() is None
    breaker.release(trial)  # e.g. cancelled: the next caller gets the trial
    trial = breaker.allow()
    assert trial is not None and trial.trial
    breaker.success(trial)
    assert breaker.state == "closed" and breaker.opens == 1
    disabled = CircuitBreaker(0, 1.0)
    for _ in range(5):
        assert disabled.failure(disabled.allow()) is False
    assert disabled.state == "closed"


# ----------------------------------------------------------------------------- concurrency


def test_concurrency_limit_across_threads(server, make_client):
    server.default = sleep(0.15, then=label_reply("faq"))
    client = make_client(max_concurrency=2)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: client.classify(f"text {i}", LABELS), range(8)))
    assert [a.label for a in answers] == ["faq"] * 8
    assert server.max_in_flight == 2
    assert check_accounting(client)["ok"] == 8


def test_concurrency_limit_async(server, make_client):
    server.default = sleep(0.1, then=label_reply("faq"))
    client = make_client(max_concurrency=2)

    async def main() -> list[FallbackAnswer]:
        async with client:
            return await asyncio.gather(*(client.aclassify(f"t{i}", LABELS) for i in range(6)))

    answers = asyncio.run(main())
    assert [a.label for a in answers] == ["faq"] * 6
    assert server.max_in_flight == 2


# ----------------------------------------------------------------------------- async


def test_async_success_retry_and_failures(server, make_client):
    server.push(
        CHAT,
        status(500),
        label_reply("return_request", prompt_tokens=7, completion_tokens=3),
        label_reply("nope"),
        reset(),
        ok(chat_completion("Sure, here you go.")),
    )
    client = make_client()

    async def main():
        async with client:
            first = await client.aclassify("send it back", LABELS)
            with pytest.raises(FallbackError) as bad:
                await client.aclassify("x", LABELS)
            text = await client.aanswer("hello")
            return first, bad.value, text

    first, bad, text = asyncio.run(main())
    assert (first.label, first.attempts, first.prompt_tokens) == ("return_request", 2, 7)
    assert bad.kind == "invalid_label" and bad.attempts == 1
    assert text.text == "Sure, here you go." and text.attempts == 2
    stats = check_accounting(client)
    assert (stats["calls"], stats["ok"], stats["retries"]) == (3, 2, 2)


def test_async_timeouts_and_slow_body(server, make_client):
    body = chat_completion('{"label": "faq"}')
    server.push(CHAT, sleep(3.0), slow_body(3.0, body), reset(), reset())
    client = make_client(timeout=0.3, max_retries=1)

    async def main():
        errors = []
        async with client:
            for _ in range(2):
                try:
                    await client.aclassify("x", LABELS)
                except FallbackError as exc:
                    errors.append(exc)
        return errors

    start = time.perf_counter()
    errors = asyncio.run(main())
    assert time.perf_counter() - start < 3.0
    assert [(e.kind, e.attempts) for e in errors] == [("timeout", 2), ("connection", 2)]
    assert check_accounting(client)["failed"]["timeout"] == 1


def test_async_breaker_is_shared_with_sync(server, make_client):
    server.default = status(500)
    client = make_client(max_retries=0, breaker_failures=1, clock=FakeClock())
    with pytest.raises(FallbackError):
        client.classify("x", LABELS)

    async def main():
        async with client:
            with pytest.raises(FallbackError) as err:
                await client.aclassify("x", LABELS)
            return err.value

    assert asyncio.run(main()).kind == "circuit_open"
    assert server.count(CHAT) == 1


def test_cancelled_async_call_is_counted(server, make_client):
    server.push(CHAT, sleep(2.0))
    client = make_client(timeout=5.0)

    async def main():
        async with client:
            task = asyncio.ensure_future(client.aclassify("x", LABELS))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    stats = check_accounting(client)
    assert stats["failed"]["timeout"] == 1 and client.breaker.state == "closed"


# ----------------------------------------------------------------------------- keys


def test_api_key_sent_and_never_shown(server, monkeypatch):
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("KDEDGE_TEST_TEACHER_KEY", secret)
    server.push(
        CHAT,
        label_reply("faq"),
        status(401, {"error": {"message": f"Incorrect API key provided: {secret}"}}),
    )
    with OpenAIClient(
        server.url, "teacher", **{**FAST, "api_key_env": "KDEDGE_TEST_TEACHER_KEY"}
    ) as c:
        c.classify("x", LABELS)
        with pytest.raises(FallbackError) as err:
            c.classify("x", LABELS)
        shown = [repr(c), str(c.stats()), str(err.value), repr(err.value)]
    assert server.requests[0].headers["authorization"] == f"Bearer {secret}"
    assert err.value.kind == "http_4xx" and err.value.status == 401
    assert "KDEDGE_TEST_TEACHER_KEY" in str(err.value)
    assert not any(secret in text for text in shown)


def test_no_key_sends_no_header(server, monkeypatch):
    monkeypatch.delenv("KDEDGE_TEST_UNSET_KEY", raising=False)
    server.push(CHAT, label_reply("faq"), label_reply("faq"), status(401))
    with OpenAIClient(server.url, "teacher", **FAST) as c:  # api_key_env=None
        c.classify("x", LABELS)
    with OpenAIClient(server.url, "t", **{**FAST, "api_key_env": "KDEDGE_TEST_UNSET_KEY"}) as c:
        c.classify("x", LABELS)  # unset variable: no header, local servers accept that
        with pytest.raises(FallbackError) as err:
            c.classify("x", LABELS)
    assert all("authorization" not in r.headers for r in server.requests)
    assert err.value.kind == "config"
    assert "KDEDGE_TEST_UNSET_KEY is not set" in str(err.value)


# ----------------------------------------------------------------------------- structured


def formats(server) -> list[str | None]:
    return [(r.json.get("response_format") or {}).get("type") for r in server.requests]


def test_refused_json_schema_falls_back_and_is_remembered(server, make_client):
    server.push(CHAT, status(400), status(400), label_reply("faq"), label_reply("faq"))
    client = make_client()
    answer = client.classify("x", LABELS)
    assert answer.label == "faq" and answer.attempts == 3
    assert client.structured == "off"
    client.classify("x", LABELS)
    assert formats(server) == ["json_schema", "json_object", None, None]
    stats = check_accounting(client)
    assert (stats["retries"], stats["structured"]) == (0, "off")


def test_llama_cpp_python_style_500_steps_to_json_object(server, make_client):
    refusal = {"error": {"message": "Input should be 'text' or 'json_object' ('response_format')"}}
    server.push(CHAT, status(500, refusal), label_reply("faq"), label_reply("faq"))
    client = make_client()
    assert client.classify("x", LABELS).attempts == 2
    client.classify("x", LABELS)
    assert formats(server) == ["json_schema", "json_object", "json_object"]
    sent = server.requests[1].json["response_format"]
    assert sent["schema"]["properties"]["label"]["enum"] == LABELS
    assert client.structured == "json_object"


def test_400_on_every_format_is_not_remembered(server, make_client):
    server.push(CHAT, status(400), status(400), status(400))
    client = make_client()
    with pytest.raises(FallbackError) as err:
        client.classify("x", LABELS)
    assert err.value.kind == "http_4xx" and err.value.attempts == 3
    assert client.structured == "json_schema"


def test_structured_false_sends_no_response_format(server, make_client):
    server.push(CHAT, label_reply("faq"))
    make_client(structured=False).classify("x", LABELS)
    assert formats(server) == [None]


# ----------------------------------------------------------------------------- kdedge


def predict_reply(label: str) -> object:
    return ok(
        {
            "label": label,
            "confidence": 0.93,
            "route": "answer",
            "reason": "confident",
            "top_k": [{"label": label, "prob": 0.93}],
        }
    )


def test_kdedge_client(server, make_client):
    server.push("/predict", status(503), predict_reply("FAQ"), predict_reply("weather"))
    server.push("/predict", malformed(), predict_reply("escalation"))
    client = make_client(KdedgeClient)
    answer = client.classify("do you sell gift cards", LABELS)
    assert (answer.label, answer.attempts, answer.source) == ("faq", 2, f"kdedge:{server.url}")
    assert server.requests[0].json == {"text": "do you sell gift cards", "route": False}
    assert '"confidence"' in answer.raw
    for kind in ("invalid_label", "malformed"):
        with pytest.raises(FallbackError) as err:
            client.classify("x", LABELS)
        assert err.value.kind == kind

    async def main():
        async with client:
            return await client.aclassify("lawyer", LABELS)

    assert asyncio.run(main()).label == "escalation"
    stats = check_accounting(client)
    assert (stats["calls"], stats["ok"], stats["retries"]) == (4, 2, 1)
    assert isinstance(client, FallbackTarget)


# ----------------------------------------------------------------------------- factory, config


def test_open_fallback_selects_the_client(server):
    with open_fallback(f"kdedge+{server.url}", timeout=2.0, max_tokens=5) as k:
        assert isinstance(k, KdedgeClient) and k.source == f"kdedge:{server.url}"
    with open_fallback(server.url, kind="kdedge", api_key_env="OPENAI_API_KEY") as k:
        assert isinstance(k, KdedgeClient) and k.api_key_env is None
    with open_fallback(server.url, model="m", api_key_env=None) as o:
        assert isinstance(o, OpenAIClient) and o.model == "m"
    with open_fallback(server.url, kind="openai", model="m") as o:
        assert isinstance(o, OpenAIClient)
    for url, kwargs in [
        (server.url, {}),  # openai needs a model
        (f"kdedge+{server.url}", {"kind": "openai", "model": "m"}),
        (server.url, {"kind": "grpc"}),
        ("ftp://example.com", {"model": "m"}),
        ("not a url", {"model": "m"}),
    ]:
        with pytest.raises(FallbackError) as err:
            open_fallback(url, **kwargs)
        assert err.value.kind == "config" and "Fix:" in str(err.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0},
        {"max_retries": -1},
        {"max_concurrency": 0},
        {"max_tokens": 0},
        {"verify": "/no/such/ca-bundle.pem"},
    ],
)
def test_bad_settings_are_config_errors(server, kwargs):
    with pytest.raises(FallbackError) as err:
        OpenAIClient(server.url, "m", **{**FAST, **kwargs})
    assert err.value.kind == "config"


def test_bad_labels_and_closed_client_are_counted_config_errors(server, make_client):
    client = make_client()
    for labels in ([], "faq", ["faq", ""]):
        with pytest.raises(FallbackError) as err:
            client.classify("x", labels)
        assert err.value.kind == "config"
    client.close()
    with pytest.raises(FallbackError) as err:
        client.classify("x", LABELS)
    assert err.value.kind == "config" and "closed" in str(err.value)
    stats = check_accounting(client)
    assert (stats["calls"], stats["failed"]["config"]) == (4, 4)
    assert server.count() == 0


def test_verify_false_and_ssl_context_accepted(server):
    import ssl

    for verify in (False, ssl.create_default_context()):
        with OpenAIClient(server.url, "m", **{**FAST, "verify": verify}):
            pass


def test_mock_transports_are_used():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=chat_completion('{"label": "faq"}'))

    transport = httpx.MockTransport(handler)
    client = OpenAIClient(
        "http://teacher.invalid", "m", api_key_env=None, transport=transport,
        async_transport=transport,
    )  # fmt: skip
    with client:
        assert client.classify("x", LABELS).label == "faq"

    async def main():
        async with OpenAIClient(
            "http://teacher.invalid", "m", api_key_env=None, async_transport=transport
        ) as c:
            return await c.aclassify("x", LABELS)

    assert asyncio.run(main()).label == "faq"


def test_mixed_outcomes_add_up_across_threads(server, make_client):
    actions = [label_reply("faq"), status(500), label_reply("nope"), malformed(), reset()]
    server.default = label_reply("faq")
    server.push(CHAT, *(actions * 4))
    client = make_client(max_retries=0, breaker_failures=0, max_concurrency=3)
    outcomes: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        try:
            client.classify(f"t{i}", LABELS)
            kind = "ok"
        except FallbackError as exc:
            kind = exc.kind
        with lock:
            outcomes.append(kind)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(one, range(30)))
    stats = check_accounting(client)
    assert stats["calls"] == 30 == len(outcomes)
    assert stats["ok"] == outcomes.count("ok")
    for kind in KINDS:
        assert stats["failed"][kind] == outcomes.count(kind)


# ----------------------------------------------------------------------------- helpers


def test_imports_stay_small():
    code = (
        "import sys\nimport kdedge.runtimes\nbefore = set(sys.modules)\n"
        "from kdedge.runtimes.fallback import OpenAIClient\n"
        "print(' '.join(sorted(before)), '|', ' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = (set(part.split()) for part in out.stdout.split("|"))
    assert not {m.split(".")[0] for m in before} & {"httpx", "tenacity"}
    heavy = {"torch", "transformers", "optimum", "click", "rich"}
    assert not {m.split(".")[0] for m in after} & heavy
    assert "httpx" in after


def test_parse_label_helper():
    assert parse_label('{"label": " faq "}', LABELS) == "faq"
    with pytest.raises(FallbackError) as err:
        parse_label('{"label": "Faq"}', ["faq", "FAQ"])  # ambiguous case-insensitive match
    assert err.value.kind == "invalid_label"
    with pytest.raises(FallbackError) as err:
        parse_label("faq.", LABELS)
    assert err.value.kind == "malformed"


def test_parse_retry_after():
    now = 1_700_000_000.0
    assert parse_retry_after("0.2") == pytest.approx(0.2)
    assert parse_retry_after(" 3 ") == 3.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:40 GMT", now=now) == pytest.approx(20.0)
    assert parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT", now=now) == 0.0
    for bad in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(bad) is None


def test_retry_policy_waits():
    policy = RetryPolicy(max_retries=3, backoff=0.5, backoff_max=2.0)
    assert policy.attempts == 4 and policy.retry_after_limit == 8.0
    for n in range(1, 8):
        assert 0.0 <= policy.backoff_wait(n) <= min(2.0, 0.5 * 2 ** (n - 1))
