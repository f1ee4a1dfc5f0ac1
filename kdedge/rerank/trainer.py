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

:func:`distill_reranker` builds the student from the teacher's layers (or from any
checkpoint), scores the training lists with the teacher through the cache (only when the
loss uses the teacher), optionally runs stage-1 feature/attention distillation on the pairs
(:func:`kdedge.distill.features.feature_distill`), trains, fits the router's
``score_threshold`` on validation and writes ``kdedge.json`` and ``training_report.json``.
"""

from __future__ import annotations

import json
import math
import shutil
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
from kdedge.distill.device import Placement, explain_device_errors, resolve
from kdedge.distill.events import EventLog
from kdedge.distill.gates import GateRule, Gates, check_gates
from kdedge.distill.models import Classifier, parameter_count, size_on_disk
from kdedge.distill.trainer import (
    load_state,
    lr_schedule,
    make_optimizer,
    open_run_dir,
    read_weights,
    save_state,
    save_weights,
)
from kdedge.errors import ConfigError, DataError
from kdedge.progress import Tracker, silent
from kdedge.rerank.losses import RerankLossConfig, rerank_loss, shard_scale
from kdedge.rerank.metrics import ranking_report
from kdedge.rerank.models import (
    PairTable,
    load_reranker,
    reranker_from_encoder,
    save_reranker,
    score_table,
    split_by_groups,
)

CHECKPOINTS = "checkpoints"
EVENTS_FILE = "events.jsonl"
REPORT_FILE = "training_report.json"
VAL_SCORES = "val_scores.npy"
RANKING_METRICS = (
    "ndcg@3",
    "ndcg@5",
    "ndcg@10",
    "mrr@10",
    "recall@3",
    "recall@5",
    "recall@10",
)
SELECTION_METRIC = "ndcg@10"


@dataclass(frozen=True)
class RerankTrainConfig:
    """Optimisation and sampling settings. ``lr`` is the peak learning rate after warmup."""

    epochs: int = 4
    queries_per_batch: int = 8
    candidates_per_query: int = 8
    max_positives: int | None = None  # default: half of candidates_per_query (rounded up)
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 0
    eval_batch_size: int = 128
    min_epochs: int = 2
    early_stop: bool = True
    min_ndcg_gain: float = 0.002
    log_every: int = 50

    def __post_init__(self) -> None:
        ints = {
            "epochs": self.epochs,
            "queries_per_batch": self.queries_per_batch,
            "candidates_per_query": self.candidates_per_query,
            "eval_batch_size": self.eval_batch_size,
            "log_every": self.log_every,
        }
        for name, value in ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if self.candidates_per_query < 2:
            raise ConfigError(
                "candidates_per_query must be >= 2 (a positive and a negative), "
                f"got {self.candidates_per_query}"
            )
        if self.max_positives is not None and self.max_positives < 1:
            raise ConfigError(f"max_positives must be >= 1, got {self.max_positives}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.min_epochs < 1:
            raise ConfigError(f"min_epochs must be >= 1, got {self.min_epochs}")
        if not self.min_ndcg_gain >= 0:
            raise ConfigError(f"min_ndcg_gain must be >= 0, got {self.min_ndcg_gain}")

    @property
    def positives_cap(self) -> int:
        return self.max_positives or -(-self.candidates_per_query // 2)


TEACHER_TRAINING = RerankTrainConfig(epochs=3, lr=5e-5, min_epochs=2)
STUDENT_TRAINING = RerankTrainConfig(epochs=4, lr=1e-4, min_epochs=2)


def default_gates(min_ndcg: float = 0.0) -> Gates:
    """``ndcg@10 >= min_ndcg``; checkpoints that pass rank by NDCG@10."""
    return Gates(rules=(GateRule(SELECTION_METRIC, min=min_ndcg),), weights={SELECTION_METRIC: 1.0})


def gates_from_toml(path: str | Path) -> Gates:
    """A gates file over ranking metrics, e.g. ``"ndcg@10" = { min = 0.8 }``."""
    return Gates.from_toml(path, extra_metrics=RANKING_METRICS)


@dataclass(frozen=True)
class RerankStopRule:
    """Stop when ``metric`` gains less than ``min_gain`` over one epoch (seed: 0.002).

    The gain is the last epoch's value minus the one before. Never fires before
    ``min_epochs`` epochs (and never after a single epoch).
    """

    min_gain: float = 0.002
    min_epochs: int = 2
    metric: str = SELECTION_METRIC

    def should_stop(self, history: Sequence[dict[str, Any]]) -> tuple[bool, str]:
        n = len(history)
        if n < max(2, self.min_epochs):
            return False, f"continue: {n} epoch(s) so far; the stop rule needs {self.min_epochs}"
        gain = history[-1][self.metric] - history[-2][self.metric]
        if gain < self.min_gain - 1e-12:
            return True, (
                f"validation {self.metric} gained {gain:+.4f} < {self.min_gain} in epoch {n}"
            )
        return False, f"continue: validation {self.metric} gained {gain:+.4f} in epoch {n}"


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


# -- the score threshold for the router ---------------------------------------------------


def fit_score_threshold(groups: Sequence[Any], scores: Sequence[np.ndarray]) -> dict[str, Any]:
    """The top-1 score below which the top candidate is usually not relevant.

    For each query the top-1 candidate's score and whether it is relevant; the threshold
    maximises F1 of "top-1 is relevant" predicted as ``score >= threshold`` (midpoints
    between sorted top-1 scores are tried, plus "accept everything"). The router answers
    "no good candidate" below it. Queries without any positive count as not relevant.
    """
    if len(groups) != len(scores) or not groups:
        raise ConfigError(f"{len(groups)} groups for {len(scores)} score lists")
    top = np.array([float(np.max(s)) for s in scores])
    good = np.array(
        [g.candidates[int(np.argmax(s))].relevance > 0 for g, s in zip(groups, scores, strict=True)]
    )
    order = np.sort(np.unique(top))
    candidates = np.concatenate([[order[0]], (order[1:] + order[:-1]) / 2]) if order.size else order
    best = (-1.0, float(order[0]), 0.0, 0.0)
    for threshold in candidates:
        accept = top >= threshold
        tp = float((accept & good).sum())
        precision = tp / accept.sum() if accept.any() else 0.0
        recall = tp / good.sum() if good.any() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if f1 > best[0] + 1e-12:
            best = (f1, float(threshold), precision, recall)
    f1, threshold, precision, recall = best
    return {
        "score_threshold": round(threshold, 6),
        "f1": round(f1, 6),
        "precision": round(precision, 6),
        "recall": round(recall, 6),
        "top1_relevant_rate": round(float(good.mean()), 6),
        "queries": len(groups),
    }


# -- list batches ------------------------------------------------------------------------


class ListData:
    """A set of query groups tokenized once, with per-candidate relevance and teacher scores."""

    def __init__(
        self,
        groups: Sequence[Any],
        tokenizer: Any,
        max_length: int,
        device: torch.device,
        teacher_scores: Sequence[np.ndarray] | None = None,
    ) -> None:
        pairs = [(g.query, c.text) for g in groups for c in g.candidates]
        self.table = PairTable(tokenizer, pairs, max_length, device)
        self.relevance = np.array(
            [c.relevance for g in groups for c in g.candidates], dtype=np.float32
        )
        self.teacher = (
            np.concatenate([np.asarray(s, dtype=np.float32) for s in teacher_scores])
            if teacher_scores is not None
            else None
        )
        if self.teacher is not None and len(self.teacher) != len(pairs):
            raise ConfigError(f"{len(self.teacher)} teacher scores for {len(pairs)} candidates")
        offsets = np.cumsum([0] + [len(g.candidates) for g in groups])
        self.rows = [np.arange(offsets[i], offsets[i + 1]) for i in range(len(groups))]
        self.max_relevance = float(self.relevance.max()) if len(self.relevance) else 1.0
        self.pairs = len(pairs)

    def sample(self, config: RerankTrainConfig, epoch: int) -> list[np.ndarray]:
        """Each query's candidates for ``epoch``: positives (capped) + random hard negatives."""
        rng = np.random.default_rng([config.seed, epoch])
        size, cap = config.candidates_per_query, config.positives_cap
        lists = []
        for rows in self.rows:
            rel = self.relevance[rows]
            pos, neg = rng.permutation(rows[rel > 0]), rng.permutation(rows[rel <= 0])
            n_pos = min(len(pos), max(cap, size - len(neg)))
            chosen = np.concatenate([pos[:n_pos], neg[: size - n_pos]])
            if len(chosen) >= 2:
                lists.append(chosen)
        order = rng.permutation(len(lists))
        return [lists[i] for i in order]

    def batches(self, config: RerankTrainConfig, epoch: int, world: int) -> list[list[np.ndarray]]:
        """``epoch``'s global batches of ``queries_per_batch`` lists; a last batch with fewer
        lists than the ``world`` processes that share it joins the batch before."""
        lists, size = self.sample(config, epoch), config.queries_per_batch
        batches = [lists[i : i + size] for i in range(0, len(lists), size)]
        if len(batches) > 1 and len(batches[-1]) < world:
            batches[-2].extend(batches.pop())
        return batches


