"""Trainer, cache, labeling, students and devices on the tiny fixtures."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from kdedge.data.prepare import load_prepared
from kdedge.distill.cache import LogitCache
from kdedge.distill.device import resolve
from kdedge.distill.labeling import RiskRule, combine, label_texts
from kdedge.distill.losses import LossConfig
from kdedge.distill.models import load_classifier
from kdedge.distill.student import default_layer_map, student_from_teacher
from kdedge.distill.trainer import TrainConfig, fit
from kdedge.errors import ConfigError, DeviceError, ModelError

CPU = resolve("cpu")
QUICK = TrainConfig(epochs=3, batch_size=16, lr=3e-3, early_stop=False, log_every=2)


@pytest.mark.parametrize(
    ("n", "k", "expected"), [(6, 3, [0, 2, 4]), (4, 2, [0, 2]), (12, 4, [0, 3, 6, 9])]
)
def test_default_layer_map(n, k, expected):
    assert default_layer_map(n, k) == expected


def test_student_keeps_mapped_layers(tiny_teacher):
    import torch

    teacher = load_classifier(tiny_teacher)
    student = student_from_teacher(teacher, [1, 3])
    assert student.model.config.num_hidden_layers == 2
    t_layers = teacher.model.bert.encoder.layer
    s_layers = student.model.bert.encoder.layer
    for s, t in zip(s_layers, [t_layers[1], t_layers[3]], strict=True):
        for (_, a), (_, b) in zip(s.named_parameters(), t.named_parameters(), strict=True):
            assert torch.equal(a, b)
    with pytest.raises(ConfigError, match=r"0\.\.3"):
        student_from_teacher(teacher, [0, 7])
    with pytest.raises(ConfigError, match="increasing"):
        student_from_teacher(teacher, [2, 1])


def test_device_errors_are_actionable():
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="--device"):
            resolve("cuda")
    with pytest.raises(ConfigError, match="choose one of"):
        resolve("tpu")
    assert resolve("cpu").precision == "fp32"


def test_cache_hits_and_verification(tmp_path, tiny_teacher, data_dir):
    texts = [e.text for e in load_prepared(data_dir).train][:20]
    first = label_texts([tiny_teacher], texts, tmp_path, CPU)
    assert (first.report.cache_hits, first.report.cache_misses) == (0, 20)
    second = label_texts([tiny_teacher], [*texts, "a brand new text"], tmp_path, CPU)
    assert (second.report.cache_hits, second.report.cache_misses) == (20, 1)
    np.testing.assert_allclose(second.logits[0, :20], first.logits[0], atol=1e-6)
    # corrupt one stored vector: the read must refuse it, naming the fix
    db = sqlite3.connect(tmp_path / "teacher_logits.sqlite")
    db.execute("UPDATE logits SET value = zeroblob(length(value)) WHERE rowid = 1")
    db.commit()
    db.close()
    with pytest.raises(ModelError, match="corrupted"):
        label_texts([tiny_teacher], texts, tmp_path, CPU)
    refreshed = label_texts([tiny_teacher], texts, tmp_path, CPU, refresh=True)
    assert refreshed.report.cache_misses == 20


def test_cache_that_is_not_sqlite(tmp_path):
    (tmp_path / "teacher_logits.sqlite").write_text("not a database")
    with pytest.raises(ModelError, match="delete it"):
        LogitCache(tmp_path).count()


def test_cache_given_as_its_sqlite_file_or_as_another_file(tmp_path):
    with LogitCache(tmp_path) as cache:
        cache.put_many("t", [("k", np.ones(3, dtype=np.float32))])
    with LogitCache(tmp_path / "teacher_logits.sqlite") as same:  # what `ls` shows users
        assert same.path == tmp_path / "teacher_logits.sqlite" and same.count() == 1
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is a file, not a cache folder"):
        LogitCache(tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_labeling_resumes_after_a_kill(tmp_path, tiny_teacher, data_dir, monkeypatch):
    import kdedge.distill.labeling as labeling

    base = [e.text for e in load_prepared(data_dir).train]
    texts = [f"{base[i % len(base)]} v{i}" for i in range(1500)]  # 1500 distinct texts
    real = labeling.logits_of_ids
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed while labeling the second chunk
        return real(*args, **kwargs)

    monkeypatch.setattr(labeling, "logits_of_ids", dying)
    with pytest.raises(KeyboardInterrupt):
        label_texts([tiny_teacher], texts, tmp_path, CPU, batch_size=64)
    monkeypatch.setattr(labeling, "logits_of_ids", real)
    resumed = label_texts([tiny_teacher], texts, tmp_path, CPU, batch_size=64)
    assert resumed.report.cache_hits == 1024  # the first committed chunk survived
    assert resumed.report.cache_misses == len(texts) - 1024


def test_ensemble_mean_and_rule_override():
    from kdedge.data.labels import LabelSet

    labels = LabelSet(("a", "b", "escalation"))
    logits = np.array([[[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]], [[0.0, 4.0, 0.0], [0.0, 4.0, 0.0]]])
    probs, overrides = combine(
        logits,
        1.0,
        texts=["fine", "I will call my lawyer"],
        labels=labels,
        rules=[RiskRule(r"\blawyer\b", "escalation")],
    )
    assert probs[0, 0] == pytest.approx(probs[0, 1])  # the two teachers disagree: mean is even
    assert overrides == 1 and probs[1].argmax() == 2 and probs[1, 2] == pytest.approx(0.95)
    with pytest.raises(ConfigError, match="unknown label"):
        combine(logits, 1.0, texts=["x", "y"], labels=labels, rules=[RiskRule("x", "nope")])
    with pytest.raises(ConfigError, match="regex"):
        combine(logits, 1.0, texts=["x", "y"], labels=labels, rules=[RiskRule("(", "a")])


def test_fit_logs_seed_fields_and_resumes_after_a_kill(
    tmp_path, tiny_teacher, data_dir, monkeypatch
):
    import kdedge.distill.trainer as trainer

    data = load_prepared(data_dir)
    out = tmp_path / "student"

    def build():
        return student_from_teacher(load_classifier(tiny_teacher), [0, 2])

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "_finish", killed)  # dies after the last epoch's checkpoint
    with pytest.raises(KeyboardInterrupt):
        fit(
            build(),
            data.train,
            data.validation,
            out_dir=out,
            placement=CPU,
            config=TrainConfig(epochs=2, batch_size=16, lr=3e-3, early_stop=False),
        )
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="--resume"):
        fit(build(), data.train, data.validation, out_dir=out, placement=CPU, config=QUICK)
    result = fit(
        build(), data.train, data.validation, out_dir=out, placement=CPU, config=QUICK, resume=True
    )
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    kinds = {e["event"] for e in events}
    assert {"kd_train_step", "distill_epoch_end", "resume", "checkpoint_selected"} <= kinds
    step = next(e for e in events if e["event"] == "kd_train_step")
    for field in ("loss_total", "loss_hard", "loss_kd", "grad_norm", "lr", "samples_per_sec"):
        assert field in step
    epoch_end = next(e for e in events if e["event"] == "distill_epoch_end")
    for field in ("val_accuracy", "rare_class_recall", "student_entropy_mean", "val_ece"):
        assert field in epoch_end
    assert not (out / "checkpoints").exists()  # the finished model replaces the run state
    assert load_classifier(out).meta["best_epoch"] == result.best_epoch
    with pytest.raises(ConfigError, match="finished model"):
        fit(build(), data.train, data.validation, out_dir=out, placement=CPU, config=QUICK)


def test_kd_needs_teacher_targets(tmp_path, tiny_teacher, data_dir):
    data = load_prepared(data_dir)
    clf = student_from_teacher(load_classifier(tiny_teacher), [0])
    with pytest.raises(ConfigError, match="no teacher targets"):
        fit(
            clf,
            data.train,
            data.validation,
            out_dir=tmp_path / "s",
            placement=CPU,
            loss=LossConfig(alpha=0.5),
            config=QUICK,
        )


def test_gates_choose_the_checkpoint_not_the_loss(tmp_path, tiny_teacher, data_dir):
    from kdedge.distill.gates import Gates

    data = load_prepared(data_dir)
    impossible = Gates.from_dict({"gates": {"accuracy": {"min": 1.01}}, "score": {"accuracy": 1}})
    clf = student_from_teacher(load_classifier(tiny_teacher), [0, 2])
    result = fit(
        clf,
        data.train,
        data.validation,
        out_dir=tmp_path / "s",
        placement=CPU,
        config=QUICK,
        gates=impossible,
    )
    assert result.promotable is False
    assert all(not h["gates_passed"] for h in result.history)
    meta = json.loads((tmp_path / "s" / "kdedge.json").read_text())
    assert meta["promotable"] is False


def test_missing_model_directory_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_classifier(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"config\.json"):
        load_classifier(tmp_path / "empty")


def test_same_seed_same_teacher(tmp_path, tiny_base, data_dir):
    from safetensors.torch import load_file

    from kdedge.distill.teacher import teach

    config = TrainConfig(epochs=1, batch_size=16, lr=3e-3, early_stop=False)
    for name in ("a", "b"):
        teach(tiny_base, data_dir, tmp_path / name, placement=CPU, config=config, max_length=32)
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all((a[k] == b[k]).all() for k in a)
