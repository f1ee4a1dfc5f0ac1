"""Reranker training on the tiny fixtures: teacher, cache, distillation, resume, stop rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kdedge.distill.models import load_classifier
from kdedge.errors import ConfigError, DataError
from kdedge.rerank.config import RerankStopRule, RerankTrainConfig, default_gates
from kdedge.rerank.data import Candidate, QueryGroup, read_groups
from kdedge.rerank.distill import distill_reranker
from kdedge.rerank.losses import RerankLossConfig
from kdedge.rerank.models import is_reranker, load_reranker, score_groups
from kdedge.rerank.scoring import pair_text, score_groups_cached, score_pairs_cached
from kdedge.rerank.threshold import fit_score_threshold

QUICK = RerankTrainConfig(
    epochs=2, lr=3e-3, queries_per_batch=6, candidates_per_query=4, early_stop=False, log_every=1
)


def test_teacher_is_a_reranker(tiny_rerank_teacher):
    assert is_reranker(tiny_rerank_teacher)
    clf = load_reranker(tiny_rerank_teacher)
    meta = json.loads((tiny_rerank_teacher / "kdedge.json").read_text())
    assert meta["task"] == "rerank" and meta["role"] == "teacher" and meta["max_length"] == 32
    assert meta["best_epoch"] in (1, 2) and "score_threshold" in meta
    assert clf.model.config.num_labels == 1
    report = json.loads((tiny_rerank_teacher / "training_report.json").read_text())
    assert [h["epoch"] for h in report["history"]] == [1, 2]
    assert {"ndcg@3", "ndcg@5", "ndcg@10", "mrr@10", "recall@10"} <= set(report["history"][0])
    assert not (tiny_rerank_teacher / "checkpoints").exists()  # the run dir became the model


def test_pair_key_is_unambiguous():
    assert pair_text("a\x1fb", "c") != pair_text("a", "b\x1fc")
    assert pair_text("q", "p") != pair_text("qp", "")


def test_cache_reuse_and_key(tmp_path, tiny_rerank_teacher, rerank_files):
    groups = read_groups(rerank_files["train"])[:6]
    first, r1 = score_groups_cached(tiny_rerank_teacher, groups, tmp_path, device="cpu")
    n = sum(len(g.candidates) for g in groups)
    assert r1.pairs == n and r1.cache_misses == r1.unique_pairs and r1.cache_hits == 0
    second, r2 = score_groups_cached(tiny_rerank_teacher, groups, tmp_path, device="cpu")
    assert (r2.cache_hits, r2.cache_misses) == (r1.unique_pairs, 0)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    # the cached scores are the teacher's own scores
    direct = score_groups(load_reranker(tiny_rerank_teacher), groups)
    for a, b in zip(first, direct, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # another max length is another key: all misses again
    _, r3 = score_groups_cached(tiny_rerank_teacher, groups, tmp_path, max_length=16)
    assert r3.cache_misses == r1.unique_pairs
    # a chunked, resumable pass: pairs already done are not recomputed
    pairs = [(g.query, c.text + " new") for g in groups for c in g.candidates]
    _, r4 = score_pairs_cached(tiny_rerank_teacher, pairs[:5], tmp_path, chunk_size=2)
    _, r5 = score_pairs_cached(tiny_rerank_teacher, pairs, tmp_path, chunk_size=2)
    assert r4.cache_misses == 5 and r5.cache_hits == 5


def test_score_threshold_maximises_f1():
    def group(rel):
        return QueryGroup("q", "q", tuple(Candidate(str(i), "t", r) for i, r in enumerate(rel)))

    groups = [group([1, 0]), group([0, 1]), group([1, 0]), group([0, 1])]
    # top-1 scores 5 (relevant), 4 (not: argmax is candidate 0), 3 (relevant), 1 (not)
    scores = [np.array([5.0, 0.0]), np.array([4.0, 0.0]), np.array([3.0, 1.0]), np.array([1, 0.0])]
    fit = fit_score_threshold(groups, scores)
    # accept >= 2 (5, 4, 3): P 2/3 R 1 F1 0.8; accept >= 4.5: P 1 R 1/2 F1 0.667
    assert fit["score_threshold"] == pytest.approx(2.0)
    assert fit["f1"] == pytest.approx(0.8)
    assert fit["top1_relevant_rate"] == pytest.approx(0.5)


def test_stop_rule():
    rule = RerankStopRule(min_gain=0.002, min_epochs=2)
    h = [{"ndcg@10": 0.70}, {"ndcg@10": 0.75}]
    assert not rule.should_stop(h)[0]
    assert rule.should_stop([*h, {"ndcg@10": 0.7515}])[0]  # +0.0015 < 0.002
    assert not rule.should_stop([*h, {"ndcg@10": 0.7525}])[0]
    assert not RerankStopRule(min_epochs=4).should_stop([*h, {"ndcg@10": 0.70}])[0]


def test_distill_end_to_end(tmp_path, tiny_rerank_teacher, rerank_files):
    out = tmp_path / "student"
    result = distill_reranker(
        tiny_rerank_teacher,
        rerank_files["train"],
        rerank_files["validation"],
        out,
        layers=2,
        loss=RerankLossConfig(kind="pointwise", alpha=0.5),
        config=QUICK,
        device="cpu",
        gates=default_gates(min_ndcg=0.0),
    )
    assert result.layer_map == [0, 2]
    assert [h["epoch"] for h in result.train.history] == [1, 2]
    assert result.scoring["cache_misses"] > 0
    meta = json.loads((out / "kdedge.json").read_text())
    assert meta["task"] == "rerank" and meta["role"] == "student"
    assert meta["layer_map"] == [0, 2] and meta["max_length"] == 32
    assert meta["loss"]["alpha"] == 0.5 and meta["promotable"] is True
    assert isinstance(meta["score_threshold"], float)
    student = load_reranker(out)
    assert student.model.config.num_hidden_layers == 2
    assert load_classifier(out).labels.names == ("relevance",)  # the generic loader works too
    report = json.loads((out / "training_report.json").read_text())
    assert report["best_epoch"] == meta["best_epoch"]
    events = [json.loads(line)["event"] for line in (out / "events.jsonl").read_text().splitlines()]
    assert "rerank_train_step" in events and events[-1] == "checkpoint_selected"
    # the selected epoch is the best by validation NDCG@10, and its metric is reproducible
    best = max(result.train.history, key=lambda h: h["ndcg@10"])
    assert result.train.best_epoch == best["epoch"]
    from kdedge.rerank.metrics import ranking_report

    val = read_groups(rerank_files["validation"])
    again = ranking_report(val, score_groups(student, val))
    assert again["ndcg@10"] == pytest.approx(best["ndcg@10"], abs=1e-5)
    # a second run on the same cache pays nothing for the teacher
    again = distill_reranker(
        tiny_rerank_teacher,
        rerank_files["train"],
        rerank_files["validation"],
        tmp_path / "student2",
        layers=2,
        loss=RerankLossConfig(kind="margin_mse", alpha=0.5),
        config=QUICK,
        device="cpu",
        cache_dir=tmp_path / "student.cache",
    )
    assert again.scoring["cache_misses"] == 0 and again.scoring["cache_hits"] > 0


def test_gates_choose_and_flag(tmp_path, tiny_rerank_teacher, rerank_files):
    result = distill_reranker(
        tiny_rerank_teacher,
        rerank_files["train"],
        rerank_files["validation"],
        tmp_path / "s",
        layers=1,
        loss=RerankLossConfig(kind="listwise", alpha=0.5, temperature=2.0),
        config=QUICK,
        device="cpu",
        gates=default_gates(min_ndcg=1.01),  # unreachable
    )
    assert not result.train.promotable
    assert all("ndcg@10" in h["gate_failures"][0] for h in result.train.history)
    assert json.loads((tmp_path / "s" / "kdedge.json").read_text())["promotable"] is False


def test_labels_only_needs_no_teacher_scores(tmp_path, tiny_rerank_teacher, rerank_files):
    result = distill_reranker(
        tiny_rerank_teacher,
        rerank_files["train"],
        rerank_files["validation"],
        tmp_path / "base",
        layers=2,
        loss=RerankLossConfig(alpha=1.0),
        config=QUICK,
        device="cpu",
    )
    assert result.scoring is None and not (tmp_path / "base.cache").exists()
    meta = json.loads((tmp_path / "base" / "kdedge.json").read_text())
    assert meta["labels_only"] is True and meta["stage"] == "rerank_labels_only"
    assert all(h["loss_distill"] is None for h in result.train.history)


class _Interrupt(Exception):
    pass


def test_resume_after_an_interrupted_epoch(tmp_path, tiny_rerank_teacher, rerank_files):
    out = tmp_path / "student"
    config = RerankTrainConfig(
        epochs=3, lr=3e-3, queries_per_batch=6, candidates_per_query=4, early_stop=False
    )
    kwargs = dict(layers=2, loss=RerankLossConfig(alpha=0.5), config=config, device="cpu")

    def dies_in_epoch_2(items, description, total=None):
        for i, item in enumerate(items):
            if "epoch 2/" in description and i == 1:
                raise _Interrupt
            yield item

    args = (tiny_rerank_teacher, rerank_files["train"], rerank_files["validation"], out)
    with pytest.raises(_Interrupt):
        distill_reranker(*args, **kwargs, track=dies_in_epoch_2)
    assert (out / "checkpoints" / "last" / "state.pt").is_file()
    with pytest.raises(ConfigError, match="--resume"):
        distill_reranker(*args, **kwargs)
    resumed = distill_reranker(*args, **kwargs, resume=True)
    assert [h["epoch"] for h in resumed.train.history] == [1, 2, 3]
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "resume" and e["epoch"] == 1 for e in events)
    # epoch 1 ran once: resuming started at epoch 2
    assert sum(e["event"] == "rerank_epoch_end" and e["epoch"] == 1 for e in events) == 1
    # the same run without the interruption gives the same history (deterministic resume)
    fresh = distill_reranker(*args[:3], tmp_path / "fresh", **kwargs)
    for a, b in zip(fresh.train.history, resumed.train.history, strict=True):
        assert a["ndcg@10"] == pytest.approx(b["ndcg@10"], abs=1e-4)
        assert a["loss_train"] == pytest.approx(b["loss_train"], rel=1e-3)


def test_stop_rule_ends_training(tmp_path, tiny_rerank_teacher, rerank_files):
    config = RerankTrainConfig(
        epochs=6, lr=1e-9, queries_per_batch=6, candidates_per_query=4, min_epochs=2
    )  # lr ~ 0: NDCG cannot move, so the run must stop after the minimum 2 epochs
    result = distill_reranker(
        tiny_rerank_teacher,
        rerank_files["train"],
        rerank_files["validation"],
        tmp_path / "s",
        layers=2,
        loss=RerankLossConfig(alpha=1.0),
        config=config,
        device="cpu",
    )
    assert len(result.train.history) == 2
    assert "gained" in result.train.stopped_early


def test_stage1_on_pairs(tmp_path, tiny_rerank_teacher, rerank_files):
    result = distill_reranker(
        tiny_rerank_teacher,
        rerank_files["train"],
        rerank_files["validation"],
        tmp_path / "s",
        layers=2,
        loss=RerankLossConfig(alpha=0.5),
        config=RerankTrainConfig(epochs=1, queries_per_batch=6, candidates_per_query=4),
        stage1_epochs=1,
        device="cpu",
    )
    assert len(result.feature_history) == 1
    assert result.feature_history[0]["loss_feature"] > 0


def test_errors(tmp_path, tiny_rerank_teacher, rerank_files, data_dir):
    with pytest.raises(ConfigError, match="layers or layer_map"):
        distill_reranker(
            tiny_rerank_teacher,
            rerank_files["train"],
            rerank_files["validation"],
            tmp_path / "x",
            layers=2,
            layer_map=[0, 1],
            device="cpu",
        )
    with pytest.raises(ConfigError, match="candidates_per_query"):
        RerankTrainConfig(candidates_per_query=1)
    empty = tmp_path / "noval.jsonl"
    from kdedge.rerank.data import write_groups

    g = QueryGroup("q", "query", (Candidate("a", "text a"), Candidate("b", "text b")))
    write_groups(empty, [g])
    with pytest.raises(DataError, match="no validation query"):
        distill_reranker(
            tiny_rerank_teacher, rerank_files["train"], empty, tmp_path / "y", device="cpu"
        )
