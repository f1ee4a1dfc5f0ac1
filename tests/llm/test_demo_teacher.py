from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kdedge.llm.catalog import Catalog
from kdedge.llm.demo_answers import MODEL, DemoTeacher, parse_user_turn
from kdedge.llm.demo_teacher import serve
from kdedge.llm.prompts import messages, user_turn

SAMPLES = Path(__file__).parents[2] / "kdedge" / "samples" / "manga_llm"
CATALOG = SAMPLES / "catalog.jsonl"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(CATALOG)


@pytest.fixture(scope="module")
def prompts() -> list[dict]:
    return [
        json.loads(line)
        for split in ("train", "validation", "test")
        for line in (SAMPLES / f"prompts_{split}.jsonl").read_text().splitlines()
    ]


@pytest.fixture()
def server() -> Iterator[str]:
    srv, url = serve(CATALOG, error_rate=0.0, seed=0)
    yield url
    srv.shutdown()
    srv.server_close()


def _evidence(catalog: Catalog, question: str) -> list[str]:
    return [r.evidence_line() for r in catalog.retrieve(question)]


def test_parse_user_turn_reads_back_the_shared_prompt(catalog: Catalog) -> None:
    lines = [catalog["nana"].evidence_line(), catalog["pluto"].evidence_line()]
    assert parse_user_turn(user_turn(" Is Nana in stock? ", lines)) == ("Is Nana in stock?", lines)
    assert parse_user_turn(user_turn("Hi?", [])) == ("Hi?", [])
    assert parse_user_turn("just a question") == ("just a question", [])


def test_answers_fit_every_sample_prompt_kind(catalog: Catalog, prompts: list[dict]) -> None:
    teacher = DemoTeacher(catalog)
    kinds = Counter()
    texts = set()
    for row in prompts:
        found = teacher.answer(row["question"], _evidence(catalog, row["question"]))
        kinds[row["kind"], found.kind] += 1
        assert found.error is None and found.text
        texts.add(found.text)
    assert all(want == got for want, got in kinds), kinds
    assert len(texts) > 0.6 * len(prompts)  # varied, not one template per kind
    nana = teacher.answer("Is Nana hardcover available?", [catalog["nana"].evidence_line()])
    assert "hardcover" in nana.text and "paperback" in nana.text and "$9.99" in nana.text


def test_the_same_prompt_gets_the_same_answer(catalog: Catalog) -> None:
    q, ev = "What formats does Death Note come in?", _evidence(catalog, "Death Note")
    a, b = DemoTeacher(catalog, seed=1), DemoTeacher(catalog, seed=1)
    assert a.answer(q, ev) == b.answer(q, ev)
    others = {DemoTeacher(catalog, seed=s).answer(q, ev).text for s in range(8)}
    assert len(others) > 1  # the seed changes the phrasing


def test_error_rate_injects_one_wrong_fact(catalog: Catalog, prompts: list[dict]) -> None:
    always = DemoTeacher(catalog, error_rate=1.0)
    never = DemoTeacher(catalog, error_rate=0.0)
    errors = Counter()
    for row in prompts[:200]:
        ev = _evidence(catalog, row["question"])
        wrong, right = always.answer(row["question"], ev), never.answer(row["question"], ev)
        if row["kind"] in ("refusal", "escalation", "unknown_title"):
            assert wrong == right and wrong.error is None
        elif right.text.startswith("I can't confirm a good match"):
            continue
        else:
            assert wrong.error is not None and wrong.text != right.text
            errors[wrong.error] += 1
    assert set(errors) == {"format", "availability", "price", "volumes"}
    share = DemoTeacher(catalog, error_rate=0.15)
    hit = sum(
        share.answer(r["question"], _evidence(catalog, r["question"])).error is not None
        for r in prompts
        if r["kind"] == "catalog"
    )
    n = sum(r["kind"] == "catalog" for r in prompts)
    assert 0.08 * n < hit < 0.22 * n
    with pytest.raises(ValueError, match="error_rate"):
        DemoTeacher(catalog, error_rate=1.5)


