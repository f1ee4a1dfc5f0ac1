"""The training loop shared by teacher fine-tuning and student distillation.

One epoch = shuffled, length-bucketed batches -> loss (hard CE, KD, rare-class term) ->
AdamW with warmup and linear decay, gradient clipping. After each epoch the model is
evaluated on the validation split; a checkpoint is *eligible* only if it passes the gates,
and the best weighted score among eligible epochs is what ships (not the lowest loss).
Each epoch also writes a resumable state, so ``resume=True`` continues a killed run.

Kept framework-free on purpose (no HF Trainer): the loop is short. Under ``torchrun`` or
``accelerate launch`` each process takes its share of every global batch, accelerate wraps
the model for gradient sync (DDP, or FSDP from the accelerate config), validation is
sharded and gathered, and only rank 0 writes checkpoints, events and the selected model
(:mod:`kdedge.distill.distributed`). ``batch_size`` stays the global batch, so the learning
rate, the schedule and the epoch mean the same with one process or eight.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdedge.atomic import atomic_write_text
from kdedge.data.records import Example
from kdedge.distill import distributed
from kdedge.distill.batching import TokenTable, device_batches, shuffled_buckets
from kdedge.distill.checkpoints import (
    CHECKPOINTS,
    load_state,
    read_weights,
    read_weights_or_none,
    save_state,
    write_weights,
)
from kdedge.distill.device import Placement, explain_device_errors
from kdedge.distill.events import EventLog
from kdedge.distill.gates import Gates, check_gates
from kdedge.distill.inference import encode, predict_logits
from kdedge.distill.losses import (
    IGNORE_INDEX,
    LossConfig,
    distillation_loss,
    kd_loss,
    rare_class_weights,
    shard_scale,
)
from kdedge.distill.metrics import classification_report
from kdedge.distill.models import Classifier, save_classifier
from kdedge.distill.optim import lr_schedule, make_optimizer
from kdedge.distill.probability import mean_entropy, softmax
from kdedge.distill.stop_rule import ClassifierStopRule, EpochSignals
from kdedge.errors import ConfigError, DataError
from kdedge.progress import Tracker, silent

EVENTS_FILE = "events.jsonl"
REPORT_FILE = "training_report.json"
HARD_LABELS_ONLY = LossConfig(alpha=0.0)
LOSS_TERMS = ("total", "hard", "kd", "rare")
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. ``lr`` is the peak learning rate after warmup."""

    epochs: int = 5
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    seed: int = 0
    eval_batch_size: int = 256
    min_epochs: int = 2
    early_stop: bool = True
    log_every: int = 50
    rare_class_boost: float = 5.0
    # torch.compile the training forward: None (eager), "default", "reduce-overhead"
    # (CUDA graphs) or "max-autotune". Batch widths are then rounded up to multiples of 8.
    compile: str | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(
                f"epochs ({self.epochs}) and batch_size ({self.batch_size}) must be >= 1 "
                f"and lr ({self.lr}) > 0"
            )
        if self.compile not in COMPILE_MODES:
            raise ConfigError(
                f"compile={self.compile!r}: choose one of "
                + ", ".join(str(m) for m in COMPILE_MODES)
            )


DEFAULT_TRAIN = TrainConfig()


@dataclass
class TrainResult:
    """What a run produced: the chosen epoch, its gate report, the epoch history."""

    out_dir: Path
    best_epoch: int
    promotable: bool
    history: list[dict[str, Any]]
    stopped_early: str | None
    train_samples_per_sec: float
    gate_report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out_dir"] = str(self.out_dir)
        return data

    @property
    def best(self) -> dict[str, Any]:
        return next(h for h in self.history if h["epoch"] == self.best_epoch)


def evaluate_logits(
    logits: np.ndarray,
    examples: Sequence[Example],
    clf: Classifier,
    *,
    oos_label: str | None,
    rare_labels: Sequence[str],
) -> dict[str, Any]:
    """Classification metrics of validation logits (no temperature)."""
    gold = np.array(clf.labels.indices([e.label for e in examples]))
    report = classification_report(
        softmax(logits),
        gold,
        clf.labels.names,
        oos_label=oos_label if oos_label in clf.labels else None,
        rare_labels=[r for r in rare_labels if r in clf.labels],
        slices=[e.slice for e in examples],
    )
    return report.to_dict()


