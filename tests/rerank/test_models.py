"""Reranker model directories: detection, loading, saving, batched pair scoring."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from kdedge.errors import ModelError
from kdedge.rerank.models import (
    DEFAULT_MAX_LENGTH,
    is_reranker,
    load_reranker,
    reranker_from_encoder,
    save_reranker,
    score_pairs,
)

PAIRS = [
    ("where is my order", "track my package please"),
    ("return the damaged book", "how do i send it back now thanks"),
    ("hello", "what are your opening hours today"),
    ("tell me a joke", "write python code"),
    ("membership benefits", "how does the loyalty program work"),
]


@pytest.fixture(scope="module")
def reranker_dir(tiny_base, tmp_path_factory):
    clf = reranker_from_encoder(tiny_base, max_length=32, seed=0)
    return save_reranker(clf, tmp_path_factory.mktemp("rr") / "model", role="teacher")


def test_saved_directory_follows_the_contract(reranker_dir):
    meta = json.loads((reranker_dir / "kdedge.json").read_text())
    assert meta["task"] == "rerank" and meta["role"] == "teacher" and meta["max_length"] == 32
    assert json.loads((reranker_dir / "labels.json").read_text()) == {"labels": ["relevance"]}
    assert json.loads((reranker_dir / "config.json").read_text())["id2label"] == {"0": "relevance"}
    assert is_reranker(reranker_dir)
    clf = load_reranker(reranker_dir)
    assert clf.max_length == 32 and clf.model.config.num_labels == 1
    assert load_reranker(reranker_dir, max_length=16).max_length == 16


def test_is_reranker_reads_json_only(reranker_dir, tiny_teacher, tiny_base):
    code = (
        "import sys\nfrom kdedge.rerank.models import is_reranker\n"
        f"print(is_reranker({str(reranker_dir)!r}), is_reranker({str(tiny_teacher)!r}), "
        f"is_reranker({str(tiny_base)!r}))\nprint('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False", "False", "False"]


def test_plain_one_output_checkpoint_is_a_teacher(tiny_base, tmp_path):
    """A cross-encoder saved with save_pretrained, no kdedge files: task rerank, asked length."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_base, num_labels=1)
    model.save_pretrained(tmp_path / "ce")
    AutoTokenizer.from_pretrained(tiny_base).save_pretrained(tmp_path / "ce")
    assert is_reranker(tmp_path / "ce")
    clf = load_reranker(tmp_path / "ce")
    assert clf.meta["task"] == "rerank" and clf.max_length == DEFAULT_MAX_LENGTH
    assert load_reranker(tmp_path / "ce", max_length=64).max_length == 64


def test_non_reranker_errors(tiny_teacher, tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_reranker(tmp_path / "missing")
    n = len(json.loads((tiny_teacher / "config.json").read_text())["id2label"])
    with pytest.raises(ModelError, match=f"has {n} outputs; a reranker has one"):
        load_reranker(tiny_teacher)  # an intent classifier
    import shutil

    tagged = tmp_path / "tagged"
    shutil.copytree(tiny_teacher, tagged)
    meta = json.loads((tagged / "kdedge.json").read_text())
    (tagged / "kdedge.json").write_text(json.dumps({**meta, "task": "intent"}))
    assert not is_reranker(tagged)
    with pytest.raises(ModelError, match="'intent' model, not a reranker"):
        load_reranker(tagged)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"no config\.json"):
        load_reranker(tmp_path / "empty")


def test_score_pairs_is_batched_in_order_and_uses_segments(reranker_dir):
    import torch

    clf = load_reranker(reranker_dir)
    batched = score_pairs(clf.model, clf.tokenizer, PAIRS, 32, batch_size=2)
    assert batched.shape == (len(PAIRS),) and batched.dtype == np.float32
    one_by_one = []
    with torch.no_grad():
        for q, p in PAIRS:
            enc = clf.tokenizer(q, p, truncation=True, max_length=32, return_tensors="pt")
            assert enc["token_type_ids"][0, -1] == 1  # the passage is segment 1
            one_by_one.append(float(clf.model(**enc).logits[0, 0]))
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    # reversed input order, other batch size: the same scores, in input order
    reverse = score_pairs(clf.model, clf.tokenizer, PAIRS[::-1], 32, batch_size=64)
    np.testing.assert_allclose(reverse[::-1], batched, atol=1e-5)
    # segment ids matter: scoring without them gives other numbers
    with torch.no_grad():
        q, p = PAIRS[1]
        enc = clf.tokenizer(q, p, return_tensors="pt")
        enc.pop("token_type_ids")
        assert abs(float(clf.model(**enc).logits[0, 0]) - one_by_one[1]) > 1e-6
    assert score_pairs(clf.model, clf.tokenizer, [], 32).shape == (0,)
