"""``export_bundle``: convert a classifier to several formats, prove each, pack a bundle.

Every artifact is checked against the torch model (see :mod:`kdedge.converters.parity`)
with the tolerance its converter declares. An artifact that fails is left out of the
bundle unless ``keep_failed`` is set, in which case it ships marked ``failed``. The bundle
directory appears in one rename, so a crash never leaves half a bundle behind.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdedge import __version__
from kdedge.atomic import atomic_dir
from kdedge.converters.base import ConvertInput, ExportOptions
from kdedge.converters.parity import PROBE_TEXTS, ParityReport, Reference, batched_logits, check
from kdedge.converters.registry import get_format, known_formats, load_converter
from kdedge.data.io import check_labels, load_examples
from kdedge.distill.models import Classifier, fingerprint, load_classifier, size_on_disk
from kdedge.distill.taxonomy import Taxonomy
from kdedge.errors import ConfigError, KdedgeError, ModelError
from kdedge.progress import Tracker, silent
from kdedge.runtimes.bundle import (
    TOKENIZER,
    Artifact,
    FileEntry,
    Manifest,
    relative,
    sha256_file,
    write_manifest,
)
from kdedge.runtimes.tokenizer import Tokenizer

# Router defaults written into every bundle; `kdedge route fit` (runtime) tunes them.
ROUTER_DEFAULTS = {
    "confidence_threshold": 0.5,
    "risk_threshold": 0.5,
    "low_confidence_action": "clarify",
    "max_fallback_rate": 0.2,
}


@dataclass
class ArtifactResult:
    """What happened to one requested format."""

    name: str
    status: str  # passed | failed | error
    parity: ParityReport | None = None
    size_bytes: int | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    shipped: bool = False
    selected: bool = False

    @property
    def reason(self) -> str:
        if self.error:
            return self.error
        return "; ".join(self.parity.failures) if self.parity else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "shipped": self.shipped,
            "selected": self.selected,
            "size_bytes": self.size_bytes,
            "parity": self.parity.to_dict() if self.parity else None,
            "error": self.error,
            "warnings": self.warnings,
            "details": self.details,
        }


@dataclass
class ExportReport:
    model_dir: Path
    out_dir: Path | None  # None when nothing passed and no bundle was written
    torch_size_bytes: int
    torch_accuracy: float | None
    results: list[ArtifactResult]
    selection: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[ArtifactResult]:
        return [r for r in self.results if r.status != "passed"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_dir": str(self.model_dir),
            "out_dir": str(self.out_dir) if self.out_dir else None,
            "torch_size_bytes": self.torch_size_bytes,
            "torch_accuracy": self.torch_accuracy,
            "artifacts": [r.to_dict() for r in self.results],
            "selection": self.selection,
            "failed": [r.name for r in self.failed],
        }


def _texts(path: str | Path | None, *, labeled: bool) -> list[Any]:
    return [] if path is None else load_examples(path, require_labels=labeled)


def _check_tokenizer(clf: Classifier, tok: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Ids from the bundle's tokenizer.json, after proving they equal the model's own."""
    ours = tok.ids(texts)
    theirs = clf.tokenizer(list(texts), truncation=True, max_length=clf.max_length)["input_ids"]
    for text, a, b in zip(texts, ours, theirs, strict=True):
        if list(a) != list(b):
            raise ModelError(
                f"the exported tokenizer.json tokenizes {text[:40]!r} differently from the "
                "model's tokenizer; the model directory's tokenizer files disagree"
            )
    return ours


@torch.inference_mode()
def _torch_logits(clf: Classifier, ids: list[list[int]], pad_id: int) -> np.ndarray:
    model = clf.model.eval().float().cpu()

    def run(input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask))
        return out.logits.numpy()

    return batched_logits(run, ids, pad_id)


