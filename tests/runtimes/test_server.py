"""`kdedge serve` over real HTTP, the Lambda handler, and fallbacks that fail."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import time
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


# -- limits: framing, timeouts, connection table (issue #19) ---------------------------------


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    from tests.runtimes.tiny_bundle import build_tiny_bundle

    return build_tiny_bundle(tmp_path_factory.mktemp("limits") / "bundle")


@pytest.fixture
def limited(tiny_bundle, request):
    """A PredictServer on the tiny bundle; options from @pytest.mark.parametrize indirect."""
    options = getattr(request, "param", {})
    rt = load(tiny_bundle, artifact="onnx")
    server = PredictServer(rt, "127.0.0.1", 0, **options)
    server.start_background()
    yield server
    server.shutdown()
    server.server_close()
    rt.close()


def raw_request(server, data: bytes, timeout: float = 10.0) -> tuple[int, dict, bool]:
    """Send ``data`` on a new connection; (status, JSON body, whether the server closed)."""
    import socket

    with socket.create_connection(server.server_address[:2], timeout=timeout) as sock:
        sock.sendall(data)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        while len(body) < int(headers.get("Content-Length", 0)):
            body += sock.recv(65536)
        closed = headers.get("Connection") == "close" and sock.recv(1) == b""
    return int(lines[0].split()[1]), json.loads(body), closed


def post(headers: str, body: bytes = b"") -> bytes:
    return f"POST /predict HTTP/1.1\r\nHost: t\r\n{headers}\r\n".encode() + body


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ("Content-Length: -1\r\n", 400, "non-negative integer"),
        ("Content-Length: +5\r\n", 400, "non-negative integer"),
        ("Content-Length: 1_0\r\n", 400, "non-negative integer"),
        ("Content-Length: 0x10\r\n", 400, "non-negative integer"),
        ("Content-Length: \u0661\u0660\r\n", 400, "non-negative integer"),  # Arabic-Indic 10
        ("Content-Length: 5\r\nContent-Length: 6\r\n", 400, "one non-negative"),
        ("", 411, "Content-Length"),
        ("Transfer-Encoding: chunked\r\n", 411, "chunked"),
        ("Content-Length: 99999999999\r\n", 413, "exceeds"),
        ("Content-Length: 1048577\r\n", 413, "exceeds 1048576"),
    ],
)
def test_content_length_is_parsed_strictly(limited, headers, status, message):
    code, body, closed = raw_request(limited, post(headers, b'{"text": "hi"}'))
    assert (code, closed) == (status, True) and message in body["error"]
    assert set(body) == {"error"} and "\n" not in body["error"]
    assert call(limited.url + "/predict", {"text": "where is my order"})[0] == 200


def test_a_negative_length_buffers_nothing(limited):
    """Before: rfile.read(-1) read until the client closed (200 MB held in memory)."""
    import socket

    with socket.create_connection(limited.server_address[:2], timeout=10) as sock:
        sock.sendall(post("Content-Length: -1\r\n"))
        started = time.monotonic()
        reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 400") and time.monotonic() - started < 2
        with contextlib.suppress(OSError):  # the server closed: more bytes go nowhere
            for _ in range(64):
                sock.sendall(b"x" * 65536)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000, "nested too deeply"),
        (b'{"text": "\\ud800 hi"}', "lone surrogate"),
        (b'{"texts": ["ok", "\\udfff"]}', "lone surrogate"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"text": "hi", "top_k": ' + b"1" * 5000 + b"}", "4300 digits"),  # a bare ValueError
    ],
)
def test_hostile_bodies_get_a_one_line_400(limited, capfd, body, message):
    code, data, _ = raw_request(limited, post(f"Content-Length: {len(body)}\r\n", body))
    assert code == 400 and message in data["error"] and "\n" not in data["error"]
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("limited", [{"request_timeout": 1.0}], indirect=True)
def test_a_trickling_client_is_cut_off_at_the_request_timeout(limited):
    """A byte every 0.2 s never trips a per-recv socket timeout; the request deadline does."""
    import socket

    with socket.create_connection(limited.server_address[:2], timeout=10) as sock:
        started = time.monotonic()
        with contextlib.suppress(OSError):
            for byte in post("X-Slow: " + "a" * 100 + "\r\n"):
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
                if time.monotonic() - started > 5:
                    break
        assert sock.recv(1024) == b""  # closed by the server, with no reply
        assert time.monotonic() - started < 3
    assert limited.connections.evicted["timeout"] >= 1


@pytest.mark.parametrize("limited", [{"request_timeout": 1.0}], indirect=True)
def test_a_half_sent_body_gets_408(limited):
    code, body, closed = raw_request(limited, post("Content-Length: 100\r\n", b'{"text": '))
    assert (code, closed) == (408, True) and "did not arrive" in body["error"]


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def test_a_slowloris_of_200_connections_leaves_healthz_fast_and_memory_flat(limited):
    """200 clients trickle headers; /healthz stays fast, threads stay bounded, RSS flat."""
    import socket
    import statistics

    for _ in range(20):  # warm up: the first requests import and allocate what they need
        call(limited.url + "/healthz")
    rss_before, threads_before = _rss_mb(), threading.active_count()
    attackers = []
    for _ in range(200):
        sock = socket.create_connection(limited.server_address[:2], timeout=10)
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: t\r\n")
        attackers.append(sock)
    latencies = []
    deadline = time.monotonic() + 20
    try:
        for i in range(40):
            for sock in attackers[i % 10 :: 10]:  # keep trickling
                with contextlib.suppress(OSError):
                    sock.sendall(b"X")
            started = time.perf_counter()
            status, body = call(limited.url + "/healthz")
            latencies.append((time.perf_counter() - started) * 1000)
            assert status == 200 and json.loads(body)["status"] == "ok"
            assert time.monotonic() < deadline
        threads_during = threading.active_count()
        rss_after = _rss_mb()
    finally:
        for sock in attackers:
            sock.close()
    p50 = statistics.median(latencies)
    p95 = sorted(latencies)[int(0.95 * len(latencies)) - 1]
    print(
        f"slowloris 200: healthz p50 {p50:.1f} ms p95 {p95:.1f} ms, "
        f"RSS {rss_before:.1f} -> {rss_after:.1f} MB, threads {threads_before} -> {threads_during}"
    )
    assert p95 < 50, latencies
    assert rss_after - rss_before < 20
    assert threads_during - threads_before <= 64 + 2  # one per admitted connection at most
    assert limited.connections.open <= 64 and limited.connections.evicted["capacity"] >= 136


class GatedRuntime:
    """The tiny runtime, but predict_batch waits for ``release``: connections stay busy."""

    def __init__(self, rt):
        self._rt, self.release, self.entered = rt, threading.Event(), threading.Semaphore(0)

    def __getattr__(self, name):
        return getattr(self._rt, name)

    def predict_batch(self, texts, route=True):
        self.entered.release()
        self.release.wait(20)
        return self._rt.predict_batch(texts, route=route)


def test_a_full_table_of_busy_connections_answers_503_at_once(tiny_bundle):
    rt = load(tiny_bundle, artifact="onnx")
    gated = GatedRuntime(rt)
    server = PredictServer(gated, "127.0.0.1", 0, max_connections=2)
    server.start_background()
    try:
        with ThreadPoolExecutor(2) as pool:
            busy = [pool.submit(call, server.url + "/predict", {"text": "hi"}) for _ in range(2)]
            assert gated.entered.acquire(timeout=10) and gated.entered.acquire(timeout=10)
            started = time.monotonic()
            code, body, closed = raw_request(server, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert (code, closed) == (503, True) and "server busy" in body["error"]
            assert time.monotonic() - started < 1.0
            gated.release.set()
            assert [f.result()[0] for f in busy] == [200, 200]
        assert call(server.url + "/healthz")[0] == 200
        assert server.connections.rejected == 1
        _, metrics = call(server.url + "/metrics")
        assert "kdedge_connections_rejected 1.0" in metrics
    finally:
        gated.release.set()
        server.shutdown()
        server.server_close()
        rt.close()


def test_invented_paths_share_one_metrics_label(limited):
    for i in range(30):
        call(limited.url + f"/nope-{i}")
    _, metrics = call(limited.url + "/metrics")
    assert 'path="other",status="404"} 30.0' in metrics and "nope-" not in metrics


def test_bad_server_limits_are_config_errors(tiny_bundle):
    from kdedge.errors import ConfigError

    rt = load(tiny_bundle, artifact="onnx")
    with pytest.raises(ConfigError, match="request_timeout"):
        PredictServer(rt, "127.0.0.1", 0, request_timeout=0)
    with pytest.raises(ConfigError, match="max_connections"):
        PredictServer(rt, "127.0.0.1", 0, max_connections=0)
    rt.close()


def test_a_bug_outside_the_model_is_a_500_not_a_dropped_connection(limited, monkeypatch, capfd):
    import kdedge.runtimes.server as server_module

    def broken(runtime):
        raise KeyError("artifact")

    monkeypatch.setattr(server_module, "health", broken)
    code, body, closed = raw_request(limited, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (code, closed) == (500, True) and body == {
        "error": "internal error: KeyError: 'artifact'"
    }
    assert "KeyError" in capfd.readouterr().err  # the operator still sees the traceback
    monkeypatch.undo()
    assert call(limited.url + "/healthz")[0] == 200
