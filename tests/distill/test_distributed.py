"""Multi-process runs on CPU with gloo: 2 processes under torchrun, as a user would launch them.

The single-process runs they are compared with use one thread, like each torchrun worker
(torchrun sets OMP_NUM_THREADS=1), so both sides do the same arithmetic.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from kdedge.distill import distributed
from kdedge.distill.losses import LossConfig, distillation_loss, shard_scale
from kdedge.errors import DeviceError, DistributedError
from tests.torchrun import free_port, kdedge_command, launch_env, run_kdedge

TIMEOUT_S = 240


def _run(args: list[str], processes: int = 1, launcher: str = "torchrun", **env: str):
    return run_kdedge(args, processes, launcher=launcher, timeout=TIMEOUT_S, **env)


@pytest.fixture(scope="module")
def teacher_nd(data_dir, tmp_path_factory) -> Path:
    """A dropout-free tiny teacher: its students train the same on any number of processes."""
    from conftest import WORDS, _tiny_tokenizer, make_rows
    from transformers import BertConfig, BertModel

    from kdedge.distill.device import resolve
    from kdedge.distill.teacher import teach
    from kdedge.distill.trainer import TrainConfig

    torch.manual_seed(0)
    tokenizer = _tiny_tokenizer([r["text"] for r in make_rows(30, seed=3)] + WORDS)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    root = tmp_path_factory.mktemp("teacher_nd")
    BertModel(config).save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    teach(
        root / "base",
        data_dir,
        root / "teacher",
        placement=resolve("cpu"),
        config=TrainConfig(epochs=8, lr=1e-2, batch_size=16, early_stop=False),
        max_length=32,
    )
    return root / "teacher"


def _distill_args(teacher: Path, data: Path, out: Path, cache: Path) -> list[str]:
    return [
        "distill",
        *("--teacher", str(teacher), "--data", str(data), "--out", str(out)),
        *("--cache", str(cache), "--epochs", "4", "--batch-size", "16", "--lr", "3e-3"),
        *("--device", "cpu", "--json", "-q"),
    ]


def _cache_rows(cache: Path) -> dict[str, tuple[bytes, str]]:
    with sqlite3.connect(cache / "teacher_logits.sqlite") as db:
        return {k: (v, c) for k, v, c in db.execute("SELECT key, value, checksum FROM logits")}


def test_two_processes_label_and_distill_like_one(teacher_nd, data_dir, tmp_path):
    """The same global batch on 2 processes: the same teacher cache byte for byte, and the
    same epochs, losses and metrics (to float rounding) as one process."""
    stage1 = ["--feature-epochs", "1"]
    one = _run(_distill_args(teacher_nd, data_dir, tmp_path / "one", tmp_path / "c1") + stage1)
    two = _run(_distill_args(teacher_nd, data_dir, tmp_path / "two", tmp_path / "c2") + stage1, 2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    single, double = _cache_rows(tmp_path / "c1"), _cache_rows(tmp_path / "c2")
    assert len(single) > 100
    assert single == double  # every text's logits and checksum, byte for byte
    a, b = json.loads(one.stdout), json.loads(two.stdout)  # rank 0 prints
    for x, y in zip(a["feature_history"], b["feature_history"], strict=True):
        assert y["loss_feature"] == pytest.approx(x["loss_feature"], rel=1e-3)
    a, b = a["train"], b["train"]
    assert a["best_epoch"] == b["best_epoch"]
    assert [h["epoch"] for h in a["history"]] == [h["epoch"] for h in b["history"]]
    for x, y in zip(a["history"], b["history"], strict=True):
        for key in ("loss_train", "loss_kd", "val_kd_loss", "val_accuracy", "val_macro_f1"):
            assert y[key] == pytest.approx(x[key], abs=1e-4), key
    events = _events(tmp_path / "two")
    ends = [
        e["epoch"]
        for e in events
        if e["event"] == "distill_epoch_end" and e["stage"] == "output_kd"
    ]
    assert ends == sorted(set(ends))  # one writer: every epoch logged once
    assert (tmp_path / "two" / "model.safetensors").is_file()


def _events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def _kill_tree(proc: subprocess.Popen) -> None:
    import psutil

    launcher = psutil.Process(proc.pid)
    for process in [*launcher.children(recursive=True), launcher]:
        process.kill()


def test_a_killed_two_process_run_resumes(teacher_nd, data_dir, tmp_path):
    out, cache = tmp_path / "student", tmp_path / "cache"
    args = _distill_args(teacher_nd, data_dir, out, cache)
    args[args.index("--epochs") + 1] = "6"
    proc = subprocess.Popen(
        kdedge_command(args, processes=2),
        env=launch_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = out / "checkpoints" / "last" / "state.pt"
    deadline = time.monotonic() + TIMEOUT_S
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    _kill_tree(proc)  # the launcher and both ranks, mid-run, as a power cut would
    proc.wait(timeout=30)
    assert state.exists() and not (out / "config.json").exists(), "killed too late to test"
    resumed = _run([*args, "--resume"], processes=2)
    assert resumed.returncode == 0, resumed.stderr
    assert [e["event"] for e in _events(out)].count("resume") == 1
    assert json.loads(resumed.stdout)["train"]["history"][0]["epoch"] == 1  # history kept


def test_a_launch_short_of_its_world_size_fails_in_one_line(teacher_nd, data_dir, tmp_path):
    env = dict(WORLD_SIZE="2", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
    env.update(MASTER_PORT=str(free_port()), KDEDGE_DIST_TIMEOUT="3")
    start = time.monotonic()
    result = _run(_distill_args(teacher_nd, data_dir, tmp_path / "s", tmp_path / "c"), **env)
    assert result.returncode == 2
    assert time.monotonic() - start < 60  # the timeout, not a hang
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "rank 0 of 2 could not join" in lines[0], result.stderr


def test_a_rank_that_dies_ends_the_run(teacher_nd, data_dir, tmp_path):
    import psutil

    args = _distill_args(teacher_nd, data_dir, tmp_path / "s", tmp_path / "c")
    args[args.index("--epochs") + 1] = "50"
    proc = subprocess.Popen(
        kdedge_command(args, processes=2),
        env=launch_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    launcher = psutil.Process(proc.pid)
    deadline = time.monotonic() + TIMEOUT_S
    while len(launcher.children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    while not (tmp_path / "s" / "events.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # both ranks are training
    victim = max(launcher.children(), key=lambda p: p.pid)
    victim.kill()
    _, stderr = proc.communicate(timeout=120)  # the launcher ends the other rank too
    assert proc.returncode != 0
    assert "exitcode" in stderr  # torchrun names the rank that died


def test_rows_and_spans_cover_every_item_once():
    procs = [distributed.Processes(rank=r, world=3) for r in range(3)]
    rows = list(range(10, 17))
    shards = [distributed.shard_rows(rows, p) for p in procs]
    assert (
        sorted(r for shard in shards for r in shard) == rows
        and max(map(len, shards)) - min(map(len, shards)) <= 1
    )
    spans = [distributed.span(8, p) for p in procs]
    assert [list(range(8))[s] for s in spans] == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert distributed.shard_rows(rows) == rows and distributed.span(5) == slice(0, 5)


def test_shard_scale_makes_the_averaged_gradient_the_global_one():
    """Two shards with unequal labeled rows: the mean of their scaled gradients equals the
    gradient of the whole batch's loss, as DDP's average would make it."""
    torch.manual_seed(0)
    labels = np.array([0, -100, 2, 1, -100, -100, 1], dtype=np.int64)
    weights = np.array([1.0, 2.0, 0.5, 1.0, 1.0, 3.0, 1.0], dtype=np.float32)
    class_weights = np.array([1.0, 5.0, 1.0], dtype=np.float32)
    teacher = torch.softmax(torch.randn(7, 3), -1)
    config = LossConfig(alpha=0.5, temperature=2.0, rare_weight=0.2)
    w = torch.nn.Parameter(torch.randn(4, 3))
    x = torch.randn(7, 4)

    def grad(rows: list[int], shard: torch.Tensor | None) -> torch.Tensor:
        w.grad = None
        terms = distillation_loss(
            x[rows] @ w,
            torch.from_numpy(labels[rows]),
            teacher[rows],
            config,
            torch.from_numpy(weights[rows]),
            torch.from_numpy(class_weights),
            shard,
        )
        terms.total.backward()
        return w.grad.clone()

    whole = list(range(7))
    shards = [whole[0::2], whole[1::2]]
    averaged = (
        sum(grad(r, shard_scale(labels, weights, class_weights, r, whole, 2)) for r in shards) / 2
    )
    assert torch.allclose(averaged, grad(whole, None), atol=1e-6)


def test_launcher_environment_errors(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(DistributedError, match="RANK=5 is outside WORLD_SIZE=2"):
        distributed.current()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "0")
    with pytest.raises(DistributedError, match="at least 1 second"):
        distributed.timeout_s()
    with pytest.raises(DeviceError, match="not supported on Apple MPS"):
        distributed.start("mps")
    import torch.distributed as dist

    monkeypatch.setattr(dist, "is_gloo_available", lambda: False)
    with pytest.raises(DistributedError, match="gloo backend"):
        distributed.start("cpu")


def test_a_recipe_runs_on_two_processes(teacher_nd, raw_data, tmp_path):
    """kdedge run under accelerate launch: every rank teaches, labels and distills; rank 0 alone
    prepares the data and calibrates, evaluates and writes the report."""
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        f"""
name = "tiny"
workdir = "{tmp_path / "run"}"
[data]
train = "{raw_data["train"]}"
test = "{raw_data["test"]}"
[teacher]
base = "{teacher_nd.parent / "base"}"
epochs = 2
lr = 1e-2
batch_size = 16
max_length = 32
[student]
layers = 1
[distill]
epochs = 2
min_epochs = 1
batch_size = 16
lr = 3e-3
""",
        encoding="utf-8",
    )
    args = ["run", str(recipe), "--device", "cpu", "--json", "-q"]
    result = _run(args, processes=2, launcher="accelerate")
    assert result.returncode in (0, 1), result.stderr  # 1: the tiny student fails a gate
    report = json.loads((tmp_path / "run" / "pipeline_report.json").read_text())
    stages = list(report["stages"])
    assert stages[:4] == ["prepare", "teach", "label", "distill"]
    assert "evaluate_student" in stages
    assert json.loads(result.stdout)["stages"].keys() == report["stages"].keys()  # rank 0 only


def test_fsdp_is_refused_for_replicated_students(monkeypatch):
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    fake = SimpleNamespace(distributed_type=DistributedType.FSDP)
    monkeypatch.setitem(distributed._JOINED, "accelerator", fake)
    with pytest.raises(DistributedError, match="a classifier trains with DDP"):
        distributed.require_replicated("a classifier")
    monkeypatch.setitem(
        distributed._JOINED,
        "accelerator",
        SimpleNamespace(distributed_type=DistributedType.MULTI_CPU),
    )
    distributed.require_replicated("a classifier")


def test_training_under_a_launcher_without_the_group_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delitem(distributed._JOINED, "accelerator", raising=False)
    with pytest.raises(DistributedError, match="never joined their group"):
        distributed.require_joined("training")
    assert distributed.joined() == distributed.SINGLE


def test_deal_keeps_planned_batches_whole():
    plan = [[4, 1], [0, 6], [3, 5], [2]]
    ranks = [distributed.deal(plan, distributed.Processes(rank=r, world=2)) for r in range(2)]
    assert [mine for mine, _ in ranks] == [[4, 1, 3, 5], [0, 6, 2]]
    assert ranks[0][1] == ranks[1][1] == [4, 1, 3, 5, 0, 6, 2]  # the gathered order
