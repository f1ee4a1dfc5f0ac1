"""The fast training path: device-resident batches, bucketing, fused AdamW, compile, FLOPs."""

from __future__ import annotations

import random

import pytest
import torch

from kdedge.distill.batching import TokenTable, shuffled_buckets, sorted_batches
from kdedge.distill.flops import matmul_ceiling, step_flops
from kdedge.distill.inference import pad_batch
from kdedge.errors import ConfigError


def _ids(n: int = 200, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [
        [101, *(rng.randrange(1000, 2000) for _ in range(rng.randint(1, 30))), 102]
        for _ in range(n)
    ]


def test_token_table_batches_equal_host_padding():
    ids = _ids()
    table = TokenTable(ids, pad_id=0)
    for rows in ([0], [3, 1, 4, 1, 5], list(range(50, 90))):
        input_ids, mask = table.batch(rows)
        want_ids, want_mask = pad_batch([ids[i] for i in rows], 0)
        assert torch.equal(input_ids, want_ids) and torch.equal(mask, want_mask)


def test_token_table_rounds_widths_for_compiled_models():
    ids = _ids()
    table = TokenTable(ids, pad_id=0, multiple=8)
    rows = [i for i, row in enumerate(ids) if len(row) == 5][:3]
    input_ids, mask = table.batch(rows)
    assert input_ids.shape == (3, 8) and mask.sum().item() == 15
    assert (input_ids[:, 5:] == 0).all() and (mask[:, 5:] == 0).all()
    assert {table.width([i]) % 8 for i in range(len(ids))} == {0}
    with pytest.raises(ValueError, match="no rows"):
        TokenTable([], pad_id=0)


def test_buckets_cut_padding_and_keep_every_row_once():
    ids = _ids(1000)
    table = TokenTable(ids, pad_id=0)
    lengths = table.lengths
    buckets = shuffled_buckets(lengths, 32, torch.Generator().manual_seed(0))
    assert sorted(i for b in buckets for i in b) == list(range(len(ids)))
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(0)).tolist()
    plain = [order[i : i + 32] for i in range(0, len(order), 32)]
    assert table.padding_efficiency(buckets) > 0.9 > 0.7 > table.padding_efficiency(plain)
    assert table.padding_efficiency(sorted_batches(lengths, 32)) > 0.95


def test_training_uses_the_fused_optimizer(tiny_teacher):
    from kdedge.distill.models import load_classifier
    from kdedge.distill.optim import make_optimizer
    from kdedge.distill.trainer import TrainConfig

    model = load_classifier(tiny_teacher).model
    optimizer = make_optimizer(model, TrainConfig())
    assert all(group["fused"] for group in optimizer.param_groups)


def test_unknown_compile_mode_is_a_config_error():
    from kdedge.distill.trainer import TrainConfig

    with pytest.raises(ConfigError, match="compile='fast'"):
        TrainConfig(compile="fast")


def test_compiled_training_matches_eager(tmp_path, tiny_teacher, data_dir):
    """torch.compile changes speed, not the training: same data and seed, close losses.

    Not equal: widths rounded to 8 make dropout draw masks over more positions."""
    from kdedge.data.prepare import load_prepared
    from kdedge.distill.device import resolve
    from kdedge.distill.models import load_classifier
    from kdedge.distill.trainer import TrainConfig, fit

    data = load_prepared(data_dir)
    losses = {}
    for mode in (None, "default"):
        clf = load_classifier(tiny_teacher)
        result = fit(
            clf,
            data.train,
            data.validation,
            out_dir=tmp_path / str(mode),
            placement=resolve("cpu"),
            config=TrainConfig(epochs=1, batch_size=16, lr=1e-3, compile=mode, early_stop=False),
        )
        losses[mode] = result.history[0]["loss_train"]
        assert result.history[0]["padding_efficiency"] <= 1.0
    assert losses["default"] == pytest.approx(losses[None], rel=2e-2)


def test_flop_counts_grow_with_padding_and_the_ceiling_is_measured(tiny_teacher):
    from kdedge.distill.models import load_classifier

    model = load_classifier(tiny_teacher).model.train()
    short = torch.ones(4, 8, dtype=torch.long)
    long = torch.ones(4, 32, dtype=torch.long)
    f_short = step_flops(model, short, torch.ones_like(short))
    f_long = step_flops(model, long, torch.ones_like(long))
    forward_only = step_flops(model, short, torch.ones_like(short), backward=False)
    assert f_long > 3 * f_short > 0 and 2 * forward_only < f_short < 4 * forward_only
    assert all(p.grad is None for p in model.parameters())
    assert matmul_ceiling("cpu", torch.float32, size=128, repeats=2) > 1e6


def test_train_speed_benchmark_runs_end_to_end(tmp_path, tiny_teacher, data_dir):
    """The speed ladder script (the owed H100 command) runs and writes every figure."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[2] / "benchmarks" / "train_speed.py"
    out = tmp_path / "speed.json"
    args = [sys.executable, str(script), "--teacher", str(tiny_teacher), "--data", str(data_dir)]
    args += ["--device", "cpu", "--batch-size", "8", "--steps", "2", "--rounds", "3"]
    args += ["--label-texts", "48", "--label-batch-size", "16", "--out", str(out)]
    run = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| +fused |" in run.stdout and "labeling: plain" in run.stdout
    result = json.loads(out.read_text())
    assert list(result["train"]) == ["plain", "+buckets", "+resident", "+fused"]
    for arm in result["train"].values():
        assert arm["samples_per_sec"] > 0 and arm["speedup_vs_plain"]["rounds"] == 3
        assert 0 < arm["useful_fraction_of_ceiling"] <= arm["fraction_of_ceiling"]
    assert result["labeling"]["texts"] == 48 and result["labeling"]["speedup"] is not None

    too_few = subprocess.run([*args[:-2], "--rounds", "2"], capture_output=True, text=True)
    assert too_few.returncode == 2 and "--rounds must be at least 3" in too_few.stderr
    no_batch = [*args[:-2], "--batch-size", "100000"]
    too_big = subprocess.run(no_batch, capture_output=True, text=True, timeout=300)
    assert too_big.returncode == 1 and "make no full batch of 100000" in too_big.stderr


def test_device_batches_are_the_rows_in_one_copy():
    from kdedge.distill.batching import device_batches

    batches = shuffled_buckets([len(r) for r in _ids()], 16, torch.Generator().manual_seed(0))
    indexes = device_batches(batches, "cpu")
    assert [t.tolist() for t in indexes] == batches
    assert all(t.dtype == torch.long for t in indexes)
    assert len({t.untyped_storage().data_ptr() for t in indexes}) == 1  # views of one tensor
    assert device_batches([], "cpu") == []
