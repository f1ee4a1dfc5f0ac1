"""``export_bundle``: convert a model to several formats, prove each, pack a bundle.

Classifiers go to any registered format; causal LMs (generation models) go to GGUF
(:mod:`kdedge.converters.gguf_llama`). Every artifact is checked against the torch model
(:mod:`kdedge.converters.parity` / :mod:`kdedge.converters.parity_llm`) with the
tolerance its converter declares. An artifact that fails is left out of the
bundle unless ``keep_failed`` is set, in which case it ships marked ``failed``. The bundle
directory appears in one rename, so a crash never leaves half a bundle behind.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdedge import __version__
from kdedge.atomic import atomic_dir
from kdedge.converters.base import Converted, ConvertInput, ExportOptions
from kdedge.converters.parity import PROBE_TEXTS, ParityReport, Reference, batched_logits, check
from kdedge.converters.parity_llm import NEW_TOKENS, GenerationParity
from kdedge.converters.registry import FormatSpec, get_format, known_formats, load_converter
from kdedge.data.io import check_labels, load_examples
from kdedge.distill.models import (
    Classifier,
    fingerprint,
    load_classifier,
    read_meta,
    size_on_disk,
)
from kdedge.distill.taxonomy import Taxonomy
from kdedge.errors import ConfigError, KdedgeError, ModelError
from kdedge.extras import require
from kdedge.llm import prompts
from kdedge.llm.models import is_causal_lm, read_config
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
from kdedge.runtimes.generate import DEFAULT_ROUTER as GENERATION_ROUTER
from kdedge.runtimes.tokenizer import Tokenizer

# Router defaults written into every bundle; `kdedge route fit` (runtime) tunes them.
ROUTER_DEFAULTS = {
    "confidence_threshold": 0.5,
    "risk_threshold": 0.5,
    "low_confidence_action": "clarify",
    "max_fallback_rate": 0.2,
}
# Generation bundles: the llama.cpp context the runtime opens (at most the model's own)
# and the answer budget.
DEFAULT_CONTEXT = 2048
MAX_NEW_TOKENS = 256


@dataclass
class ArtifactResult:
    """What happened to one requested format."""

    name: str
    status: str  # passed | failed | error
    parity: ParityReport | GenerationParity | None = None
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
    task: str = "intent"  # intent | generate

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
            "artifacts": [r.to_dict() for r in self.results],
            "selection": self.selection,
            "failed": [r.name for r in self.failed],
        }


def _texts(path: str | Path | None, *, labeled: bool) -> list[Any]:
    return [] if path is None else load_examples(path, require_labels=labeled)


def _check_tokenizer(hf_tokenizer: Any, tok: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
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
        **({"source": meta["source"]} if meta.get("source") else {}),
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
    specs = _requested(formats, out_dir, overwrite)
    if is_causal_lm(model_dir):
        given = {"--eval-data": eval_data, "--calibration-data": calibration_data}
        unused = [flag for flag, value in given.items() if value is not None]
        if select_within is not None:
            unused.append("--select")
        if unused:
            raise ConfigError(
                f"{', '.join(unused)} apply to classifiers; {model_dir} is a generation model. "
                "Fix: drop them (measure answers with `kdedge llm eval`)"
            )
        return _export_generator(
            model_dir, [s.name for s in specs], out_dir, keep_failed=keep_failed, track=track
        )
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

    report: ExportReport | None = None
    try:
        with (
            tempfile.TemporaryDirectory(prefix="kdedge-export-") as scratch,
            atomic_dir(out_dir) as staging,
        ):
            clf.tokenizer.backend_tokenizer.save(str(staging / TOKENIZER))
            tok = Tokenizer(staging / TOKENIZER, clf.max_length)
            probe_ids = _check_tokenizer(clf.tokenizer, tok, PROBE_TEXTS)
            eval_texts = [e.text for e in eval_rows]
            eval_ids = _check_tokenizer(clf.tokenizer, tok, eval_texts) if eval_rows else []
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

            def one(conv: Any) -> tuple[ArtifactResult, Artifact | None]:
                return _one(
                    conv,
                    staging,
                    lambda folder: conv.convert(inp, folder),
                    lambda path: check(conv.backend, path, ref, conv.tolerance, len(clf.labels)),
                )

            results, artifacts = _build(converters, staging, one, keep_failed, track)

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


def _requested(formats: Sequence[str], out_dir: Path, overwrite: bool) -> list[FormatSpec]:
    """The distinct requested formats' specs, after the checks every export shares."""
    names = list(dict.fromkeys(formats))
    if not names:
        raise ConfigError("no --format given; choose from " + ", ".join(known_formats()))
    specs = [get_format(f) for f in names]  # unknown names fail before any work
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ConfigError(f"{out_dir} exists and is not empty; pass --overwrite to replace it")
    return specs


