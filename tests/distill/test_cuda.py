"""The CUDA path (bf16 autocast, fused AdamW). Skipped without a GPU; the CLINC150 benchmark
in docs/benchmarks.md exercises the same path at full size on an H100."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_bf16_distillation_on_cuda(tmp_path, tiny_teacher, data_dir):
    from kdedge.distill import LossConfig, StudentSpec, TrainConfig, distill, resolve_device

    gpu = resolve_device("cuda")
    assert gpu.precision == "bf16"
    result = distill(
        [tiny_teacher],
        data_dir,
        tmp_path / "student",
        placement=gpu,
        student=StudentSpec(layers=2),
        loss=LossConfig(alpha=0.7, temperature=2.0),
        config=TrainConfig(epochs=2, batch_size=16, lr=3e-3),
        feature_epochs=1,
    )
    assert all(h["loss_train"] == h["loss_train"] for h in result.train.history)  # no NaN
    steps = [
        json.loads(x) for x in (tmp_path / "student" / "events.jsonl").read_text().splitlines()
    ]
    assert any(e.get("gpu_mem_gb") for e in steps if e["event"] == "kd_train_step")
