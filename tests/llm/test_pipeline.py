"""The whole response-distillation flow from the CLI, offline, on a tiny random Llama:
demo teacher -> collect -> gate -> build -> distill -> export GGUF -> predict -> eval."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from kdedge.llm.demo_teacher import serve
from tests.cli.test_cli import run

SAMPLES = Path(__file__).parents[2] / "kdedge" / "samples" / "manga_llm"
CATALOG = str(SAMPLES / "catalog.jsonl")


@pytest.fixture(scope="module")
def teacher_url():
    server, url = serve(CATALOG, error_rate=0.2, seed=3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()
    server.server_close()


def _head(src: Path, dst: Path, n: int) -> Path:
    dst.write_text("".join(src.read_text().splitlines(keepends=True)[:n]))
    return dst


def _collect(url: str, prompts: Path, out: Path) -> dict:
    code, stdout, stderr = run(
        [
            "llm",
            "collect",
            "--teacher-url",
            url,
            "--teacher-model",
            "demo",
            "--teacher-key-env",
            "",
            "--prompts",
            str(prompts),
            "--catalog",
            CATALOG,
            "--out",
            str(out),
            "--json",
            "-q",
        ]
    )
    assert code == 0, stderr
    return json.loads(stdout)


def test_the_whole_flow_from_the_cli(tmp_path: Path, teacher_url: str, tiny_llama: Path) -> None:
    train = _head(SAMPLES / "prompts_train.jsonl", tmp_path / "train.jsonl", 60)
    val = _head(SAMPLES / "prompts_validation.jsonl", tmp_path / "val.jsonl", 6)
    collected = _collect(teacher_url, train, tmp_path / "answers")
    assert collected["rows"] == 60 and collected["summary"]["rows_processed"] == 60
    assert _collect(teacher_url, train, tmp_path / "answers")["cache_hits"] == 60
    _collect(teacher_url, val, tmp_path / "val_answers")

    code, stdout, _ = run(
        [
            "llm",
            "gate",
            str(tmp_path / "answers"),
            "--catalog",
            CATALOG,
            "--out",
            str(tmp_path / "gated"),
            "--json",
            "-q",
        ]
    )
    gate = json.loads(stdout)
    assert code == 0 and 0 < gate["accepted"] < gate["teacher_rows"]
    rejected = [
        json.loads(x) for x in (tmp_path / "gated" / "rejected.jsonl").read_text().splitlines()
    ]
    assert all(r["gate"]["reasons"] for r in rejected)

    code, stdout, _ = run(
        ["llm", "build", str(tmp_path / "gated"), "--out", str(tmp_path / "train"), "--json"]
    )
    assert code == 0 and json.loads(stdout)["effective_rows"] > 0

    student = tmp_path / "student"
    code, stdout, stderr = run(
        [
            "llm",
            "distill",
            "--student",
            str(tiny_llama),
            "--data",
            str(tmp_path / "train"),
            "--eval-data",
            str(tmp_path / "val_answers"),
            "--catalog",
            CATALOG,
            "--out",
            str(student),
            "--epochs",
            "2",
            "--eval-max-new-tokens",
            "8",
            "--device",
            "cpu",
            "--json",
            "-q",
        ]
    )
    assert code in (0, 1), stderr  # a random tiny model fails the gates: exit 1, still saved
    report = json.loads(stdout)
    assert report["best_epoch"] in (1, 2) and len(report["history"]) >= 1
    assert report["baseline"]["answers"] == 6
    meta = json.loads((student / "kdedge.json").read_text())
    assert meta["task"] == "generate" and meta["lora"]["merged"]
    assert (student / "model.safetensors").is_file() and not (student / ".kdedge-work").exists()

    code, stdout, stderr = run(
        [
            "llm",
            "eval",
            str(student),
            "--data",
            str(tmp_path / "val_answers"),
            "--catalog",
            CATALOG,
            "--limit",
            "2",
            "--max-new-tokens",
            "4",
            "--json",
            "-q",
        ]
    )  # a model folder is run by torch
    assert code in (0, 1), stderr
    assert json.loads(stdout)["artifact"] == "torch"

    bundle = tmp_path / "bundle"
    code, _, stderr = run(["export", str(student), "--format", "gguf-f16", "--out", str(bundle)])
    assert code == 0, stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["task"] == "generate"
    assert manifest["generation"]["user_template"] == meta["prompt"]["user_template"]

    code, stdout, _ = run(["inspect", str(bundle)])
    assert code == 0 and "task generate" in stdout and "greedy" in stdout

    code, stdout, stderr = run(
        ["predict", str(bundle), "Is Nana in stock?", "--max-tokens", "8", "--json"]
    )
    assert code == 0, stderr
    assert "route" in json.loads(stdout)

    code, stdout, stderr = run(
        [
            "llm",
            "eval",
            str(bundle),
            "--data",
            str(tmp_path / "val_answers"),
            "--catalog",
            CATALOG,
            "--max-new-tokens",
            "8",
            "--json",
            "-q",
        ]
    )
    assert code in (0, 1), stderr
    result = json.loads(stdout)
    assert result["metrics"]["answers"] == 6 and result["artifact"] == "gguf-f16"
    assert result["metrics"]["teacher_cost_per_1k"] is None  # the demo teacher is free
    assert code == (1 if result["gate_failures"] else 0)


def test_distill_refuses_to_overwrite_and_names_missing_data(tmp_path: Path, tiny_llama) -> None:
    out = tmp_path / "student"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    code, _, stderr = run(
        [
            "llm",
            "distill",
            "--student",
            str(tiny_llama),
            "--data",
            str(tmp_path / "none.jsonl"),
            "--eval-data",
            str(tmp_path / "v.jsonl"),
            "--catalog",
            CATALOG,
            "--out",
            str(out),
        ]
    )
    assert code == 2 and "--overwrite" in stderr
    shutil.rmtree(out)
    code, _, stderr = run(
        [
            "llm",
            "distill",
            "--student",
            str(tiny_llama),
            "--data",
            str(tmp_path / "none.jsonl"),
            "--eval-data",
            str(tmp_path / "v.jsonl"),
            "--catalog",
            CATALOG,
            "--out",
            str(out),
        ]
    )
    assert code == 2 and "none.jsonl" in stderr and "not found" in stderr