def test_serves_openai_chat_completions(server: str, catalog: Catalog) -> None:
    ev = [catalog["nana"].evidence_line()]
    body = {"model": "anything", "messages": messages("Is Nana hardcover available?", ev)}
    with httpx.Client(base_url=server, timeout=5) as http:
        reply = http.post("/chat/completions", json=body)
        assert reply.status_code == 200
        data = reply.json()
        assert data["model"] == MODEL and data["object"] == "chat.completion"
        choice = data["choices"][0]
        assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
        text = choice["message"]["content"]
        assert text == DemoTeacher(catalog).answer("Is Nana hardcover available?", ev).text
        usage = data["usage"]
        assert usage["prompt_tokens"] > 30 and usage["completion_tokens"] > 5
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert data["kdedge_demo"] == {"kind": "catalog", "injected_error": None}

        cut = http.post("/chat/completions", json={**body, "max_tokens": 3}).json()
        assert cut["choices"][0]["finish_reason"] == "length"
        assert cut["usage"]["completion_tokens"] == 3 and text.startswith(
            cut["choices"][0]["message"]["content"]
        )

        models = http.get("/models").json()
        assert models["data"][0]["id"] == MODEL

        assert http.post("/chat/completions", content=b"{oops").status_code == 400
        assert http.post("/chat/completions", json={"messages": "hi"}).status_code == 400
        no_user = http.post(
            "/chat/completions", json={"messages": [{"role": "system", "content": "x"}]}
        )
        assert no_user.status_code == 400 and "user message" in no_user.json()["error"]["message"]
        assert http.post("/chat/completions", json={**body, "stream": True}).status_code == 400
        assert http.get("/nope").status_code == 404


def test_the_runtime_teacher_client_feeds_the_gate_and_the_mix(
    catalog: Catalog, prompts: list[dict], tmp_path: Path
) -> None:
    """Over HTTP with the client `kdedge llm collect` uses, rows shaped like its cache; the
    gate rejects exactly the answers the teacher was told to get wrong."""
    from kdedge.llm.gate_batch import gate_dir
    from kdedge.llm.mix import build_dir
    from kdedge.llm.prompts import SYSTEM_PROMPT
    from kdedge.runtimes.teachers import OpenAIClient

    rows = [p for p in prompts if p["id"].startswith("test-")][:60]
    srv, url = serve(CATALOG, error_rate=0.3, seed=0)
    client = OpenAIClient(url, "demo", api_key_env=None, max_retries=0, structured=False)
    answers = []
    try:
        for row in rows:
            records = catalog.retrieve(row["question"])
            evidence = [r.evidence_line() for r in records]
            reply = client.answer(user_turn(row["question"], evidence), SYSTEM_PROMPT)
            assert reply.completion_tokens > 0 and reply.prompt_tokens > 0
            answers.append(
                {
                    **row,
                    "evidence": evidence,
                    "evidence_ids": [r.id for r in records],
                    "answer": reply.text,
                    "teacher_model": "demo",
                }
            )
    finally:
        client.close()
        srv.shutdown()
        srv.server_close()
    (tmp_path / "answers").mkdir()
    (tmp_path / "answers" / "answers.jsonl").write_text(
        "".join(json.dumps(a) + "\n" for a in answers)
    )
    gated = gate_dir(tmp_path / "answers", CATALOG, tmp_path / "gated")
    teacher = DemoTeacher(catalog, error_rate=0.3, seed=0)
    injected = {
        r["id"]
        for r in rows
        if teacher.answer(r["question"], _evidence(catalog, r["question"])).error
    }
    rejected = {
        json.loads(x)["id"]
        for x in (tmp_path / "gated" / "rejected.jsonl").read_text().splitlines()
    }
    assert len(injected) >= 5 and rejected == injected
    assert gated.teacher_rows == 60 and gated.accepted == 60 - len(injected)
    mixed = build_dir(tmp_path / "gated", tmp_path / "train")
    assert mixed.total_rows == gated.accepted


def test_python_dash_m_serves_until_stopped(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "kdedge.llm.demo_teacher", "--catalog", str(CATALOG)]
    with subprocess.Popen(
        [*command, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as proc:
        try:
            line = proc.stdout.readline()
            assert "not a model" in line
            url = line.split("serving ", 1)[1].split()[0]
            assert httpx.get(f"{url}/models", timeout=5).json()["data"][0]["id"] == MODEL
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    bad = subprocess.run(
        [sys.executable, "-m", "kdedge.llm.demo_teacher", "--catalog", str(tmp_path / "x.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "catalog file not found" in bad.stderr
