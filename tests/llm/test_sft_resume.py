from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

import kdedge.llm.sft as sft
import kdedge.llm.sft_state as sft_state
from kdedge.errors import ConfigError
from kdedge.llm.catalog import Catalog
from kdedge.llm.collect import read_prompts
from kdedge.llm.demo_answers import DemoTeacher

SAMPLES = Path(__file__).parents[2] / "kdedge" / "samples" / "manga_llm"
CATALOG = SAMPLES / "catalog.jsonl"


def _answers(path: Path, prompts: Path, n: int) -> Path:
    catalog = Catalog.load(CATALOG)
    teacher = DemoTeacher(catalog)
    rows = []
    for p in read_prompts(prompts)[:n]:
        evidence = [r.evidence_line() for r in catalog.retrieve(p.question)]
        answer = teacher.answer(p.question, evidence).text
        rows.append(
            {
                "id": p.id,
                "question": p.question,
                "kind": p.kind,
                "evidence": evidence,
                "answer": answer,
                "weight": 1.0,
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_killed_run_resumes_to_the_same_model(tmp_path: Path, tiny_llama, monkeypatch) -> None:
    train = _answers(tmp_path / "train.jsonl", SAMPLES / "prompts_train.jsonl", 16)
    val = _answers(tmp_path / "val.jsonl", SAMPLES / "prompts_validation.jsonl", 3)
    config = sft.SftConfig(
        epochs=3, batch_size=4, eval_max_new_tokens=4, device="cpu", lora_dropout=0.1
    )
    kwargs = {
        "eval_data": val,
        "catalog": CATALOG,
        "config": config,
        "gates": sft.Gates(
            max_hallucination_rate=1, min_refusal_precision=0, min_teacher_agreement=0
        ),
    }
    monkeypatch.setattr(sft, "stop_reason", lambda history, min_epochs: None)
    straight = sft.distill(tiny_llama, train, tmp_path / "straight", **kwargs)

    calls = {"n": 0}
    real_score = sft.score

    def dies_in_epoch_2(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:  # baseline, epoch 1, then killed while scoring epoch 2
            raise KeyboardInterrupt
        return real_score(*args, **kw)

    monkeypatch.setattr(sft, "score", dies_in_epoch_2)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        sft.distill(tiny_llama, train, out, **kwargs)
    assert (out / sft_state.WORK_DIR / sft_state.STATE_FILE).is_file()
    with pytest.raises(ConfigError, match="--resume"):
        sft.distill(tiny_llama, train, out, **kwargs)

    monkeypatch.setattr(sft, "score", real_score)
    resumed = sft.distill(tiny_llama, train, out, resume=True, **kwargs)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert resumed.baseline == straight.baseline
    assert resumed.best_epoch == straight.best_epoch
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all((a[k] - b[k]).abs().max() < 1e-5 for k in a)
    assert not (out / sft_state.WORK_DIR).exists()


def test_resume_without_a_saved_epoch_says_so(tmp_path: Path, tiny_llama) -> None:
    with pytest.raises(ConfigError, match="nothing to resume"):
        sft.distill(
            tiny_llama,
            tmp_path / "t.jsonl",
            tmp_path / "out",
            eval_data=tmp_path,
            catalog=CATALOG,
            resume=True,
        )
