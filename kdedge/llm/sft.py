"""LoRA supervised fine-tuning of a causal LM on gated teacher answers, chosen by gates.

Each row becomes the shared chat prompt (:mod:`kdedge.llm.prompts`) followed by the target
answer; only answer tokens (and the end-of-turn token, so the student learns to stop)
carry loss (:mod:`kdedge.llm.loss`). Rows are weighted (human-corrected 2.0,
refusal/escalation 2.5, hedged teacher answers 0.5; :func:`kdedge.llm.mix.row_weight`) and
the loss of a batch is ``sum(w_i * loss_i) / (batch * mean weight of the dataset)``, so a
weight of 2 counts as two rows across the whole run, not only against its batch neighbours.

After every epoch the student answers the validation prompts greedily and the answers are
scored like release candidates (:mod:`kdedge.llm.evaluate`). The seeds' response-model stop
rules end training early: after ``min_epochs``, stop when the hallucination rate rises by
more than 0.3 points, refusal precision drops, or teacher agreement gains less than 0.2
points. The epoch kept is the best-scoring one that passes the gates, not the lowest loss.
Its adapter is merged into the base weights and saved as a plain Hugging Face model that
``kdedge export`` turns into GGUF.

A hand-written loop rather than trl's SFTTrainer: per-row weights and per-epoch generation
gates are the point here, and trl supports neither without subclassing most of it.

Under ``torchrun`` / ``accelerate launch`` (:mod:`kdedge.distill.distributed`) every process
builds the same global batches and trains on its share of each; accelerate wraps the loss
module (:class:`kdedge.llm.loss.AnswerLoss`) for gradient sync (DDP, or FSDP from the
accelerate config), and each share's loss is scaled by ``world / global batch`` so the
averaged gradient is the global batch's. The validation prompts are answered in shares too
(:func:`kdedge.llm.generator.generate_all`: the same batches as one process, so the same
greedy answers) and every rank scores all answers, so every rank takes the same stop
decision. Only rank 0 writes ``.kdedge-work``, the events and the merged model.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from kdedge.atomic import atomic_dir
from kdedge.distill import distributed
from kdedge.distill.device import explain_device_errors, resolve
from kdedge.distill.events import EventLog
from kdedge.distill.models import fingerprint
from kdedge.errors import ConfigError, DataError, ModelError
from kdedge.extras import require
from kdedge.llm.evaluate import Gates, score
from kdedge.llm.generator import TorchGenerator, generate_all
from kdedge.llm.loss import AnswerLoss, collate, encode, length_batches
from kdedge.llm.prompts import SYSTEM_PROMPT, USER_TEMPLATE
from kdedge.llm.rows import read_eval_rows, read_rows
from kdedge.llm.sft_fsdp import adapter_state, check_fsdp, fsdp_active, full_weights
from kdedge.llm.sft_state import STATE_FILE, WORK_DIR, read_adapter, read_state, save_epoch
from kdedge.progress import Tracker, silent

META_FILE = "kdedge.json"
REPORT_FILE = "training_report.json"
LLAMA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class SftConfig:
    """Knobs of a LoRA SFT run (defaults suit a ~100M-1B student on a few thousand rows)."""

    epochs: int = 3
    min_epochs: int = 1
    batch_size: int = 8
    lr: float = 2e-4
    warmup_ratio: float = 0.05
    max_length: int = 512
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = LLAMA_MODULES
    eval_max_new_tokens: int = 96
    eval_batch_size: int = 8
    eval_limit: int | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        checks = (
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (1 <= self.min_epochs <= self.epochs, "min_epochs must be in [1, epochs]"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.lora_r >= 1, f"lora_r must be >= 1, got {self.lora_r}"),
            (self.max_length >= 16, f"max_length must be >= 16, got {self.max_length}"),
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


@dataclass
class SftReport:
    out_dir: Path
    history: list[dict[str, Any]]
    best_epoch: int | None
    promotable: bool
    stopped_early: str | None
    baseline: dict[str, Any] | None
    train_rows: int
    skipped_rows: int
    effective_rows: float
    placement: str
    gates: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        return d


def _score(history: dict[str, Any]) -> float:
    """The seeds' weighted checkpoint score, over the signals measured here."""
    return (
        0.30 * (history.get("teacher_agreement") or 0)
        - 0.20 * (history.get("hallucination_rate") or 0)
        + 0.10 * (history.get("refusal_precision") or 0)
        + 0.10 * (history.get("content_f1") or 0)
    )