def _list_batch(
    data: ListData, lists: Sequence[np.ndarray], device: torch.device
) -> tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Flat rows, mask [Q, C], relevance [Q, C], teacher [Q, C] (or None)."""
    width = max(len(rows) for rows in lists)
    mask = np.zeros((len(lists), width), dtype=bool)
    index = np.zeros((len(lists), width), dtype=np.int64)
    for q, rows in enumerate(lists):
        mask[q, : len(rows)] = True
        index[q, : len(rows)] = rows
    relevance = np.where(mask, data.relevance[index], 0.0)
    teacher = np.where(mask, data.teacher[index], 0.0) if data.teacher is not None else None
    flat = [int(i) for rows in lists for i in rows]

    def put(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    return (
        flat,
        put(mask),
        put(relevance.astype(np.float32)),
        (put(teacher.astype(np.float32)) if teacher is not None else None),
    )


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
                rows, mask, relevance, teacher = _list_batch(train, mine, device)
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


# -- distillation ------------------------------------------------------------------------


@dataclass
class RerankDistillResult:
    """Everything :func:`distill_reranker` did."""

    out_dir: Path
    train: RerankTrainResult
    scoring: dict[str, Any] | None
    feature_history: list[dict[str, Any]]
    layer_map: list[int] | None
    parameters: int
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "train": self.train.to_dict(),
            "scoring": self.scoring,
            "feature_history": self.feature_history,
            "layer_map": self.layer_map,
            "parameters": self.parameters,
            "size_bytes": self.size_bytes,
        }


def build_student(
    teacher: Classifier,
    *,
    layers: int | None = None,
    layer_map: Sequence[int] | None = None,
    student_dir: str | Path | None = None,
    seed: int = 0,
) -> tuple[Classifier, list[int] | None]:
    """The student before training: teacher layers (default half), or a checkpoint.

    With ``student_dir`` and ``layers``/``layer_map``, the layers are taken from that
    checkpoint instead of the teacher (e.g. the base encoder's own layers).
    """
    from kdedge.distill.student import default_layer_map, student_from_teacher
    from kdedge.rerank.models import is_reranker

    if layers is not None and layer_map is not None:
        raise ConfigError("give layers or layer_map, not both")
    source = teacher
    if student_dir is not None:
        source = (
            load_reranker(student_dir, max_length=teacher.max_length)
            if is_reranker(student_dir)
            else reranker_from_encoder(student_dir, max_length=teacher.max_length, seed=seed)
        )
        if layers is None and layer_map is None:
            source.meta.update(role="student")
            return source, None
    n = source.model.config.num_hidden_layers
    chosen = list(layer_map) if layer_map else default_layer_map(n, layers or max(1, n // 2))
    student = student_from_teacher(source, chosen)
    return student, student.meta["layer_map"]


def distill_reranker(
    teacher_dir: str | Path,
    train_groups: Any,
    val_groups: Any,
    out_dir: str | Path,
    *,
    layers: int | None = None,
    layer_map: Sequence[int] | None = None,
    student_dir: str | Path | None = None,
    loss: RerankLossConfig = RerankLossConfig(),  # noqa: B008 - frozen
    config: RerankTrainConfig = STUDENT_TRAINING,
    stage1_epochs: int = 0,
    cache_dir: str | Path | None = None,
    max_length: int | None = None,
    device: str | Placement = "auto",
    precision: str = "auto",
    gates: Gates | None = None,
    resume: bool = False,
    overwrite: bool = False,
    track: Tracker = silent,
) -> RerankDistillResult:
    """Distill the reranker in ``teacher_dir`` into a student written to ``out_dir``.

    ``loss.alpha = 1`` is the labels-only baseline: the same student, trained on relevance
    alone (the teacher then only provides the initial layers). Teacher scores come through
    the cache in ``cache_dir`` (default ``OUT.cache`` beside ``out_dir``), so a sweep pays
    for the teacher once. ``stage1_epochs`` > 0 first matches the teacher's hidden states
    and attention maps on the training pairs (student and teacher must tokenize alike).
    """
    from kdedge.rerank.scoring import score_groups_cached

    placement = as_placement(device, precision)
    train_groups = as_groups(train_groups, "training")
    val_groups = as_groups(val_groups, "validation")
    out = Path(out_dir)
    check_out_dir(out, resume, overwrite)
    if stage1_epochs < 0:
        raise ConfigError(f"stage1_epochs must be >= 0, got {stage1_epochs}")
    teacher = load_reranker(teacher_dir, max_length=max_length)
    cache = Path(cache_dir) if cache_dir is not None else out.with_name(out.name + ".cache")

    teacher_train, scoring = None, None
    if loss.needs_teacher:
        teacher_train, report = score_groups_cached(
            teacher_dir,
            train_groups,
            cache,
            device=placement,
            batch_size=config.eval_batch_size,
            teacher=teacher,
            track=track,
        )
        scoring = report.to_dict()

    student, chosen = build_student(
        teacher, layers=layers, layer_map=layer_map, student_dir=student_dir, seed=config.seed
    )
    student.meta.update(
        task="rerank",
        role="student",
        max_length=teacher.max_length,
        teacher=str(teacher_dir),
        labels_only=loss.labels_only,
        data={
            "train": describe_groups(train_groups),
            "validation": describe_groups(val_groups),
        },
    )
    main = distributed.current().main
    distributed.wait("checking the output directory")
    if overwrite and not resume and out.exists() and main:
        shutil.rmtree(out)
    distributed.wait("clearing the output directory")
    resuming = resume and (out / CHECKPOINTS / "last" / "state.pt").is_file()
    feature_history: list[dict[str, Any]] = []
    if stage1_epochs > 0 and not resuming:  # a resumed run continues from its stage-2 state
        from kdedge.distill.features import feature_distill

        # Stage 1 shares each batch of pairs out like the intent path (feature_distill).
        teacher_eager = load_reranker(teacher_dir, max_length=max_length, eager_attention=True)
        if main:
            out.mkdir(parents=True, exist_ok=True)
        feature_history = feature_distill(
            student,
            teacher_eager,
            [(g.query, c.text) for g in train_groups for c in g.candidates],
            placement,
            epochs=stage1_epochs,
            batch_size=config.queries_per_batch * config.candidates_per_query,
            seed=config.seed,
            log=EventLog(out / EVENTS_FILE if main else None, run_id=f"features_{out.name}"),
            track=track,
        )
        student.meta["feature_history"] = feature_history
    del teacher
    result = fit_reranker(
        student,
        train_groups,
        val_groups,
        out_dir=out,
        placement=placement,
        loss=loss,
        config=config,
        teacher_train=teacher_train,
        gates=gates,
        stage="rerank_labels_only" if loss.labels_only else f"rerank_{loss.kind}",
        resume=resume,
        overwrite=False,
        meta={"scoring": scoring},
        report_extra={"scoring": scoring, "feature_history": feature_history},
        track=track,
    )
    return RerankDistillResult(
        out_dir=out,
        train=result,
        scoring=scoring,
        feature_history=feature_history,
        layer_map=chosen,
        parameters=parameter_count(student.model),
        size_bytes=size_on_disk(out),
    )


def describe_groups(groups: Sequence[Any]) -> dict[str, Any]:
    """Counts of queries and pairs, for reports and provenance."""
    return {
        "queries": len(groups),
        "candidates": sum(len(g.candidates) for g in groups),
        "positives": sum(1 for g in groups for c in g.candidates if c.relevance > 0),
    }
