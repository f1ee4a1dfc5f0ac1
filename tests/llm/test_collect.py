from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdedge.errors import DataError, KdedgeError
from kdedge.llm.collect import ANSWERS, collect, read_cache, read_prompts
from kdedge.runtimes.teachers import OpenAIClient
from tests.runtimes.fault_server import FaultServer, chat_completion, ok, status

CHAT = "/v1/chat/completions"


def _prompts(path: Path, n: int) -> Path:
    rows = [
        {"id": f"p{i}", "question": f"Is title {i} in stock?", "kind": "catalog"} for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _client(server: FaultServer) -> OpenAIClient:
    return OpenAIClient(
        server.url,
        "teacher-x",
        api_key_env=None,
        max_retries=0,
        structured=False,
        price_prompt_per_1k=1.0,
        price_completion_per_1k=2.0,
        breaker_failures=100,
    )


def test_collect_caches_with_provenance_and_resumes_after_failures(tmp_path: Path) -> None:
    prompts = _prompts(tmp_path / "p.jsonl", 6)
    out = tmp_path / "answers"
    with FaultServer(default=ok(chat_completion("It is in stock.", prompt_tokens=40))) as server:
        server.push(CHAT, status(500), status(500))  # two prompts fail on the first run
        client = _client(server)
        first = collect(prompts, out, client, workers=1)
        assert first.answered == 4 and sum(first.failed.values()) == 2 and not first.complete
        rows = read_cache(out / ANSWERS)
        assert len(rows) == 4
        row = next(iter(rows.values()))
        assert row["teacher_model"] == "teacher-x" and row["prompt_tokens"] == 40
        assert row["cost_usd"] == pytest.approx(40 / 1000 * 1.0 + 5 / 1000 * 2.0)
        assert len(row["prompt_sha256"]) == 64 and row["params"]["max_tokens"] == 256
        calls = server.count(CHAT)
        second = collect(prompts, out, client, workers=2)  # asks only for the two missing
        assert second.cache_hits == 4 and second.answered == 2 and second.complete
        assert server.count(CHAT) == calls + 2
        third = collect(prompts, out, client)
        assert third.answered == 0 and server.count(CHAT) == calls + 2
        client.close()
    report = json.loads((out / "collect_report.json").read_text())
    assert report["summary"]["rows_processed"] == 6
    assert report["summary"]["avg_prompt_tokens"] == 40
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "teacher_label_generation"


def test_a_dead_teacher_stops_the_run_and_keeps_what_was_paid_for(tmp_path: Path) -> None:
    prompts = _prompts(tmp_path / "p.jsonl", 30)
    out = tmp_path / "answers"
    with FaultServer(default=status(503)) as server:
        server.push(CHAT, ok(chat_completion("yes")))
        client = _client(server)
        with pytest.raises(KdedgeError, match=r"failed 5 times in a row.*run the same command"):
            collect(prompts, out, client, workers=1, max_consecutive_failures=5)
        client.close()
    assert len(read_cache(out / ANSWERS)) == 1


def test_a_torn_last_line_is_dropped_on_resume(tmp_path: Path) -> None:
    cache = tmp_path / ANSWERS
    good = json.dumps({"prompt_sha256": "a" * 64, "answer": "x"})
    cache.write_text(good + "\n" + '{"prompt_sha256": "b')
    assert list(read_cache(cache)) == ["a" * 64]
    assert cache.read_text() == good + "\n"


def test_bad_prompt_files_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"question": "ok"}\n{"question": ""}\n')
    with pytest.raises(DataError, match=r"p.jsonl:2.*question"):
        read_prompts(path)
    path.write_text('{"id": "a", "question": "x"}\n{"id": "a", "question": "y"}\n')
    with pytest.raises(DataError, match="duplicate id"):
        read_prompts(path)