def stop_reason(history: list[dict[str, Any]], min_epochs: int) -> str | None:
    """The seeds' response-model stop rules, applied to the last two evaluations."""
    if len(history) < 2 or len(history) < min_epochs:
        return None
    prev, last = history[-2], history[-1]

    def delta(key: str) -> float | None:
        a, b = prev.get(key), last.get(key)
        return None if a is None or b is None else b - a

    rise = delta("hallucination_rate")
    if rise is not None and rise > 0.003:
        return f"hallucination rate rose by {rise * 100:.2f} points (> 0.3)"
    drop = delta("refusal_precision")
    if drop is not None and drop < 0:
        return f"refusal precision dropped by {-drop * 100:.2f} points"
    gain = delta("teacher_agreement")
    if gain is not None and gain < 0.002:
        return f"teacher agreement gained {gain * 100:.2f} points (< 0.2)"
    return None


def distill(
    student: str | Path,
    train_data: str | Path,
    out_dir: str | Path,
    *,
    eval_data: str | Path,
    catalog: str | Path,
    config: SftConfig | None = None,
    gates: Gates | None = None,
    system: str = SYSTEM_PROMPT,
    overwrite: bool = False,
    resume: bool = False,
    track: Tracker = silent,
    log: EventLog | None = None,
) -> SftReport:
    """Fine-tune a LoRA adapter on ``student`` (a local HF causal LM) and save the merged
    model chosen by the gates in ``out_dir``; returns the per-epoch report.

    Every epoch leaves its adapter, the optimizer and the history in ``out_dir/.kdedge-work``;
    ``resume=True`` continues a killed run from its last finished epoch."""
    require("peft", "llm", "LoRA fine-tuning")
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    from kdedge.llm.catalog import Catalog
    from kdedge.llm.models import load_causal_lm

    config, gates = config or SftConfig(), gates or Gates()
    out = Path(out_dir)
    work = out / WORK_DIR
    if out.exists() and any(p.name != WORK_DIR for p in out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} exists and is not empty; pass --overwrite to replace it")
    saved = work / STATE_FILE
    if resume and not saved.is_file():
        raise ConfigError(f"nothing to resume in {out}: no finished epoch was saved there")
    if saved.is_file() and not resume and not overwrite:
        raise ConfigError(
            f"{out} holds an interrupted run; pass --resume to continue it, "
            "or --overwrite to start again"
        )
    placement = resolve(config.device, config.precision)  # joins the group under a launcher
    procs = distributed.current()
    if procs.distributed and fsdp_active():
        check_fsdp(resume)
    distributed.wait("checking the output directory")  # no rank checks after rank 0 clears it
    if overwrite and not resume and procs.main:
        shutil.rmtree(work, ignore_errors=True)
    distributed.wait("clearing the work directory")
    rows = read_rows(train_data)
    eval_rows = read_eval_rows(eval_data, config.eval_limit)
    cat = Catalog.load(catalog)
    model, tokenizer = load_causal_lm(student)
    if tokenizer.chat_template is None:
        raise ModelError(f"{student}: the tokenizer has no chat template; SFT needs one")
    names = [n for n, _ in model.named_modules()]
    missing = [m for m in config.target_modules if not any(n.endswith(m) for n in names)]
    if missing:
        raise ConfigError(
            f"{student} has no modules named {', '.join(missing)}; set target_modules to its "
            "attention/MLP projection names"
        )

    encoded, weights, skipped = [], [], 0
    for row in rows:
        item = encode(tokenizer, row, system, config.max_length)
        if item is None:
            skipped += 1
            continue
        encoded.append(item)
        weights.append(row.weight)
    if not encoded:
        raise DataError(
            f"no row fits in max_length={config.max_length} tokens; raise --max-length",
            path=train_data,
        )
    if len(encoded) < procs.world:
        raise ConfigError(
            f"{len(encoded)} training rows cannot be shared by {procs.world} processes"
        )
    if config.batch_size < procs.world:
        raise ConfigError(
            f"batch_size={config.batch_size} cannot be shared by {procs.world} processes; "
            "raise --batch-size to at least the number of processes"
        )
    mean_weight = sum(weights) / len(weights)
    run_id = log.run_id if log is not None else "llm_sft"
    log = log if log is not None and procs.main else EventLog(None, run_id)  # rank 0 logs

    torch.manual_seed(config.seed)
    model.to(placement.device)
    state = read_state(saved) if resume else None
    with explain_device_errors(placement):
        generator = TorchGenerator(model, tokenizer, placement, system)
        if state is not None:
            baseline = state["baseline"]
        else:
            answers, _, _ = generate_all(
                generator, eval_rows, config.eval_batch_size, config.eval_max_new_tokens, track
            )
            baseline, _ = score(eval_rows, answers, cat)
            log.emit("gate_eval", stage="base", epoch=0, **baseline)

        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.target_modules),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
        generator.model = model
        history: list[dict[str, Any]] = []
        stopped = None
        first = 1
        if state is not None:  # before wrapping, so FSDP shards the resumed weights
            history = state["history"]
            set_peft_model_state_dict(model, read_adapter(work, len(history)))
        # DDP / FSDP under a launcher; the optimizer takes the wrapped module's parameters.
        trained = distributed.prepare_model(AnswerLoss(model))
        params = [p for p in trained.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
        steps_per_epoch = math.ceil(len(encoded) / config.batch_size)
        total = steps_per_epoch * config.epochs
        warmup = max(1, int(total * config.warmup_ratio))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / max(1, total - warmup)),
        )
        lengths = [len(x) for x, _ in encoded]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        if state is not None:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            stopped = stop_reason(history, config.min_epochs)  # it may have fired already
            first = config.epochs + 1 if stopped else len(history) + 1
            log.emit("resume", epoch=len(history))
        for epoch in range(first, config.epochs + 1):
            trained.train()
            torch.manual_seed(config.seed + epoch)  # dropout: the same whether resumed or not
            start = time.perf_counter()
            sums = torch.zeros(3, dtype=torch.float64)  # tokens, loss x rows, rows (this rank)
            batches = length_batches(
                lengths,
                config.batch_size,
                random.Random(config.seed + epoch),
                min_rows=procs.world,
            )
            with distributed.explain_peer_errors("training"):
                for batch in track(batches, f"epoch {epoch}/{config.epochs}", len(batches)):
                    mine = distributed.shard_rows(batch, procs)
                    data = collate([encoded[i] for i in mine], pad, placement.device)
                    w = torch.tensor([weights[i] for i in mine], device=placement.device)
                    with placement.autocast():
                        weighted, mean_loss = trained(data, w)
                    # DDP averages over ranks: world / global batch makes it the global mean.
                    loss = weighted * procs.world / (len(batch) * mean_weight)
                    loss.backward()
                    distributed.clip_grad_norm(trained, 1.0)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    sums += torch.tensor(
                        [int(data["mask"].sum()), float(mean_loss.detach()) * len(mine), len(mine)],
                        dtype=torch.float64,
                    )
            tokens, loss_sum, seen = distributed.all_sum(
                sums.to(placement.device), "summing the epoch's loss"
            ).tolist()
            train_s = time.perf_counter() - start
            with full_weights(trained):
                answers, gen_tokens, gen_s = generate_all(
                    generator, eval_rows, config.eval_batch_size, config.eval_max_new_tokens, track
                )
            found, _ = score(eval_rows, answers, cat)
            entry = {
                "epoch": epoch,
                "train_loss": round(loss_sum / max(seen, 1), 4),
                **found,
                "train_tokens_per_s": round(tokens / train_s, 1),
                "train_samples_per_s": round(seen / train_s, 2),
                "eval_tokens_per_s": round(gen_tokens / gen_s, 1) if gen_s else None,
                "seconds": round(train_s + gen_s, 1),
            }
            entry["gate_failures"] = gates.check(entry)
            entry["gates_passed"] = not entry["gate_failures"]
            entry["score"] = round(_score(entry), 5)
            history.append(entry)
            adapter = adapter_state(trained, model)
            if procs.main:
                save_epoch(work, epoch, adapter, optimizer, scheduler, history, baseline)
            log.emit("distilled_model_eval", stage="lora_sft", **entry)
            stopped = stop_reason(history, config.min_epochs)
            if stopped:
                break

        passing = [h for h in history if h["gates_passed"]]
        pool = passing or history
        best = max(pool, key=lambda h: h["score"])
        merged = None
        if procs.main:
            if fsdp_active():  # the trained model's weights are sharded: merge into a fresh base
                model = get_peft_model(load_causal_lm(student)[0], lora)
            set_peft_model_state_dict(model, read_adapter(work, best["epoch"]))
            merged = model.merge_and_unload()

    report = SftReport(
        out_dir=out,
        history=history,
        best_epoch=best["epoch"],
        promotable=bool(passing),
        stopped_early=stopped,
        baseline=baseline,
        train_rows=len(encoded),
        skipped_rows=skipped,
        effective_rows=round(sum(weights), 1),
        placement=f"{placement.name}/{placement.precision}",
        gates=gates.to_dict(),
    )
    meta = {
        "role": "student",
        "task": "generate",
        "prompt": {"system": system, "user_template": USER_TEMPLATE},
        "base": str(Path(student).resolve()),
        "base_sha256": fingerprint(student),
        "best_epoch": best["epoch"],
        "promotable": report.promotable,
        "lora": {
            "r": config.lora_r,
            "alpha": config.lora_alpha,
            "dropout": config.lora_dropout,
            "target_modules": list(config.target_modules),
            "merged": True,
        },
        "data": {"train": str(train_data), "eval": str(eval_data), "catalog": str(catalog)},
        "config": asdict(config),
    }
    if merged is not None:  # rank 0
        merged = merged.to("cpu").float()
        with atomic_dir(out) as staging:
            merged.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            (staging / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
            (staging / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        shutil.rmtree(out / WORK_DIR, ignore_errors=True)
    distributed.wait("writing the merged model")
    return report
