"""Shared fixtures: a tiny intent dataset and a tiny BERT built from a config (offline, fast)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

INTENTS = {
    "order_tracking": [
        "where is my order",
        "track my package",
        "has my parcel shipped yet",
        "order status please",
        "when will my order arrive",
    ],
    "return_request": [
        "i want to return this",
        "how do i send it back",
        "return the damaged book",
        "refund for a return",
        "start a return",
    ],
    "faq": [
        "what are your opening hours",
        "do you sell gift cards",
        "membership benefits",
        "store policy question",
        "how does the loyalty program work",
    ],
    "escalation": [
        "this is fraud call my lawyer",
        "unauthorized charge i will sue",
        "chargeback now manager",
    ],
    "out_of_scope": ["what is the weather", "tell me a joke", "write python code"],
}
WORDS = ["please", "now", "thanks", "today", "volume", "manga", "asap", "hey", "hello", "ok"]


def make_rows(n_per_intent: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for label, phrases in INTENTS.items():
        count = n_per_intent if label != "escalation" else max(3, n_per_intent // 4)
        for i in range(count):
            text = f"{rng.choice(WORDS)} {rng.choice(phrases)} {rng.choice(WORDS)} {i}"
            rows.append({"text": text, "label": label})
    rng.shuffle(rows)
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def raw_data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("raw")
    unlabeled = [{"text": r["text"] + " extra"} for r in make_rows(6, seed=9)]
    return {
        "train": write_jsonl(root / "train.jsonl", make_rows(24, seed=1)),
        "test": write_jsonl(root / "test.jsonl", make_rows(6, seed=2)),
        "unlabeled": write_jsonl(root / "unlabeled.jsonl", unlabeled),
    }


@pytest.fixture(scope="session")
def data_dir(raw_data, tmp_path_factory) -> Path:
    from kdedge.data.prepare import prepare_dataset

    out = tmp_path_factory.mktemp("data")
    prepare_dataset(
        raw_data["train"],
        out_dir=out,
        test_path=raw_data["test"],
        unlabeled_paths=[raw_data["unlabeled"]],
        split=(0.8, 0.1, 0.1),
    )
    return out


def _tiny_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        texts, trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials)
    )
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A 4-layer, hidden-32 BERT encoder with its own tokenizer, saved like a hub checkpoint."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    texts = [r["text"] for r in make_rows(30, seed=3)] + WORDS
    tokenizer = _tiny_tokenizer(texts)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    out = tmp_path_factory.mktemp("tiny_base")
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_teacher(tiny_base, data_dir, tmp_path_factory) -> Path:
    """A tiny teacher fine-tuned on the tiny data (a few seconds on CPU)."""
    from kdedge.distill.device import resolve
    from kdedge.distill.teacher import teach
    from kdedge.distill.trainer import TrainConfig

    out = tmp_path_factory.mktemp("teacher") / "teacher"
    teach(
        tiny_base,
        data_dir,
        out,
        placement=resolve("cpu"),
        config=TrainConfig(epochs=4, lr=3e-3, batch_size=16, early_stop=False),
        max_length=32,
    )
    return out


# One real export of the tiny teacher to every format, shared by converter and runtime tests.
ALL_FORMATS = (
    "onnx",
    "onnx-int8",
    "onnx-int8-static",
    "openvino",
    "openvino-int8",
    "openvino-int8-wo",
    "gguf-f16",
    "gguf-q8_0",
    "gguf-q4_k_m",
)


@pytest.fixture(scope="session")
def exported(tiny_teacher, data_dir, tmp_path_factory):
    """(report, bundle dir) for the tiny teacher in all nine formats."""
    from kdedge.converters import export_bundle

    out = tmp_path_factory.mktemp("bundle") / "bundle"
    report = export_bundle(
        tiny_teacher,
        ALL_FORMATS,
        out,
        eval_data=data_dir / "test.jsonl",
        calibration_data=data_dir / "validation.jsonl",
    )
    return report, out


@pytest.fixture
def bundle_copy(exported, tmp_path) -> Path:
    """A private copy of the bundle that a test may damage."""
    import shutil

    dst = tmp_path / "bundle"
    shutil.copytree(exported[1], dst)
    return dst


# A tiny cross-encoder (one score per (query, passage) pair) and query groups for it.
RERANK_QUERIES = {
    "where is my order": ["track my package", "order status please", "tell me a joke"],
    "i want to return this": ["start a return", "how do i send it back", "what is the weather"],
    "what are your opening hours": ["store policy question", "do you sell gift cards", "hi"],
}


@pytest.fixture(scope="session")
def rerank_groups(tmp_path_factory) -> Path:
    """Query groups (first candidate relevant, graded 2 / 1 / 0) as a JSONL file."""
    rows = [
        {
            "query_id": f"q{i}",
            "query": query,
            "candidates": [
                {"doc_id": f"q{i}d{j}", "text": text, "relevance": 2 - j}
                for j, text in enumerate(passages)
            ],
        }
        for i, (query, passages) in enumerate(RERANK_QUERIES.items())
    ]
    return write_jsonl(tmp_path_factory.mktemp("rerank") / "groups.jsonl", rows)


@pytest.fixture(scope="session")
def tiny_reranker(tiny_base, tmp_path_factory) -> Path:
    """The tiny BERT with a one-score head fitted for a few steps to the tiny groups (so its
    scores spread out, as a trained reranker's do), saved as a kdedge rerank model."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from kdedge.data.labels import LabelSet
    from kdedge.distill.models import Classifier, save_classifier

    torch.manual_seed(1)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_base, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    pairs = [(q, p, 2.0 - j) for q, ps in RERANK_QUERIES.items() for j, p in enumerate(ps)]
    enc = tokenizer(
        [q for q, _, _ in pairs], [p for _, p, _ in pairs], padding=True, return_tensors="pt"
    )
    target = torch.tensor([r for _, _, r in pairs])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss = torch.nn.functional.mse_loss(model(**enc).logits[:, 0], 2.0 * target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    clf = Classifier(model, tokenizer, LabelSet(("relevance",)), {"max_length": 48})
    out = tmp_path_factory.mktemp("reranker") / "reranker"
    return save_classifier(clf, out, task="rerank", role="student", score_threshold=-5.0)


@pytest.fixture(scope="session")
def rerank_exported(tiny_reranker, rerank_groups, tmp_path_factory):
    """(report, bundle dir) for the tiny reranker in ONNX FP32 / INT8 and OpenVINO FP32."""
    from kdedge.converters import export_bundle

    out = tmp_path_factory.mktemp("rerank_bundle") / "bundle"
    report = export_bundle(
        tiny_reranker,
        ["onnx", "onnx-int8", "onnx-int8-static", "openvino"],
        out,
        eval_data=rerank_groups,
        calibration_data=rerank_groups,
    )
    return report, out