def fit(
    clf: Classifier,
    train: Sequence[Example],
    validation: Sequence[Example],
    *,
    out_dir: str | Path,
    placement: Placement,
    loss: LossConfig = HARD_LABELS_ONLY,
    config: TrainConfig = DEFAULT_TRAIN,
    teacher_train: np.ndarray | None = None,  # [N_train, C] soft targets at loss.temperature
    teacher_val: np.ndarray | None = None,  # [N_val, C]
    gates: Gates | None = None,
    rare_labels: Sequence[str] = (),
    oos_label: str | None = None,
    stage: str = "output_kd",
    resume: bool = False,
    overwrite: bool = False,
    meta: dict[str, Any] | None = None,
    track: Tracker = silent,
) -> TrainResult:
    """Train ``clf.model`` in place and write the selected checkpoint to ``out_dir``."""
    out_dir = Path(out_dir)
    gates = gates or Gates.default()
    _check_inputs(
        clf, train, validation, teacher_train, teacher_val, loss, out_dir, resume, overwrite
    )
    distributed.require_joined("training")
    procs = distributed.current()
    if len(train) < procs.world:
        raise ConfigError(f"{len(train)} training rows cannot be shared by {procs.world} processes")
    ckpt_dir = out_dir / CHECKPOINTS
    log = open_run_dir(out_dir, stage, resume=resume, overwrite=overwrite)

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    model = clf.model.to(placement.device)
    labels = clf.labels
    device = placement.device
    # Everything a step reads lives on the device: tokens, gold labels, weights, targets.
    tokens = TokenTable(
        encode(clf.tokenizer, [e.text for e in train], clf.max_length),
        clf.tokenizer.pad_token_id,
        device,
        multiple=8 if config.compile else 1,
    )
    gold = torch.tensor(
        [labels.index(e.label) if e.label else IGNORE_INDEX for e in train], device=device
    )
    weights = torch.tensor([e.weight for e in train], dtype=torch.float32)
    use_weights = bool((weights != 1.0).any())
    weights = weights.to(device)
    targets = (
        torch.from_numpy(teacher_train).float().to(device) if teacher_train is not None else None
    )
    rare_idx = [labels.index(r) for r in rare_labels if r in labels]
    class_weights = rare_class_weights(len(labels), rare_idx, config.rare_class_boost).to(device)
    gold_np, weights_np, class_np = (t.cpu().numpy() for t in (gold, weights, class_weights))
    distributed.require_replicated("a classifier")
    trained = distributed.prepare_model(model)  # DDP under a launcher, else model itself
    forward = torch.compile(trained, mode=config.compile) if config.compile else trained

    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    optimizer = make_optimizer(trained, config)
    scheduler = lr_schedule(optimizer, steps_per_epoch * config.epochs, config.warmup_ratio)
    history: list[dict[str, Any]] = []
    best_epoch, best_score, best_state = 0, -math.inf, None
    start_epoch = 1
    if resume and (ckpt_dir / "last" / "state.pt").is_file():
        state = load_state(ckpt_dir, model, optimizer, scheduler)
        history, best_epoch, best_score = state["history"], state["best_epoch"], state["best_score"]
        start_epoch = state["epoch"] + 1
        log.emit("resume", epoch=state["epoch"], stage=stage)
        if best_epoch:
            best_state = read_weights(ckpt_dir / "best")
    stop_rule = ClassifierStopRule(min_epochs=config.min_epochs)
    stopped: str | None = None
    throughput: list[float] = []
    step = (start_epoch - 1) * steps_per_epoch

    for epoch in range(start_epoch, config.epochs + 1):
        trained.train()
        generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        batches = shuffled_buckets(
            tokens.lengths, config.batch_size, generator, min_rows=procs.world
        )
        padding = tokens.padding_efficiency(batches)
        mine = [distributed.shard_rows(rows, procs) for rows in batches]
        shares = [
            shard_scale(gold_np, weights_np, class_np, m, b, procs.world).to(device)
            if procs.distributed
            else None
            for m, b in zip(mine, batches, strict=True)
        ]
        sums = torch.zeros(5, device=device)  # total, hard, kd, rare (row-weighted), rows
        seen, t0 = 0, time.perf_counter()
        with explain_device_errors(placement), distributed.explain_peer_errors("training"):
            for i, (rows, index) in enumerate(
                track(
                    zip(mine, device_batches(mine, device), strict=True),
                    f"{stage} epoch {epoch}/{config.epochs}",
                    total=len(batches),
                )
            ):
                input_ids, mask = tokens.batch(rows, index)
                y = gold.index_select(0, index)
                w = weights.index_select(0, index) if use_weights else None
                t = targets.index_select(0, index) if targets is not None else None
                with placement.autocast():
                    logits = forward(input_ids=input_ids, attention_mask=mask).logits
                terms = distillation_loss(logits, y, t, loss, w, class_weights, shares[i])
                terms.total.backward()
                grad_norm = distributed.clip_grad_norm(trained, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                seen += len(rows)
                step_terms = torch.stack([terms.total, terms.hard, terms.kd, terms.rare]).detach()
                sums[:4] += step_terms * len(rows)  # stays on the device: no sync per step
                if procs.main and (step % config.log_every == 0 or i == len(mine) - 1):
                    values = dict(zip(LOSS_TERMS, step_terms.tolist(), strict=True))
                    elapsed = time.perf_counter() - t0
                    log.emit(
                        "kd_train_step",
                        stage=stage,
                        epoch=epoch,
                        global_step=step,
                        batch_size=len(batches[i]),
                        loss_total=values["total"],
                        loss_hard=values["hard"],
                        loss_kd=values["kd"],
                        loss_rare=values["rare"],
                        grad_norm=float(grad_norm),
                        lr=scheduler.get_last_lr()[0],
                        samples_per_sec=round(seen * procs.world / elapsed, 1)
                        if elapsed > 0
                        else None,
                        gpu_mem_gb=_gpu_mem_gb(placement),
                    )
        if placement.name == "cuda":
            torch.cuda.synchronize()
        sums[4] = seen
        totals = distributed.all_sum(sums, "summing the epoch's loss").tolist()
        seen = int(totals[4])
        epoch_seconds = time.perf_counter() - t0
        epoch_loss = [round(v / max(1, seen), 6) for v in totals[:4]]
        throughput.append(len(train) / epoch_seconds)

        val_logits = distributed.gather_rows(
            predict_logits(
                model,
                clf.tokenizer,
                [e.text for e in validation[distributed.span(len(validation), procs)]],
                placement,
                max_length=clf.max_length,
                batch_size=config.eval_batch_size,
            ),
            "validation",
        )
        metrics = evaluate_logits(
            val_logits, validation, clf, oos_label=oos_label, rare_labels=rare_labels
        )
        val_kd = None
        if teacher_val is not None:
            val_kd = float(
                kd_loss(
                    torch.from_numpy(val_logits), torch.from_numpy(teacher_val), loss.temperature
                )
            )
        gate_metrics = {**metrics, "val_kd_loss": val_kd}
        gate_report = check_gates(gate_metrics, gates)
        record = {
            "epoch": epoch,
            "stage": stage,
            "loss_train": epoch_loss[0] if seen else None,
            "loss_hard": epoch_loss[1] if seen else None,
            "loss_kd": epoch_loss[2] if seen else None,
            "loss_rare": epoch_loss[3] if seen else None,
            "val_accuracy": metrics["accuracy"],
            "val_macro_f1": metrics["macro_f1"],
            "rare_class_recall": metrics.get("rare_class_recall"),
            "oos_precision": metrics.get("oos_precision"),
            "oos_recall": metrics.get("oos_recall"),
            "val_ece": metrics["ece"],
            "val_kd_loss": val_kd,
            "student_entropy_mean": round(mean_entropy(softmax(val_logits)), 4),
            "teacher_entropy_mean": round(mean_entropy(teacher_val), 4)
            if teacher_val is not None
            else None,
            "samples_per_sec": round(throughput[-1], 1),
            "epoch_seconds": round(epoch_seconds, 2),
            "padding_efficiency": round(padding, 4),
            "gates_passed": gate_report.passed,
            "gate_failures": list(gate_report.failures),
            "score": gate_report.score,
        }
        history.append(record)
        log.emit("distill_epoch_end", **record, gpu_mem_gb=_gpu_mem_gb(placement))
        if gate_report.passed and gate_report.score > best_score:
            best_epoch, best_score = epoch, gate_report.score
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            if procs.main:
                write_weights(ckpt_dir / "best", best_state)
        if procs.main:
            save_state(
                ckpt_dir, model, optimizer, scheduler, epoch, history, best_epoch, best_score
            )
        if config.early_stop:
            signals = [
                EpochSignals(h["val_accuracy"], h["rare_class_recall"], h["val_kd_loss"])
                for h in history
            ]
            stop, reason = stop_rule.should_stop(signals)
            if stop:
                stopped = f"epoch {epoch}: {reason}"
                log.emit("early_stop", epoch=epoch, reason=reason)
                break

    promotable = best_state is not None
    if best_state is None:  # nothing passed the gates: ship the best-scoring epoch, flagged
        best_epoch = max(history, key=lambda h: h["score"])["epoch"] if history else 0
        if best_epoch != history[-1]["epoch"]:
            best_state = read_weights_or_none(ckpt_dir / "best")
    if best_state is not None:
        model.load_state_dict(best_state)
    best_record = next(h for h in history if h["epoch"] == best_epoch)
    result = TrainResult(
        out_dir=out_dir,
        best_epoch=best_epoch,
        promotable=promotable,
        history=history,
        stopped_early=stopped,
        train_samples_per_sec=round(float(np.median(throughput)), 1) if throughput else 0.0,
        gate_report={
            "passed": best_record["gates_passed"],
            "failures": best_record["gate_failures"],
        },
    )
    model.to("cpu")
    if procs.main:
        _finish(clf, out_dir, result, meta or {}, stage)
        EventLog(out_dir / EVENTS_FILE, run_id=log.run_id).emit(
            "checkpoint_selected", epoch=best_epoch, promotable=promotable, stopped_early=stopped
        )
    distributed.wait("writing the selected model")
    return result


def open_run_dir(out_dir: Path, stage: str, *, resume: bool, overwrite: bool) -> EventLog:
    """Clear (``overwrite``, unless resuming) and create ``out_dir`` on rank 0, with every
    rank waiting for it; the run's event log, which only rank 0 writes."""
    main = distributed.current().main
    if main:
        if overwrite and not resume and out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
    distributed.wait("setting up the run directory")
    return EventLog(out_dir / EVENTS_FILE if main else None, run_id=f"{stage}_{out_dir.name}")


def _check_inputs(
    clf, train, validation, teacher_train, teacher_val, loss, out_dir, resume, overwrite
):
    if not train:
        raise DataError("the training set is empty")
    if not validation:
        raise DataError("the validation set is empty: checkpoint selection needs one")
    if any(e.label is None for e in validation):
        raise DataError("every validation row needs a gold label")
    if teacher_train is None and any(e.label is None for e in train):
        raise DataError("unlabeled training rows need teacher soft labels (run with a teacher)")
    if teacher_train is not None and len(teacher_train) != len(train):
        raise ConfigError(f"teacher targets: {len(teacher_train)} rows for {len(train)} examples")
    if teacher_val is not None and len(teacher_val) != len(validation):
        raise ConfigError(
            f"teacher validation targets: {len(teacher_val)} rows for {len(validation)}"
        )
    if loss.alpha > 0 and teacher_train is None:
        raise ConfigError(f"alpha={loss.alpha} asks for KD but no teacher targets were given")
    finished = (out_dir / "config.json").is_file()
    in_progress = (out_dir / CHECKPOINTS / "last" / "state.pt").is_file()
    if (finished or (in_progress and not resume)) and not overwrite:
        what = "a finished model" if finished else "an interrupted run"
        raise ConfigError(
            f"{out_dir} already holds {what}. Fix: "
            + ("pass --resume to continue it, " if in_progress else "")
            + "pass --overwrite to replace it, or choose another --out"
        )


def _gpu_mem_gb(placement: Placement) -> float | None:
    if placement.name != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 3)


def _finish(clf: Classifier, out_dir: Path, result: TrainResult, meta: dict, stage: str) -> None:
    """Replace the run directory by the selected model, keeping the event log and report."""
    import json

    events = (
        (out_dir / EVENTS_FILE).read_text(encoding="utf-8")
        if (out_dir / EVENTS_FILE).exists()
        else ""
    )
    saved = save_classifier(
        clf,
        out_dir,
        **meta,
        stage=stage,
        best_epoch=result.best_epoch,
        promotable=result.promotable,
    )
    atomic_write_text(saved / EVENTS_FILE, events)
    atomic_write_text(
        saved / REPORT_FILE, json.dumps(result.to_dict(), indent=2, default=str) + "\n"
    )
