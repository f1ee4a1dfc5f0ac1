"""Distil a reranker teacher into a student (``kdedge rerank distill``).

:func:`distill_reranker` builds the student from the teacher's layers (or from any
checkpoint), scores the training lists with the teacher through the cache (only when the
loss uses the teacher), optionally runs stage-1 feature/attention distillation on the pairs
(:func:`kdedge.distill.features.feature_distill`), then trains it with
:func:`kdedge.rerank.trainer.fit_reranker`, which fits the router's ``score_threshold`` on
validation and writes ``kdedge.json`` and ``training_report.json``.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdedge.distill import distributed
from kdedge.distill.device import Placement
from kdedge.distill.events import EventLog
from kdedge.distill.gates import Gates
from kdedge.distill.models import Classifier, parameter_count, size_on_disk
from kdedge.errors import ConfigError
from kdedge.progress import Tracker, silent
from kdedge.rerank.config import STUDENT_TRAINING, RerankTrainConfig
from kdedge.rerank.losses import RerankLossConfig
from kdedge.rerank.models import load_reranker, reranker_from_encoder
from kdedge.rerank.trainer import (
    CHECKPOINTS,
    EVENTS_FILE,
    RerankTrainResult,
    as_groups,
    as_placement,
    check_out_dir,
    describe_groups,
    fit_reranker,
)


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
