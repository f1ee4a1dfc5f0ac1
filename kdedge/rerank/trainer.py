"""Train a cross-encoder reranker (teacher or student), judged by ranking metrics.

One step = ``queries_per_batch`` queries, each with up to ``candidates_per_query`` of its
candidates: its positives (at most ``max_positives``, default half the list) and hard
negatives, i.e. non-relevant candidates the first stage (BM25) retrieved, drawn afresh each
epoch. The list batch goes through :func:`kdedge.rerank.losses.rerank_loss`; AdamW with
warmup and linear decay; gradient clipping.

After each epoch the whole validation set is scored and ranked: NDCG@3/5/10, MRR@10,
recall@k. The shipped checkpoint is chosen by the gates, then by the gate score (NDCG@10
by default), never by loss. Training stops early when validation NDCG@10 gains less than
``min_ndcg_gain`` (seed: 0.002) across one epoch, once ``min_epochs`` have run. Each epoch
writes a resumable state, so ``resume=True`` continues a killed run from its last finished
epoch (the negatives an epoch draws depend on the seed and the epoch only).

Under ``torchrun`` / ``accelerate launch`` (:mod:`kdedge.distill.distributed`) every process
draws the same lists and global batches; each takes its share of a batch's queries,
accelerate wraps the model for gradient sync (DDP, or FSDP from the accelerate config),
:func:`kdedge.rerank.losses.shard_scale` makes the averaged gradient the global batch's,
validation is scored in shares and gathered, and only rank 0 writes. ``queries_per_batch``
stays the global batch, so the schedule means the same with one process or eight.

:func:`kdedge.rerank.distill.distill_reranker` builds the student and calls
:func:`fit_reranker`; the settings and stop rule are in :mod:`kdedge.rerank.config`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdedge.atomic import atomic_dir, atomic_write_text
from kdedge.distill import distributed
from kdedge.distill.batching import sorted_batches
from kdedge.distill.checkpoints import load_state, read_weights, save_state, save_weights
from kdedge.distill.device import Placement, explain_device_errors, resolve
from kdedge.distill.events import EventLog
from kdedge.distill.gates import Gates, check_gates
from kdedge.distill.models import Classifier, parameter_count, size_on_disk
from kdedge.distill.optim import lr_schedule, make_optimizer
from kdedge.distill.trainer import open_run_dir
from kdedge.errors import ConfigError, DataError
from kdedge.progress import Tracker, silent
from kdedge.rerank.config import RANKING_METRICS, RerankStopRule, RerankTrainConfig, default_gates
from kdedge.rerank.lists import ListData, list_batch
from kdedge.rerank.losses import RerankLossConfig, rerank_loss, shard_scale
from kdedge.rerank.metrics import ranking_report
from kdedge.rerank.models import PairTable, save_reranker, score_table, split_by_groups
from kdedge.rerank.threshold import fit_score_threshold

CHECKPOINTS = "checkpoints"
EVENTS_FILE = "events.jsonl"
REPORT_FILE = "training_report.json"
VAL_SCORES = "val_scores.npy"


@dataclass
class RerankTrainResult:
    """What a run produced: the chosen epoch, its gate report, the epoch history."""

    out_dir: Path
    best_epoch: int
    promotable: bool
    history: list[dict[str, Any]]
    stopped_early: str | None
    train_pairs_per_sec: float
    gate_report: dict[str, Any] = field(default_factory=dict)
    score_threshold: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out_dir"] = str(self.out_dir)
        return data

    @property
    def best(self) -> dict[str, Any]:
        return next(h for h in self.history if h["epoch"] == self.best_epoch)


def as_placement(device: str | Placement = "auto", precision: str = "auto") -> Placement:
    return device if isinstance(device, Placement) else resolve(device, precision)


def as_groups(groups: Any, what: str) -> list[Any]:
    """Query groups from a list or a group file (JSONL)."""
    if isinstance(groups, (str, Path)):
        from kdedge.rerank.data import read_groups

        groups = read_groups(groups)
    groups = list(groups)
    if not groups:
        raise DataError(f"the {what} groups are empty")
    return groups


def describe_groups(groups: Sequence[Any]) -> dict[str, Any]:
    """Counts of queries and pairs, for reports and provenance."""
    return {
        "queries": len(groups),
        "candidates": sum(len(g.candidates) for g in groups),
        "positives": sum(1 for g in groups for c in g.candidates if c.relevance > 0),
    }


# -- the loop ----------------------------------------------------------------------------


def _rank_key(passed: bool, score: float) -> tuple[int, float]:
    """Checkpoints that pass the gates beat those that do not; then the higher score."""
    return (1 if passed else 0, score)


def validation_scores(
    model: torch.nn.Module,
    table: PairTable,
    batch_size: int,
    placement: Placement,
    procs: distributed.Processes,
) -> np.ndarray:
    """Scores [N] of every row of ``table``; under a launcher each rank scores its share of
    one world-independent batch plan and the shares are gathered (bit-identical scores)."""

    mine, every = distributed.deal(sorted_batches(table.lengths, batch_size), procs)
    local = score_table(model, table, batch_size, placement, rows=mine)
    flat = np.empty(len(table.lengths), dtype=np.float32)
    flat[every] = distributed.gather_rows(local, "scoring the validation pairs")
    return flat


def _write_best(ckpt_dir: Path, model: torch.nn.Module, val_scores: np.ndarray) -> None:
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    with atomic_dir(ckpt_dir / "best") as tmp:
        save_weights(tmp, state)
        np.save(tmp / VAL_SCORES, val_scores)


def check_out_dir(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to overwrite a finished model, or to start over an interrupted one, unless told."""
    finished = (out_dir / "config.json").is_file()
    in_progress = (out_dir / CHECKPOINTS / "last" / "state.pt").is_file()
    if (finished or (in_progress and not resume)) and not overwrite:
        what = "a finished model" if finished else "an interrupted run"
        raise ConfigError(
            f"{out_dir} already holds {what}. Fix: "
            + ("pass --resume to continue it, " if in_progress else "")
            + "pass --overwrite to replace it, or choose another --out"
        )


