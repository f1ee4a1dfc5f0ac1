"""Export an intent classifier: any registered format, each proved against torch.

Every artifact's logits on the probe texts (and, with ``eval_data``, on held-out rows)
are compared with the torch model's within its converter's tolerance; ``select_within``
keeps only the fastest artifact whose accuracy drop stays within budget.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdedge.atomic import atomic_dir
from kdedge.converters.base import ConvertInput, ExportOptions
from kdedge.converters.bundling import (
    ArtifactResult,
    ExportReport,
    NothingShipped,
    build_artifacts,
    check_tokenizer,
    convert_one,
    gate_summary,
    provenance,
)
from kdedge.converters.parity import PROBE_TEXTS, Reference, batched_logits, check
from kdedge.converters.registry import FormatSpec, load_converter
from kdedge.data.io import check_labels, load_examples
from kdedge.distill.models import Classifier, load_classifier, size_on_disk
from kdedge.distill.taxonomy import Taxonomy
from kdedge.errors import ConfigError
from kdedge.progress import Tracker, silent
from kdedge.runtimes.bundle import TOKENIZER, Artifact, FileEntry, Manifest, write_manifest
from kdedge.runtimes.tokenizer import Tokenizer

# Router defaults written into every bundle; `kdedge route fit` (runtime) tunes them.
ROUTER_DEFAULTS = {
    "confidence_threshold": 0.5,
    "risk_threshold": 0.5,
    "low_confidence_action": "clarify",
    "max_fallback_rate": 0.2,
}


def _texts(path: str | Path | None, *, labeled: bool) -> list[Any]:
    return [] if path is None else load_examples(path, require_labels=labeled)


@torch.inference_mode()
def _torch_logits(clf: Classifier, ids: list[list[int]], pad_id: int) -> np.ndarray:
    model = clf.model.eval().float().cpu()

    def run(input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask))
        return out.logits.numpy()

    return batched_logits(run, ids, pad_id)


def export_intent(
    model_dir: Path,
    specs: Sequence[FormatSpec],
    out_dir: Path,
    *,
    eval_data: str | Path | None = None,
    calibration_data: str | Path | None = None,
    keep_failed: bool = False,
    select_within: float | None = None,
    options: ExportOptions | None = None,
    track: Tracker = silent,
) -> ExportReport:
    """Convert a classifier to each of ``specs``, check parity, write an ``intent`` bundle.

    ``select_within`` keeps only the fastest passing artifact whose accuracy drop on
    ``eval_data`` is at most that many points (Olive's and INC's "fastest within budget").
    """
    options = options or ExportOptions()
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
            probe_ids = check_tokenizer(clf.tokenizer, tok, PROBE_TEXTS)
            eval_texts = [e.text for e in eval_rows]
            eval_ids = check_tokenizer(clf.tokenizer, tok, eval_texts) if eval_rows else []
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
                return convert_one(
                    conv,
                    staging,
                    lambda folder: conv.convert(inp, folder),
                    lambda path: check(conv.backend, path, ref, conv.tolerance, len(clf.labels)),
                )

            results, artifacts = build_artifacts(converters, staging, one, keep_failed, track)

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
                raise NothingShipped
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
                gates=gate_summary(model_dir, clf.meta),
                provenance=provenance(
                    model_dir, clf.meta, {"eval": eval_data, "calibration": calibration_data}
                ),
                selection=selection,
            )
            write_manifest(staging, manifest)
            report.out_dir = out_dir
    except NothingShipped:
        pass
    assert report is not None
    return report


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