def _generation(model: Any, tokenizer: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``generation`` section: prompt, chat template, context, stop tokens."""
    prompt = meta.get("prompt") or {}
    template = prompt.get("user_template", prompts.USER_TEMPLATE)
    if "{question}" not in template:
        raise ConfigError(
            f"kdedge.json prompt.user_template {template[:60]!r} has no {{question}} "
            "placeholder; fix the student's kdedge.json"
        )
    eos = model.generation_config.eos_token_id
    eos_ids = [*(eos if isinstance(eos, list) else [eos]), tokenizer.eos_token_id]
    stop = [tokenizer.convert_ids_to_tokens(int(i)) for i in eos_ids if i is not None]
    return {
        "system_prompt": prompt.get("system", prompts.SYSTEM_PROMPT),
        "user_template": template,
        "chat_template": tokenizer.chat_template,
        "context_length": min(DEFAULT_CONTEXT, int(model.config.max_position_embeddings)),
        "max_new_tokens": MAX_NEW_TOKENS,
        "stop": list(dict.fromkeys(stop)),
        "eos_token": tokenizer.eos_token,
    }


def _export_generator(
    model_dir: Path, formats: list[str], out_dir: Path, *, keep_failed: bool, track: Tracker
) -> ExportReport:
    """``export_bundle`` for a causal LM: GGUF artifacts and a ``generate`` manifest."""
    require("gguf", "gguf", "Exporting generation models")
    from kdedge.converters import gguf_llama, parity_llm
    from kdedge.llm.models import load_causal_lm

    converters = [gguf_llama.generator_converter(f) for f in formats]
    gguf_llama.check_supported(read_config(model_dir) or {}, model_dir)
    model, tokenizer = load_causal_lm(model_dir)
    meta = read_meta(model_dir)
    generation = _generation(model, tokenizer, meta)
    context = generation["context_length"]
    texts = [
        t
        for t in parity_llm.probe_texts(tokenizer, generation["system_prompt"])
        if len(tokenizer(t)["input_ids"]) + NEW_TOKENS <= context
    ]
    if not texts:
        raise ConfigError(
            f"{model_dir}: no parity probe fits the {context}-token context; "
            "the model's max_position_embeddings is too small for chat prompts"
        )
    report: ExportReport | None = None
    try:
        with (
            tempfile.TemporaryDirectory(prefix="kdedge-export-") as scratch,
            atomic_dir(out_dir) as staging,
        ):
            tokenizer.backend_tokenizer.save(str(staging / TOKENIZER))
            _check_tokenizer(tokenizer, Tokenizer(staging / TOKENIZER, context), texts)
            ref = parity_llm.reference(model, tokenizer, texts)
            f32 = Path(scratch) / "gguf-f32"
            name = model_dir.resolve().name

            def one(conv: Any) -> tuple[ArtifactResult, Artifact | None]:
                return _one(
                    conv,
                    staging,
                    lambda folder: conv.convert(model, tokenizer, folder, f32, name),
                    lambda path: parity_llm.check(path, ref, conv.tolerance),
                )

            results, artifacts = _build(converters, staging, one, keep_failed, track)
            for r in results:
                r.shipped = r.name in artifacts
            report = ExportReport(
                model_dir=model_dir,
                out_dir=None,
                torch_size_bytes=size_on_disk(model_dir),
                torch_accuracy=None,
                results=results,
                task="generate",
            )
            if not artifacts:
                raise _NothingShipped
            manifest = Manifest(
                task="generate",
                labels=(),
                max_length=context,
                temperature=1.0,
                artifacts=tuple(artifacts.values()),
                tokenizer=FileEntry.of(staging, TOKENIZER),
                router=dict(GENERATION_ROUTER),
                gates=_gates(model_dir, meta),
                provenance=_provenance(model_dir, meta, {}),
                generation=generation,
            )
            write_manifest(staging, manifest)
            report.out_dir = out_dir
    except _NothingShipped:
        pass
    assert report is not None
    return report


class _NothingShipped(Exception):
    """Raised inside the bundle's atomic_dir to discard it when no artifact passed."""


def _build(
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


def _one(
    conv: Any,
    staging: Path,
    convert: Callable[[Path], Converted],
    prove: Callable[[Path], ParityReport | GenerationParity],
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
