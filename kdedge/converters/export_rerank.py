"""Export a cross-encoder reranker to ONNX / OpenVINO with a ``rerank`` manifest.

The graph takes (input_ids, attention_mask, token_type_ids) of ``[CLS] query [SEP] passage
[SEP]`` and returns one score per pair. Every artifact is checked against the torch model
by :mod:`kdedge.converters.parity_rerank`: raw scores and each query's order on a probe
set, and, with ``eval_data`` (query groups with relevance), NDCG@10 against torch's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import replace
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
    convert_one,
    gate_summary,
    provenance,
)
from kdedge.converters.parity_rerank import (
    BATCH,
    TOLERANCES,
    RerankReference,
    check,
    probe_groups,
    tokenize_groups,
)
from kdedge.converters.registry import FormatSpec, load_converter
from kdedge.converters.trace import PAIR_INPUTS
from kdedge.distill.models import Classifier, load_classifier, size_on_disk
from kdedge.errors import ConfigError, ModelError
from kdedge.progress import Tracker, silent
from kdedge.rerank.data import QueryGroup, read_groups
from kdedge.rerank.metrics import ranking_report
from kdedge.runtimes.backends import open_backend
from kdedge.runtimes.bundle import TOKENIZER, Artifact, FileEntry, Manifest, write_manifest
from kdedge.runtimes.rerank import batched_scores
from kdedge.runtimes.tokenizer import Tokenizer

ROUTER_DEFAULTS: dict[str, Any] = {"min_score": None, "low_score_action": "fallback"}
"""A rerank bundle's router: below ``min_score`` the best candidate is "no good candidate"."""


def _pairs_match(clf: Classifier, tok: Tokenizer, groups: Sequence[tuple[str, list[str]]]) -> None:
    """Prove the bundle's tokenizer.json encodes pairs exactly as the model's tokenizer."""
    for query, passages in groups:
        ours, our_types = tok.pair_ids(query, passages)
        enc = clf.tokenizer(
            [query] * len(passages), passages, truncation=True, max_length=clf.max_length
        )
        theirs = enc["input_ids"]
        their_types = enc.get("token_type_ids") or [[0] * len(r) for r in theirs]
        if [list(r) for r in ours] != [list(r) for r in theirs] or [list(r) for r in our_types] != [
            list(r) for r in their_types
        ]:
            raise ModelError(
                f"the exported tokenizer.json encodes ({query[:30]!r}, passage) differently from "
                "the model's tokenizer; the model directory's tokenizer files disagree"
            )


@torch.inference_mode()
def _torch_scores(clf: Classifier, ref: RerankReference) -> list[np.ndarray]:
    model = clf.model.eval().float().cpu()

    def run(input_ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        out = model(
            input_ids=torch.from_numpy(input_ids),
            attention_mask=torch.from_numpy(mask),
            token_type_ids=torch.from_numpy(types),
        )
        return out.logits.numpy()

    return [batched_scores(run, ids, types, ref.pad_id, BATCH) for ids, types in ref.groups]


def _calibration_pairs(path: str | Path | None, limit: int) -> list[tuple[str, str]]:
    if path is None:
        return []
    pairs = [(g.query, c.text) for g in read_groups(path) for c in g.candidates]
    step = max(1, len(pairs) // limit)  # spread over queries rather than the first few
    return pairs[::step][:limit]


def export_rerank(
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
    """Convert a one-score cross-encoder to each of ``specs``; write a ``rerank`` bundle.

    ``eval_data`` and ``calibration_data`` are query-group files (``kdedge rerank
    candidates`` writes them): eval groups add NDCG@10 to every parity check; calibration
    pairs feed static INT8.
    """
    options = options or ExportOptions()
    if options.int8_embeddings is None:
        # On StackFAQ the int8 embedding table alone cost 0.003 NDCG@10 on top of the
        # MatMuls' 0.0035 (benchmarks in docs/rerank.md): keep it in FP32 unless asked.
        options = replace(options, int8_embeddings=False)
    if select_within is not None:
        raise ConfigError(
            "--select applies to classifier bundles; a rerank bundle ships every passing "
            "artifact. Fix: drop --select and compare them with `kdedge bench`"
        )
    unsupported = [s.name for s in specs if s.name not in TOLERANCES]
    if unsupported:
        raise ConfigError(
            f"{', '.join(unsupported)} cannot run a cross-encoder's pair inputs; rerank bundles "
            f"take: {', '.join(TOLERANCES)}"
        )
    converters = [load_converter(s.name) for s in specs]  # a missing extra fails here
    needing = [c.name for c in converters if c.needs_calibration]
    if needing and calibration_data is None:
        raise ConfigError(
            f"{', '.join(needing)} need --calibration-data (query groups, e.g. validation)"
        )
    clf = load_classifier(model_dir)
    if clf.model.config.num_labels != 1:
        raise ModelError(
            f"{model_dir} has {clf.model.config.num_labels} outputs; a reranker has one score"
        )
    eval_groups: list[QueryGroup] = read_groups(eval_data) if eval_data is not None else []
    calibration = _calibration_pairs(calibration_data, options.calibration_size)

    report: ExportReport | None = None
    try:
        with (
            tempfile.TemporaryDirectory(prefix="kdedge-export-") as scratch,
            atomic_dir(out_dir) as staging,
        ):
            clf.tokenizer.backend_tokenizer.save(str(staging / TOKENIZER))
            tok = Tokenizer(staging / TOKENIZER, clf.max_length)
            groups = probe_groups() + [
                (g.query, [c.text for c in g.candidates]) for g in eval_groups
            ]
            _pairs_match(clf, tok, groups)
            ref = RerankReference(
                groups=tokenize_groups(tok, groups),
                scores=[],
                probe_queries=len(probe_groups()),
                eval_groups=eval_groups,
                pad_id=tok.pad_id,
            )
            ref.scores = _torch_scores(clf, ref)
            inp = ConvertInput(
                clf, calibration, options, workdir=Path(scratch) / "work", inputs=PAIR_INPUTS
            )

            def one(conv: Any) -> tuple[ArtifactResult, Artifact | None]:
                return convert_one(
                    conv,
                    staging,
                    lambda folder: conv.convert(inp, folder),
                    lambda path: check(
                        open_backend(conv.backend, path, threads=1), ref, TOLERANCES[conv.name]
                    ),
                )

            results, artifacts = build_artifacts(converters, staging, one, keep_failed, track)
            for r in results:
                r.shipped = r.name in artifacts
            report = ExportReport(
                model_dir=model_dir,
                out_dir=None,
                torch_size_bytes=size_on_disk(model_dir),
                torch_accuracy=None,
                results=results,
                task="rerank",
                torch_metrics=ranking_report(eval_groups, ref.scores[ref.probe_queries :])
                if eval_groups
                else {},
            )
            if not artifacts:
                raise NothingShipped
            threshold = clf.meta.get("score_threshold")
            manifest = Manifest(
                task="rerank",
                labels=tuple(clf.labels.names),
                max_length=clf.max_length,
                temperature=1.0,
                artifacts=tuple(artifacts.values()),
                tokenizer=FileEntry.of(staging, TOKENIZER),
                inputs=PAIR_INPUTS,
                router={**ROUTER_DEFAULTS, "min_score": threshold},
                gates=gate_summary(model_dir, clf.meta),
                provenance=provenance(
                    model_dir, clf.meta, {"eval": eval_data, "calibration": calibration_data}
                ),
            )
            write_manifest(staging, manifest)
            report.out_dir = out_dir
    except NothingShipped:
        pass
    assert report is not None
    return report