def _gates(model_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    report_file = model_dir / "training_report.json"
    gates: dict[str, Any] = {"promotable": meta.get("promotable"), "epoch": meta.get("best_epoch")}
    if report_file.is_file():
        report = json.loads(report_file.read_text(encoding="utf-8"))
        chosen = [h for h in report.get("history", []) if h.get("epoch") == meta.get("best_epoch")]
        if chosen:
            gates["passed"] = chosen[0].get("gates_passed")
            gates["failures"] = chosen[0].get("gate_failures", [])
    return gates


def _provenance(model_dir: Path, meta: dict[str, Any], data: dict[str, Path | None]) -> dict:
    return {
        "source_model": str(model_dir.resolve()),
        "source_sha256": fingerprint(model_dir),
        "role": meta.get("role"),
        "teachers": meta.get("teachers", []),
        "training_data": meta.get("data"),
        "loss": meta.get("loss"),
        "data_sha256": {k: sha256_file(v) for k, v in data.items() if v is not None},
        "kdedge_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def export_bundle(
    model_dir: str | Path,
    formats: Sequence[str],
    out_dir: str | Path,
    *,
    eval_data: str | Path | None = None,
    calibration_data: str | Path | None = None,
    keep_failed: bool = False,
    select_within: float | None = None,
    options: ExportOptions | None = None,
    overwrite: bool = False,
    track: Tracker = silent,
) -> ExportReport:
    """Convert ``model_dir`` to each of ``formats``, check parity, write a bundle.

    ``select_within`` keeps only the fastest passing artifact whose accuracy drop on
    ``eval_data`` is at most that many points (Olive's and INC's "fastest within budget").
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    options = options or ExportOptions()
    formats = list(dict.fromkeys(formats))
    if not formats:
        raise ConfigError("no --format given; choose from " + ", ".join(known_formats()))
    specs = [get_format(f) for f in formats]  # unknown names fail before any work
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ConfigError(f"{out_dir} exists and is not empty; pass --overwrite to replace it")
    if select_within is not None and eval_data is None:
        raise ConfigError("--select fastest-within needs --eval-data to measure accuracy drops")
    converters = [load_converter(s.name) for s in specs]  # a missing extra fails here
    needing = [c.name for c in converters if c.needs_calibration]
    if needing and calibration_data is None:
        raise ConfigError(
            f"{', '.join(needing)} need --calibration-data (held-out texts, e.g. validation.jsonl)"
        )

    clf = load_classifier(model_dir)
    eval_rows = _texts(eval_data, labeled=True)
    if eval_rows:
        check_labels(eval_rows, clf.labels)
    calibration = [e.text for e in _texts(calibration_data, labeled=False)]

    results: list[ArtifactResult] = []
    report: ExportReport | None = None
    try:
        with (
            tempfile.TemporaryDirectory(prefix="kdedge-export-") as scratch,
            atomic_dir(out_dir) as staging,
        ):
            clf.tokenizer.backend_tokenizer.save(str(staging / TOKENIZER))
            tok = Tokenizer(staging / TOKENIZER, clf.max_length)
            probe_ids = _check_tokenizer(clf, tok, PROBE_TEXTS)
            eval_ids = _check_tokenizer(clf, tok, [e.text for e in eval_rows]) if eval_rows else []
            ref = Reference(
                probe_ids=probe_ids,
                probe_logits=_torch_logits(clf, probe_ids, tok.pad_id),
                eval_ids=eval_ids,
                eval_logits=_torch_logits(clf, eval_ids, tok.pad_id) if eval_ids else None,
                eval_gold=np.array(clf.labels.indices([e.label for e in eval_rows]))
                if eval_rows
                else None,
                temperature=clf.temperature,
                pad_id=tok.pad_id,
            )
            inp = ConvertInput(clf, calibration, options, workdir=Path(scratch) / "work")
            artifacts: dict[str, Artifact] = {}
            for conv in track(converters, "exporting", total=len(converters)):
                result, artifact = _one(conv, inp, ref, staging, len(clf.labels))
                results.append(result)
                if artifact is not None and (result.status == "passed" or keep_failed):
                    artifacts[conv.name] = artifact
                else:
                    shutil.rmtree(staging / conv.name, ignore_errors=True)

            selection = _select(results, select_within) if select_within is not None else {}
            if selection.get("selected"):
                for name in list(artifacts):
                    if name != selection["selected"]:
                        shutil.rmtree(staging / name, ignore_errors=True)
                        del artifacts[name]
            for r in results:
                r.shipped = r.name in artifacts
                r.selected = r.name == selection.get("selected")

            report = ExportReport(
                model_dir=model_dir,
                out_dir=None,
                torch_size_bytes=size_on_disk(model_dir),
                torch_accuracy=float((ref.eval_logits.argmax(1) == ref.eval_gold).mean())
                if ref.eval_logits is not None
                else None,
                results=results,
                selection=selection,
            )
            if not artifacts:
                raise _NothingShipped
            taxonomy = Taxonomy.from_meta(clf.meta)
            manifest = Manifest(
                task="intent",
                labels=clf.labels.names,
                max_length=clf.max_length,
                temperature=clf.temperature,
                artifacts=tuple(artifacts.values()),
                tokenizer=FileEntry.of(staging, TOKENIZER),
                router={
                    **ROUTER_DEFAULTS,
                    "risk_labels": list(taxonomy.risk_labels),
                    "oos_label": taxonomy.oos_label,
                    "rare_labels": list(taxonomy.rare_labels),
                },
                calibration=dict(clf.meta.get("calibration") or {}),
                gates=_gates(model_dir, clf.meta),
                provenance=_provenance(
                    model_dir, clf.meta, {"eval": eval_data, "calibration": calibration_data}
                ),
                selection=selection,
            )
            write_manifest(staging, manifest)
            report.out_dir = out_dir
    except _NothingShipped:
        pass
    assert report is not None
    return report


class _NothingShipped(Exception):
    """Raised inside the bundle's atomic_dir to discard it when no artifact passed."""


def _one(
    conv: Any, inp: ConvertInput, ref: Reference, staging: Path, n_labels: int
) -> tuple[ArtifactResult, Artifact | None]:
    folder = staging / conv.name
    folder.mkdir()
    try:
        converted = conv.convert(inp, folder)
        parity = check(conv.backend, converted.files[0], ref, conv.tolerance, n_labels)
    except KdedgeError as exc:
        return ArtifactResult(conv.name, "error", error=str(exc)), None
    files = tuple(FileEntry.of(staging, relative(staging, f)) for f in converted.files)
    status = "passed" if parity.passed else "failed"
    artifact = Artifact(
        name=conv.name,
        format=conv.format,
        precision=conv.precision,
        backend=conv.backend,
        files=files,
        status=status,
        target_hints=conv.target_hints,
        parity=parity.to_dict(),
        details=converted.details,
    )
    result = ArtifactResult(
        conv.name,
        status,
        parity=parity,
        size_bytes=artifact.size_bytes,
        warnings=converted.warnings,
        details=converted.details,
    )
    return result, artifact


def _select(results: list[ArtifactResult], budget: float) -> dict[str, Any]:
    """The fastest passing artifact whose accuracy drop is within ``budget`` points."""
    eligible = [
        r
        for r in results
        if r.status == "passed"
        and r.parity is not None
        and r.parity.accuracy_drop_points is not None
        and r.parity.accuracy_drop_points <= budget
        and r.parity.latency_ms_p50 is not None
    ]
    best = min(eligible, key=lambda r: r.parity.latency_ms_p50) if eligible else None  # type: ignore[union-attr]
    return {
        "rule": f"fastest-within {budget:g}",
        "selected": best.name if best else None,
        "candidates": [r.name for r in eligible],
        "latency": "median batch-1 time at export (indicative; use `kdedge bench` to decide)",
    }
