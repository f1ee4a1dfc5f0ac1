"""Two processes under torchrun (CPU, gloo) train a reranker like one process does.

Each rank takes half of every global batch of query lists; with the per-term shard scaling
the averaged gradient is the global batch's, so on a dropout-free model the two runs agree
to float rounding. Only rank 0 writes: one model, one event per step.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from tests.cli.test_cli import run
from tests.torchrun import torchrun

QUICK = ["--epochs", "2", "--queries-per-batch", "5", "--candidates-per-query", "4", "-q"]
METRICS = ("ndcg@3", "ndcg@10", "mrr@10", "recall@3", "loss_train", "loss_supervised")
TOLERANCE = 1e-5  # float rounding of a gradient averaged over two ranks, after 8 steps


@pytest.fixture(scope="module")
def base0(tiny_base, tmp_path_factory) -> Path:
    """The tiny encoder without dropout, so one and two processes draw no random masks."""
    out = tmp_path_factory.mktemp("base0") / "base"
    shutil.copytree(tiny_base, out)
    config = json.loads((out / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (out / "config.json").write_text(json.dumps(config))
    return out


def _same_runs(one: dict, two: dict) -> None:
    assert two["best_epoch"] == one["best_epoch"]
    assert [h["epoch"] for h in two["history"]] == [h["epoch"] for h in one["history"]]
    for a, b in zip(one["history"], two["history"], strict=True):
        for key in METRICS:
            assert b[key] == pytest.approx(a[key], abs=TOLERANCE), key


def _written_once(one: Path, two: Path) -> None:
    """The two-process run wrote what the one-process run wrote, once."""
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    lines = (two / "events.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines)) == len((one / "events.jsonl").read_text().splitlines())
    events = [json.loads(line)["event"] for line in lines]
    assert events.count("checkpoint_selected") == 1 and events.count("rerank_epoch_end") == 2
    a, b = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4


def test_two_processes_teach_like_one(tmp_path, base0, rerank_files):
    train, val = str(rerank_files["train"]), str(rerank_files["validation"])
    args = ["rerank", "teach", "--base", str(base0), "--train", train, "--validation", val,
            "--max-length", "32", "--lr", "3e-3", "--device", "cpu", *QUICK]  # fmt: skip
    code, out, err = run([*args, "--out", str(tmp_path / "one"), "--json"])
    assert code == 0, err
    two = torchrun([*args, "--out", str(tmp_path / "two")])
    _same_runs(json.loads(out), two)
    _written_once(tmp_path / "one", tmp_path / "two")


def test_two_processes_score_and_distill_like_one(tmp_path, base0, rerank_files):
    from kdedge.rerank.data import read_groups
    from kdedge.rerank.scoring import score_pairs_cached

    train, val = str(rerank_files["train"]), str(rerank_files["validation"])
    teacher = tmp_path / "teacher"
    code, _, err = run(
        ["rerank", "teach", "--base", str(base0), "--train", train, "--validation", val,
         "--out", str(teacher), "--max-length", "32", "--lr", "3e-3", "--device", "cpu", *QUICK]
    )  # fmt: skip
    assert code == 0, err
    args = ["rerank", "distill", "--teacher", str(teacher), "--train", train,
            "--validation", val, "--layers", "2", "--loss", "margin_mse", "--alpha", "0.3",
            "--stage1-epochs", "1", "--lr", "3e-3", "--device", "cpu", *QUICK]  # fmt: skip
    code, out, err = run([*args, "--out", str(tmp_path / "one"), "--json"])
    assert code == 0, err
    one = json.loads(out)
    two = torchrun([*args, "--out", str(tmp_path / "two")])
    assert two["scoring"]["cache_misses"] == one["scoring"]["cache_misses"] > 0
    for a, b in zip(one["feature_history"], two["feature_history"], strict=True):
        assert b["loss_feature"] == pytest.approx(a["loss_feature"], abs=TOLERANCE)
    _same_runs(one["train"], two["train"])
    _written_once(tmp_path / "one", tmp_path / "two")
    # the teacher-score cache that rank 0 wrote from both ranks' shares is bit-identical
    pairs = [(g.query, c.text) for g in read_groups(train) for c in g.candidates]
    cached = [score_pairs_cached(teacher, pairs, tmp_path / f"{n}.cache") for n in ("one", "two")]
    assert [r.cache_misses for _, r in cached] == [0, 0]
    np.testing.assert_array_equal(cached[0][0], cached[1][0])