def fit_reranker(
    clf: Classifier,
    train_groups: Sequence[Any],
    val_groups: Sequence[Any],
    *,
    out_dir: str | Path,
    placement: Placement,
    loss: RerankLossConfig,
    config: RerankTrainConfig,
    teacher_train: Sequence[np.ndarray] | None = None,
    gates: Gates | None = None,
    stage: str = "rerank",
    resume: bool = False,
    overwrite: bool = False,
    meta: dict[str, Any] | None = None,
    report_extra: dict[str, Any] | None = None,
    track: Tracker = silent,
) -> RerankTrainResult:
    """Train ``clf.model`` in place and write the selected checkpoint to ``out_dir``."""
    out_dir = Path(out_dir)
    gates = gates or default_gates()
    if loss.needs_teacher and teacher_train is None:
        raise ConfigError(f"alpha={loss.alpha} mixes in the teacher but no teacher scores came")
    if clf.model.config.num_labels != 1:
        raise ConfigError(
            f"a reranker has one output; this model has {clf.model.config.num_labels}"
        )
    check_out_dir(out_dir, resume, overwrite)
    if not any(c.relevance > 0 for g in val_groups for c in g.candidates):
        raise DataError("no validation query has a relevant candidate: NDCG is undefined")
    distributed.require_joined("reranker training")
    procs = distributed.current()
    if config.queries_per_batch < procs.world:
        raise ConfigError(
            f"queries_per_batch={config.queries_per_batch} cannot be shared by {procs.world} "
            "processes; raise --queries-per-batch to at least the number of processes"
        )
    ckpt_dir = out_dir / CHECKPOINTS
    distributed.wait("checking the output directory")  # no rank checks after rank 0 clears it
    log = open_run_dir(out_dir, stage, resume=resume, overwrite=overwrite)

    torch.manual_seed(config.seed)
    device = placement.device
    model = clf.model.to(device)
    train = ListData(
        train_groups,
        clf.tokenizer,
        clf.max_length,
        device,
        teacher_train if loss.needs_teacher else None,
    )
    val_table = PairTable(
        clf.tokenizer,
        [(g.query, c.text) for g in val_groups for c in g.candidates],
        clf.max_length,
        device,
    )
    lists_per_epoch = len(train.sample(config, 1))
    if lists_per_epoch == 0:
        raise DataError("no training query has two or more candidates to rank")
    if lists_per_epoch < procs.world:
        raise ConfigError(
            f"{lists_per_epoch} training queries cannot be shared by {procs.world} processes"
        )
    steps_per_epoch = len(train.batches(config, 1, procs.world))
    trained = distributed.prepare_model(model)  # DDP / FSDP under a launcher, else model
    optimizer = make_optimizer(trained, config)
    scheduler = lr_schedule(optimizer, steps_per_epoch * config.epochs, config.warmup_ratio)

    history: list[dict[str, Any]] = []
    best_epoch, best_key = 0, (-1, -math.inf)
    start_epoch = 1
    if resume and (ckpt_dir / "last" / "state.pt").is_file():
        state = load_state(ckpt_dir, model, optimizer, scheduler)
        history, best_epoch = state["history"], state["best_epoch"]
        if best_epoch:
            best = next(h for h in history if h["epoch"] == best_epoch)
            best_key = _rank_key(best["gates_passed"], best["score"])
        start_epoch = state["epoch"] + 1
        log.emit("resume", epoch=state["epoch"], stage=stage)
    stop_rule = RerankStopRule(config.min_ndcg_gain, config.min_epochs)
    stopped: str | None = None
    if history and config.early_stop:
        stop, reason = stop_rule.should_stop(history)
        if stop:  # the run was killed after deciding to stop but before finishing
            stopped = f"epoch {history[-1]['epoch']}: {reason}"
            start_epoch = config.epochs + 1
    throughput: list[float] = []
    step = (start_epoch - 1) * steps_per_epoch

    for epoch in range(start_epoch, config.epochs + 1):
        trained.train()
        # Dropout draws from the global generator: seeding it per epoch makes a resumed run
        # repeat exactly what the uninterrupted run would have done.
        torch.manual_seed(config.seed * 1000 + epoch)
        batches = train.batches(config, epoch, procs.world)
        sums = np.zeros(3)  # total, supervised, distill (list-weighted, summed over ranks)
        seen = pairs_seen = 0
        t0 = time.perf_counter()
        with explain_device_errors(placement), distributed.explain_peer_errors("training"):
            for i, batch in enumerate(
                track(batches, f"{stage} epoch {epoch}/{config.epochs}", len(batches))
            ):
                mine = [batch[j] for j in distributed.shard_rows(range(len(batch)), procs)]
                rows, mask, relevance, teacher = list_batch(train, mine, device)
                factors, share = [1.0, 1.0], None
                if procs.distributed:
                    scale = shard_scale(
                        [train.relevance[r] for r in mine],
                        [train.relevance[r] for r in batch],
                        loss,
                        procs.world,
                    )
                    factors, share = scale.tolist(), scale.to(device)
                with placement.autocast():
                    logits = trained(**train.table.batch(rows)).logits[:, 0].float()
                scores = torch.zeros(mask.shape, device=device, dtype=torch.float32)
                scores = scores.masked_scatter(mask, logits)
                terms = rerank_loss(
                    scores,
                    relevance,
                    mask,
                    teacher,
                    loss,
                    max_relevance=train.max_relevance,
                    shard=share,
                )
                terms.total.backward()
                grad_norm = distributed.clip_grad_norm(trained, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                values = [float(t.detach()) for t in terms]
                # This share's part of the global batch's terms: summed over ranks, they
                # give the single-process epoch means.
                parts = [values[0], values[1] * factors[0], values[2] * factors[1]]
                sums += np.array(parts) / procs.world * len(batch)
                seen += len(batch)
                batch_pairs = sum(len(r) for r in batch)
                pairs_seen += batch_pairs
                if procs.main and (step % config.log_every == 0 or i == len(batches) - 1):
                    elapsed = time.perf_counter() - t0
                    log.emit(
                        "rerank_train_step",
                        stage=stage,
                        epoch=epoch,
                        global_step=step,
                        queries=len(batch),
                        pairs=batch_pairs,
                        loss_total=values[0],
                        loss_supervised=values[1],
                        loss_distill=values[2],
                        grad_norm=float(grad_norm),
                        lr=scheduler.get_last_lr()[0],
                        pairs_per_sec=round(pairs_seen / elapsed, 1) if elapsed > 0 else None,
                    )
        if procs.distributed:
            summed = torch.tensor(sums, dtype=torch.float64, device=device)
            sums = distributed.all_sum(summed, "summing the epoch's loss").cpu().numpy()
        epoch_seconds = time.perf_counter() - t0
        throughput.append(pairs_seen / epoch_seconds if epoch_seconds > 0 else 0.0)
        t1 = time.perf_counter()
        val_flat = validation_scores(model, val_table, config.eval_batch_size, placement, procs)
        val_scores = split_by_groups(val_flat, val_groups)
        metrics = ranking_report(val_groups, val_scores)
        gate_report = check_gates(metrics, gates)
        record = {
            "epoch": epoch,
            "stage": stage,
            "loss_train": round(float(sums[0]) / max(1, seen), 6),
            "loss_supervised": round(float(sums[1]) / max(1, seen), 6),
            "loss_distill": round(float(sums[2]) / max(1, seen), 6) if loss.needs_teacher else None,
            **{k: round(float(metrics[k]), 6) for k in RANKING_METRICS},
            "val_queries": int(metrics["queries"]),
            "pairs_per_sec": round(throughput[-1], 1),
            "epoch_seconds": round(epoch_seconds, 2),
            "val_seconds": round(time.perf_counter() - t1, 2),
            "gates_passed": gate_report.passed,
            "gate_failures": list(gate_report.failures),
            "score": float(gate_report.score),
        }
        history.append(record)
        log.emit("rerank_epoch_end", **record)
        key = _rank_key(gate_report.passed, gate_report.score)
        if key > best_key:
            best_epoch, best_key = epoch, key
            if procs.main:
                _write_best(ckpt_dir, model, val_flat)
        if procs.main:
            save_state(ckpt_dir, model, optimizer, scheduler, epoch, history, best_epoch, 0.0)
        if config.early_stop:
            stop, reason = stop_rule.should_stop(history)
            if stop:
                stopped = f"epoch {epoch}: {reason}"
                log.emit("early_stop", epoch=epoch, reason=reason)
                break

    distributed.wait("writing the best checkpoint")  # every rank reads it back
    best_record = next(h for h in history if h["epoch"] == best_epoch)
    model.load_state_dict(read_weights(ckpt_dir / "best"))
    best_val = np.load(ckpt_dir / "best" / VAL_SCORES)
    threshold = fit_score_threshold(val_groups, split_by_groups(best_val, val_groups))
    result = RerankTrainResult(
        out_dir=out_dir,
        best_epoch=best_epoch,
        promotable=bool(best_record["gates_passed"]),
        history=history,
        stopped_early=stopped,
        train_pairs_per_sec=round(float(np.median(throughput)), 1) if throughput else 0.0,
        gate_report={
            "passed": best_record["gates_passed"],
            "failures": best_record["gate_failures"],
            "gates": gates.to_dict(),
        },
        score_threshold=threshold,
    )
    model.to("cpu")
    meta = {
        **(meta or {}),
        "loss": loss.to_dict(),
        "training": asdict(config),
        "stage": stage,
        "best_epoch": best_epoch,
        "promotable": result.promotable,
        "score_threshold": threshold["score_threshold"],
        "validation": {k: best_record[k] for k in RANKING_METRICS},
    }
    if procs.main:
        events = (out_dir / EVENTS_FILE).read_text(encoding="utf-8")
        saved = save_reranker(clf, out_dir, **meta)
        atomic_write_text(saved / EVENTS_FILE, events)
        EventLog(saved / EVENTS_FILE, run_id=log.run_id).emit(
            "checkpoint_selected",
            epoch=best_epoch,
            promotable=result.promotable,
            stopped_early=stopped,
        )
        report = {**result.to_dict(), **(report_extra or {})}
        report["parameters"] = parameter_count(clf.model)
        report["size_bytes"] = size_on_disk(saved)
        atomic_write_text(saved / REPORT_FILE, json.dumps(report, indent=2, default=str) + "\n")
    distributed.wait("writing the selected model")
    return result
