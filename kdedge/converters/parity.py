"""Parity: is an artifact the same model as the torch one it came from?

Every artifact is run on the same token ids as the torch reference (so the comparison
measures the conversion, not the tokenizer; the tokenizer is checked separately):

1. a fixed probe set (short, long, non-ASCII and empty-after-strip texts, plus eval rows)
   in padded batches: largest |logit difference| and argmax agreement;
2. with ``--eval-data``: accuracy and ECE at the calibrated temperature, and their change
   from torch, in percentage points.

GGUF artifacts run in a subprocess, because llama.cpp aborts the process on a bad file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kdedge.converters.base import Tolerance
from kdedge.distill.calibration import expected_calibration_error
from kdedge.distill.probability import softmax
from kdedge.errors import ModelError
from kdedge.runtimes.backends import open_backend
from kdedge.runtimes.backends.llamacpp import run_worker
from kdedge.runtimes.tokenizer import pad_ids

# Chosen to stress what conversions break: padding (lengths 1..max), truncation, unicode
# normalisation and accents, emoji, digits, and a text that is empty once stripped.
PROBE_TEXTS: tuple[str, ...] = (
    "hi",
    "?",
    "   \t  ",
    "where is my order",
    "CANCEL MY ORDER NOW!!!",
    "I want to return volume 1, but where is my order right now?",
    "¿Dónde está mi pedido? Ich möchte es zurückgeben.",
    "注文した漫画はいつ届きますか",
    "my package 📦 never arrived 😡",
    "order #A-123-4567 charged $59.99 twice on 2024-03-01",
    "naïve café résumé coöperate",
    "please " * 200,
    "can you tell me what the weather is like and also transfer money and set an alarm "
    "for seven and then read my last message aloud to me twice",
)
BATCH = 16
LATENCY_CALLS = 30


@dataclass
class ParityReport:
    """The evidence recorded in the manifest for one artifact."""

    probe_size: int
    max_abs_logit: float
    agreement: float
    tolerance: Tolerance
    eval_size: int = 0
    accuracy: float | None = None
    accuracy_torch: float | None = None
    accuracy_drop_points: float | None = None
    ece: float | None = None
    ece_torch: float | None = None
    latency_ms_p50: float | None = None  # batch 1, quick indicator; `kdedge bench` measures
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tolerance"] = self.tolerance.to_dict()
        d["passed"] = self.passed
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


@dataclass
class Reference:
    """Token ids and torch outputs every artifact is compared with."""

    probe_ids: list[list[int]]
    probe_logits: np.ndarray  # [P, C]
    eval_ids: list[list[int]] = field(default_factory=list)
    eval_logits: np.ndarray | None = None  # [N, C]
    eval_gold: np.ndarray | None = None  # [N]
    temperature: float = 1.0
    pad_id: int = 0


def batched_logits(run: Any, ids: Sequence[Sequence[int]], pad_id: int) -> np.ndarray:
    """Logits in input order from ``run(input_ids, mask)``, length-sorted batches."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[np.ndarray] = [np.empty(0)] * len(ids)
    for start in range(0, len(order), BATCH):
        rows = order[start : start + BATCH]
        logits = np.asarray(run(*pad_ids([ids[i] for i in rows], pad_id)), dtype=np.float32)
        for i, row in zip(rows, logits, strict=True):
            out[i] = row
    return np.stack(out)


def _in_process(backend: str, path: Path, ref: Reference) -> tuple[np.ndarray, np.ndarray, float]:
    runner = open_backend(backend, path, threads=1)
    probe = batched_logits(runner.logits, ref.probe_ids, ref.pad_id)
    ev = batched_logits(runner.logits, ref.eval_ids, ref.pad_id) if ref.eval_ids else None
    times = []
    for i in range(LATENCY_CALLS):
        row = ref.probe_ids[3 + i % 3]  # typical short queries
        start = time.perf_counter()
        runner.logits(*pad_ids([row], ref.pad_id))
        times.append(time.perf_counter() - start)
    return probe, ev, float(np.median(times) * 1e3)  # type: ignore[return-value]


def _subprocess_gguf(path: Path, ref: Reference) -> tuple[np.ndarray, np.ndarray, float]:
    rows = ref.probe_ids + ref.eval_ids
    start = time.perf_counter()
    proc = run_worker("logits", str(path), stdin=json.dumps(rows))
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        # the first line is llama.cpp's reason; an abort then adds gdb's missing-source noise
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "No such file" not in ln]
        raise ModelError(
            f"llama.cpp rejected {path.name} (exit {proc.returncode}): "
            + (lines[0][-200:] if lines else "no message")
        )
    logits = np.asarray(json.loads(proc.stdout)["logits"], dtype=np.float32)
    p = len(ref.probe_ids)
    # the worker runs one sequence at a time; its mean time per row includes model load
    return logits[:p], (logits[p:] if ref.eval_ids else None), elapsed / len(rows) * 1e3


def check(
    backend: str, path: Path, ref: Reference, tolerance: Tolerance, n_labels: int
) -> ParityReport:
    """Run the artifact at ``path`` and compare it with ``ref`` under ``tolerance``."""
    if backend == "llamacpp":
        probe, ev, latency = _subprocess_gguf(path, ref)
    else:
        probe, ev, latency = _in_process(backend, path, ref)
    if probe.shape != ref.probe_logits.shape:
        raise ModelError(
            f"{path.name} outputs {probe.shape[-1]} logits but the bundle has {n_labels} labels"
        )
    # logit and argmax evidence over every row compared: probe set, then eval data
    evaluated = ev is not None and ref.eval_logits is not None and ref.eval_gold is not None
    ours = np.concatenate([probe, ev]) if evaluated else probe
    theirs = np.concatenate([ref.probe_logits, ref.eval_logits]) if evaluated else ref.probe_logits
    report = ParityReport(
        probe_size=len(probe),
        max_abs_logit=float(np.abs(ours - theirs).max()),
        agreement=float((ours.argmax(1) == theirs.argmax(1)).mean()),
        tolerance=tolerance,
        latency_ms_p50=round(latency, 3),
    )
    if evaluated:
        gold = ref.eval_gold
        report.eval_size = len(gold)
        report.accuracy = float((ev.argmax(1) == gold).mean())
        report.accuracy_torch = float((ref.eval_logits.argmax(1) == gold).mean())
        report.accuracy_drop_points = 100 * (report.accuracy_torch - report.accuracy)
        report.ece = expected_calibration_error(softmax(ev, ref.temperature), gold)
        report.ece_torch = expected_calibration_error(
            softmax(ref.eval_logits, ref.temperature), gold
        )
    if report.max_abs_logit > tolerance.max_abs_logit:
        report.failures.append(
            f"max |Δlogit| {report.max_abs_logit:.4g} > {tolerance.max_abs_logit:g}"
        )
    if report.agreement < tolerance.min_agreement:
        report.failures.append(
            f"argmax agreement {report.agreement:.2%} < {tolerance.min_agreement:.0%}"
        )
    drop = report.accuracy_drop_points
    if drop is not None and drop > tolerance.max_accuracy_drop:
        report.failures.append(f"accuracy drop {drop:.2f} points > {tolerance.max_accuracy_drop:g}")
    return report
