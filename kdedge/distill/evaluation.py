"""``kdedge calibrate`` and ``kdedge evaluate`` on a model directory."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdedge.atomic import atomic_write_text
from kdedge.data.io import check_labels, load_examples
from kdedge.data.records import Example
from kdedge.distill.calibration import CalibrationResult, calibrate, plot_reliability
from kdedge.distill.device import Placement
from kdedge.distill.gates import GateReport, Gates, check_gates
from kdedge.distill.inference import encode, pad_batch, predict_logits
from kdedge.distill.metrics import classification_report
from kdedge.distill.models import (
    Classifier,
    load_classifier,
    parameter_count,
    size_on_disk,
    update_meta,
)
from kdedge.distill.probability import softmax
from kdedge.distill.taxonomy import Taxonomy
from kdedge.errors import DataError
from kdedge.progress import Tracker, silent

CALIBRATION_FILE = "calibration.json"
RELIABILITY_PNG = "reliability.png"


def predict_labeled(
    model_dir: str | Path, data: str | Path, placement: Placement, track: Tracker, description: str
) -> tuple[Classifier, list[Example], np.ndarray, np.ndarray]:
    """Load a model and a labeled file; return (model, rows, logits [N, C], gold [N])."""
    clf = load_classifier(model_dir)
    examples = load_examples(data, require_labels=True)
    check_labels(examples, clf.labels)
    logits = predict_logits(
        clf.model,
        clf.tokenizer,
        [e.text for e in examples],
        placement,
        max_length=clf.max_length,
        track=track,
        description=description,
    )
    gold = np.array(clf.labels.indices([e.label for e in examples]))
    return clf, examples, logits, gold


def calibrate_model(
    model_dir: str | Path,
    holdout: str | Path,
    placement: Placement,
    *,
    n_bins: int = 15,
    plot: bool = True,
    track: Tracker = silent,
) -> CalibrationResult:
    """Fit a temperature on ``holdout`` and store it in the model's kdedge.json.

    Also writes ``calibration.json`` and a reliability diagram (``reliability.png``) into
    the model directory. The holdout must not be the data the model was trained on.
    """
    _, _, logits, gold = predict_labeled(model_dir, holdout, placement, track, "calibrating")
    return save_calibration(model_dir, logits, gold, holdout, n_bins=n_bins, plot=plot)


def save_calibration(
    model_dir: str | Path,
    logits: np.ndarray,
    gold: np.ndarray,
    holdout: str | Path,
    *,
    n_bins: int = 15,
    plot: bool = True,
) -> CalibrationResult:
    """:func:`calibrate_model` for holdout logits already computed."""
    result = calibrate(logits, gold, n_bins=n_bins)
    model_dir = Path(model_dir)
    update_meta(model_dir, temperature=result.temperature, calibration=result.to_dict())
    atomic_write_text(
        model_dir / CALIBRATION_FILE,
        json.dumps({**result.to_dict(), "holdout": str(holdout)}, indent=2) + "\n",
    )
    if plot:
        plot_reliability(
            softmax(logits),
            softmax(logits, result.temperature),
            gold,
            model_dir / RELIABILITY_PNG,
            n_bins=n_bins,
            title=f"{model_dir.name}: T = {result.temperature:.2f}",
        )
    return result


@dataclass
class EvaluationReport:
    """Metrics, gates and footprint of one model on one labeled file."""

    model: str
    data: str
    temperature: float
    metrics: dict[str, Any]
    gates: GateReport
    parameters: int
    size_bytes: int
    latency: dict[str, Any] | None

    @property
    def passed(self) -> bool:
        return self.gates.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "data": self.data,
            "temperature": self.temperature,
            "passed": self.passed,
            "metrics": self.metrics,
            "gates": self.gates.to_dict(),
            "parameters": self.parameters,
            "size_bytes": self.size_bytes,
            "latency": self.latency,
        }


def evaluate_model(
    model_dir: str | Path,
    data: str | Path,
    placement: Placement,
    *,
    gates: Gates | None = None,
    rare_labels: Sequence[str] | None = None,
    oos_label: str | None = None,
    latency_samples: int = 100,
    track: Tracker = silent,
) -> EvaluationReport:
    """Evaluate with the calibrated temperature; rare/OOS labels default to the model's own."""
    clf, examples, logits, gold = predict_labeled(model_dir, data, placement, track, "evaluating")
    saved = Taxonomy.from_meta(clf.meta)
    rare = list(rare_labels) if rare_labels is not None else list(saved.rare_labels)
    oos = oos_label or saved.oos_label
    report = classification_report(
        softmax(logits, clf.temperature),
        gold,
        clf.labels.names,
        oos_label=oos if oos in clf.labels else None,
        rare_labels=[r for r in rare if r in clf.labels],
        slices=[e.slice for e in examples],
    )
    latency = (
        cpu_latency(clf, [e.text for e in examples], latency_samples) if latency_samples else None
    )
    metrics = report.to_dict()
    extra = {f"latency_ms_{k}": v for k, v in (latency or {}).items() if k in ("p50", "p95")}
    gate_report = check_gates({**metrics, **extra}, gates or Gates.default())
    return EvaluationReport(
        model=str(model_dir),
        data=str(data),
        temperature=clf.temperature,
        metrics=metrics,
        gates=gate_report,
        parameters=parameter_count(clf.model),
        size_bytes=size_on_disk(model_dir),
        latency=latency,
    )


@torch.inference_mode()
def cpu_latency(clf: Classifier, texts: Sequence[str], samples: int = 100) -> dict[str, Any]:
    """Torch CPU latency at batch 1 over real texts: p50/p95 in ms after 10 warm-up calls.

    A quick indicator for reports; ``kdedge bench`` is the measurement to quote.
    """
    if not texts:
        raise DataError("latency needs at least one text")
    model = clf.model.to("cpu").eval()
    ids = encode(
        clf.tokenizer, [texts[i % len(texts)] for i in range(samples + 10)], clf.max_length
    )
    times = []
    for i, row in enumerate(ids):
        input_ids, mask = pad_batch([row], clf.tokenizer.pad_token_id)
        start = time.perf_counter()
        model(input_ids=input_ids, attention_mask=mask)
        if i >= 10:
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "p50": round(statistics.median(times), 3),
        "p95": round(times[int(0.95 * (len(times) - 1))], 3),
        "samples": len(times),
        "threads": torch.get_num_threads(),
        "batch": 1,
    }
