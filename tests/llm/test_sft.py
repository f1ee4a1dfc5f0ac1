from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from kdedge.errors import ConfigError, DataError
from kdedge.llm.loss import encode, length_batches, weighted_loss
from kdedge.llm.rows import TrainRow, read_rows
from kdedge.llm.sft import SftConfig, stop_reason
from tests.llm.tiny import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def test_encode_masks_the_prompt_and_keeps_the_end_of_turn(tokenizer) -> None:
    row = TrainRow("a", "Is Nana in stock?", ("Nana: paperback, in stock",), "Yes.", 1.0)
    ids, labels = encode(tokenizer, row, "Be brief.", 512)
    answer = [t for t in labels if t != -100]
    assert len(ids) == len(labels)
    assert labels[: len(ids) - len(answer)] == [-100] * (len(ids) - len(answer))
    assert answer[-1] == tokenizer.eos_token_id  # the student learns to stop
    assert tokenizer.decode(answer, skip_special_tokens=True).strip() == "Yes."


def test_encode_drops_rows_longer_than_max_length(tokenizer) -> None:
    row = TrainRow("a", "word " * 200, (), "Yes.", 1.0)
    assert encode(tokenizer, row, "s", 64) is None


def test_weighted_loss_counts_a_weight_of_two_as_two_rows() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    labels = torch.tensor([[-100, -100, 3, 4, 5], [-100, 1, 2, -100, -100]])
    total_1, mean_1 = weighted_loss(logits, labels, torch.tensor([1.0, 1.0]))
    total_2, _ = weighted_loss(logits, labels, torch.tensor([2.0, 1.0]))
    per_row_0 = torch.nn.functional.cross_entropy(logits[0, 1:4], labels[0, 2:5])
    assert torch.isclose(total_2 - total_1, per_row_0, atol=1e-5)
    assert torch.isclose(mean_1, total_1 / 2)


def test_batches_cover_every_row_once_with_similar_lengths() -> None:
    lengths = [random.Random(i).randint(10, 500) for i in range(300)]
    batches = length_batches(lengths, 8, random.Random(0))
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(300))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    assert spread / len(batches) < 100  # random batches of 8 would spread ~380


def test_stop_rules_follow_the_seeds() -> None:
    base = {"hallucination_rate": 0.04, "refusal_precision": 0.95, "teacher_agreement": 0.80}
    assert stop_reason([base], 1) is None
    worse = {**base, "hallucination_rate": 0.044, "teacher_agreement": 0.85}
    assert "hallucination rate rose" in stop_reason([base, worse], 1)
    dropped = {**base, "refusal_precision": 0.94, "teacher_agreement": 0.85}
    assert "refusal precision dropped" in stop_reason([base, dropped], 1)
    flat = {**base, "teacher_agreement": 0.801}
    assert "teacher agreement gained" in stop_reason([base, flat], 1)
    better = {**base, "hallucination_rate": 0.03, "teacher_agreement": 0.85}
    assert stop_reason([base, better], 1) is None
    assert stop_reason([base, worse], 3) is None  # not before min_epochs


def test_read_rows_prefers_the_human_reference_and_names_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    rows = [
        {"id": "1", "question": "q1", "answer": "teacher", "reference": "human", "weight": 2.0},
        {"id": "2", "question": "q2", "answer": "teacher", "weight": 1.0},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = read_rows(tmp_path)
    assert [r.answer for r in got] == ["human", "teacher"]
    path.write_text(json.dumps({"question": "q", "answer": "a", "weight": -1}) + "\n")
    with pytest.raises(DataError, match=r"train.jsonl:1.*weight"):
        read_rows(path)
    path.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(DataError, match=r"no 'answer' or 'reference'"):
        read_rows(path)


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ConfigError, match="min_epochs"):
        SftConfig(epochs=2, min_epochs=3)
    with pytest.raises(ConfigError, match="lr"):
        SftConfig(lr=0)


def test_answer_loss_equals_the_full_logits_loss(tiny_llama) -> None:
    from transformers import AutoModelForCausalLM

    from kdedge.llm.loss import answer_loss, collate

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    tok = build_tokenizer()
    rows = [
        TrainRow("a", "Is Nana in stock?", (), "Yes, $9.99.", 1.0),
        TrainRow("b", "Refund my order", ("x",), "A human agent will help.", 2.5),
    ]
    items = [encode(tok, r, "s", 256) for r in rows]
    batch = collate(items, tok.pad_token_id, torch.device("cpu"))
    w = torch.tensor([1.0, 2.5])
    full = model(input_ids=batch["input_ids"], attention_mask=batch["mask"]).logits
    expected, _ = weighted_loss(full, batch["labels"], w)
    got, _ = answer_loss(model, batch, w)
    assert torch.isclose(got, expected, atol=1e-5)
