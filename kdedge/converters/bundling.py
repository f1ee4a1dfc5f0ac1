"""What every task's export shares: per-artifact results, the report, and the steps
that convert, prove and keep each artifact inside the bundle being staged."""

from __future__ import annotations

import datetime as dt
import json
import platform
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdedge import __version__
from kdedge.converters.base import Converted
from kdedge.converters.parity import ParityReport
from kdedge.converters.parity_llm import GenerationParity
from kdedge.converters.parity_rerank import RerankParity
from kdedge.converters.registry import FormatSpec, get_format, known_formats
from kdedge.distill.models import fingerprint
from kdedge.errors import ConfigError, KdedgeError, ModelError
from kdedge.progress import Tracker
from kdedge.runtimes.bundle import Artifact, FileEntry, relative, sha256_file
from kdedge.runtimes.tokenizer import Tokenizer


@dataclass
class ArtifactResult:
    """What happened to one requested format."""

    name: str
    status: str  # passed | failed | error
    parity: ParityReport | GenerationParity | RerankParity | None = None
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
    task: str = "intent"  # a name in kdedge.tasks.TASKS
    torch_metrics: dict[str, float] = field(default_factory=dict)  # e.g. a reranker's ndcg@10

    @property
    def failed(self) -> list[ArtifactResult]:
        return [r for r in self.results if r.status != "passed"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "model_dir": str(self.model_dir),
            "out_dir": str(self.out_dir) if self.out_dir else None,
            "torch_size_bytes": self.torch_size_bytes,
            "torch_accuracy": self.torch_accuracy,
            "torch_metrics": self.torch_metrics,
            "artifacts": [r.to_dict() for r in self.results],
            "selection": self.selection,
            "failed": [r.name for r in self.failed],
        }


def requested_formats(formats: Sequence[str], out_dir: Path, overwrite: bool) -> list[FormatSpec]:
    """The distinct requested formats' specs, after the checks every export shares."""
    names = list(dict.fromkeys(formats))
    if not names:
        raise ConfigError("no --format given; choose from " + ", ".join(known_formats()))
    specs = [get_format(f) for f in names]  # unknown names fail before any work
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ConfigError(f"{out_dir} exists and is not empty; pass --overwrite to replace it")
    return specs


def check_tokenizer(hf_tokenizer: Any, tok: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Ids from the bundle's tokenizer.json, after proving they equal the model's own."""
    ours = tok.ids(texts)
    theirs = hf_tokenizer(list(texts), truncation=True, max_length=tok.max_length)["input_ids"]
    for text, a, b in zip(texts, ours, theirs, strict=True):
        if list(a) != list(b):
            raise ModelError(
                f"the exported tokenizer.json tokenizes {text[:40]!r} differently from the "
                "model's tokenizer; the model directory's tokenizer files disagree"
            )
    return ours


def gate_summary(model_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    report_file = model_dir / "training_report.json"
    gates: dict[str, Any] = {"promotable": meta.get("promotable"), "epoch": meta.get("best_epoch")}
    if report_file.is_file():
        report = json.loads(report_file.read_text(encoding="utf-8"))
        chosen = [h for h in report.get("history", []) if h.get("epoch") == meta.get("best_epoch")]
        if chosen:
            gates["passed"] = chosen[0].get("gates_passed")
            gates["failures"] = chosen[0].get("gate_failures", [])
    return gates


def provenance(model_dir: Path, meta: dict[str, Any], data: dict[str, Path | None]) -> dict:
    return {
        "source_model": str(model_dir.resolve()),
        "source_sha256": fingerprint(model_dir),
        "role": meta.get("role"),
        **({"source": meta["source"]} if meta.get("source") else {}),
        "teachers": meta.get("teachers", []),
        "training_data": meta.get("data"),
        "loss": meta.get("loss"),
        "data_sha256": {k: sha256_file(v) for k, v in data.items() if v is not None},
        "kdedge_version": __version__,
        "torch_version": _torch_version(),
        "python": platform.python_version(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


class NothingShipped(Exception):
    """Raised inside the bundle's atomic_dir to discard it when no artifact passed."""


def build_artifacts(
    converters: Sequence[Any],
    staging: Path,
    one: Callable[[Any], tuple[ArtifactResult, Artifact | None]],
    keep_failed: bool,
    track: Tracker,
) -> tuple[list[ArtifactResult], dict[str, Artifact]]:
    """Run ``one`` per converter; keep the artifacts that passed (all, with keep_failed)."""
    results: list[ArtifactResult] = []
    artifacts: dict[str, Artifact] = {}
    for conv in track(converters, "exporting", total=len(converters)):
        result, artifact = one(conv)
        results.append(result)
        if artifact is not None and (result.status == "passed" or keep_failed):
            artifacts[conv.name] = artifact
        else:
            shutil.rmtree(staging / conv.name, ignore_errors=True)
    return results, artifacts


def convert_one(
    conv: Any,
    staging: Path,
    convert: Callable[[Path], Converted],
    prove: Callable[[Path], ParityReport | GenerationParity | RerankParity],
) -> tuple[ArtifactResult, Artifact | None]:
    """Convert into ``staging/<name>``, check the main file, describe the artifact."""
    folder = staging / conv.name
    folder.mkdir()
    try:
        converted = convert(folder)
        parity = prove(converted.files[0])
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


def _torch_version() -> str:
    import torch

    return torch.__version__
