"""``kdedge distill``: teacher(s) -> cached soft labels -> [stage 1 features] -> output KD."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kdedge.data.io import check_labels
from kdedge.data.prepare import load_prepared
from kdedge.data.records import Example
from kdedge.distill import distributed
from kdedge.distill.checkpoints import CHECKPOINTS
from kdedge.distill.device import Placement
from kdedge.distill.events import EventLog
from kdedge.distill.features import feature_distill
from kdedge.distill.gates import Gates
from kdedge.distill.labeling import LabelingReport, RiskRule, combine, label_texts
from kdedge.distill.losses import LossConfig
from kdedge.distill.models import (
    Classifier,
    load_classifier,
    load_encoder_for_classification,
    parameter_count,
    read_meta,
    size_on_disk,
)
from kdedge.distill.student import default_layer_map, student_from_teacher
from kdedge.distill.taxonomy import Taxonomy
from kdedge.distill.trainer import EVENTS_FILE, TrainConfig, TrainResult, fit
from kdedge.distill.vocab import trim_vocabulary
from kdedge.errors import ConfigError
from kdedge.progress import Tracker, silent

STUDENT_TRAINING = TrainConfig(epochs=8, batch_size=32, lr=1e-4, min_epochs=3)


@dataclass(frozen=True)
class StudentSpec:
    """How to get the student: keep ``layers`` teacher layers (or an explicit ``layer_map``),
    or start from a pretrained checkpoint ``model`` (a base encoder or a classifier).
    ``trim_vocab`` keeps only the embedding rows the data uses (see
    :func:`kdedge.distill.vocab.trim_vocabulary`; WordPiece tokenizers only)."""

    layers: int | None = None
    layer_map: tuple[int, ...] | None = None
    model: str | None = None
    trim_vocab: bool = False

    def __post_init__(self) -> None:
        if self.model and (self.layers or self.layer_map):
            raise ConfigError(
                "give either a pretrained student model or layers/layer_map, not both"
            )


@dataclass
class DistillResult:
    """Everything ``distill`` did, for reports and JSON."""

    out_dir: Path
    labeling: LabelingReport | None
    train: TrainResult
    feature_history: list[dict[str, Any]] = field(default_factory=list)
    rule_overrides: int = 0
    transfer_rows: int = 0  # transfer texts used (after dropping held-out and repeated ones)
    parameters: int = 0
    size_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "labeling": self.labeling.to_dict() if self.labeling else None,
            "train": self.train.to_dict(),
            "feature_history": self.feature_history,
            "rule_overrides": self.rule_overrides,
            "transfer_rows": self.transfer_rows,
            "parameters": self.parameters,
            "size_bytes": self.size_bytes,
        }


def calibration_temperature(teacher: str | Path) -> float:
    """The temperature ``kdedge calibrate`` stored for ``teacher``; an error if there is none."""
    meta = read_meta(teacher)
    if "calibration" not in meta:
        raise ConfigError(
            f"teacher {teacher} is not calibrated, so its probabilities cannot be used as "
            "calibrated. Fix: `kdedge calibrate TEACHER --data VALIDATION.jsonl`, "
            "or drop the calibrated-teachers option"
        )
    return float(meta["temperature"])


def build_student(teacher: Classifier, spec: StudentSpec) -> Classifier:
    """The student before training (see :class:`StudentSpec`)."""
    if spec.model:
        return load_encoder_for_classification(spec.model, teacher.labels)
    n_teacher = teacher.model.config.num_hidden_layers
    if spec.layer_map:
        layer_map = list(spec.layer_map)
    else:
        layer_map = default_layer_map(n_teacher, spec.layers or max(1, n_teacher // 2))
    return student_from_teacher(teacher, layer_map)


def distill(
    teachers: Sequence[str | Path],
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    placement: Placement,
    student: StudentSpec = StudentSpec(),
    loss: LossConfig = LossConfig(),  # noqa: B008 - frozen, never mutated
    config: TrainConfig = STUDENT_TRAINING,
    cache_dir: str | Path | None = None,
    rules: Sequence[RiskRule] = (),
    use_unlabeled: bool = True,
    transfer: Sequence[Example] = (),
    calibrated_teachers: bool = False,
    feature_epochs: int = 0,
    gates: Gates | None = None,
    rare_labels: Sequence[str] | None = None,
    oos_label: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    track: Tracker = silent,
) -> DistillResult:
    """Distill ``teachers`` into a student on a prepared dataset; write it to ``out_dir``.

    ``transfer`` adds unlabeled texts (see :func:`kdedge.data.io.load_unlabeled`) that
    only the teachers label; texts also found in the validation or test split are dropped,
    so the transfer set cannot leak the data checkpoints are chosen and judged on.
    ``calibrated_teachers`` softens each teacher's calibrated probabilities (its logits
    over the temperature ``kdedge calibrate`` fitted), not its raw ones.
    """
    if not teachers:
        raise ConfigError("distill needs at least one teacher model directory")
    data = load_prepared(data_dir)
    first = load_classifier(teachers[0])
    for split in (data.train, data.validation):
        check_labels([e for e in split if e.label is not None], first.labels)
    taxonomy = Taxonomy.infer(data, rare_labels=rare_labels, oos_label=oos_label)
    labeled = [e for e in data.train if e.label is not None]
    unlabeled = (
        [dataclasses.replace(e, label=None) for e in data.unlabeled] if use_unlabeled else []
    )
    held_out = {e.text for e in (*data.validation, *data.test)}
    seen = {e.text for e in (*labeled, *unlabeled)}
    extra = list(  # one row per new text
        {e.text: e for e in transfer if e.text not in held_out and e.text not in seen}.values()
    )
    unlabeled += extra
    train: list[Example] = labeled + (unlabeled if loss.alpha > 0 else [])

    labeling, teacher_train, teacher_val, overrides = None, None, None, 0
    if loss.alpha > 0:
        texts = [e.text for e in train] + [e.text for e in data.validation]
        soft = label_texts(
            teachers, texts, Path(cache_dir or Path(data_dir) / "cache"), placement, track=track
        )
        labeling = soft.report
        probs, overrides = combine(
            soft.logits,
            loss.temperature,
            texts=texts,
            labels=soft.labels,
            rules=rules,
            calibration=[calibration_temperature(t) for t in teachers]
            if calibrated_teachers
            else None,
        )
        teacher_train, teacher_val = probs[: len(train)], probs[len(train) :]

    torch.manual_seed(config.seed)  # a pretrained student gets a freshly initialised head
    clf = build_student(first, student)
    clf.meta.update(
        role="student",
        max_length=first.max_length,
        teachers=[str(t) for t in teachers],
        loss=dataclasses.asdict(loss),
        **taxonomy.to_meta(),
    )
    if student.trim_vocab:
        # Every text the student will read in training, stage 1 and validation; teacher
        # labels come from the teachers' own tokenizers and are unaffected.
        clf, _ = trim_vocabulary(
            clf, [e.text for e in [*data.train, *data.unlabeled, *extra, *data.validation]]
        )
    out = Path(out_dir)
    if overwrite and not resume and out.exists() and distributed.current().main:
        shutil.rmtree(out)
    distributed.wait("clearing the output directory")
    resuming = resume and (out / CHECKPOINTS / "last").is_dir()
    feature_history: list[dict[str, Any]] = []
    if feature_epochs > 0 and not resuming:  # a resumed run restarts from its stage-2 state
        teacher_for_features = load_classifier(teachers[0], eager_attention=True)
        log = EventLog(out / EVENTS_FILE, run_id=f"features_{out.name}")
        feature_history = feature_distill(
            clf,
            teacher_for_features,
            [e.text for e in labeled + unlabeled],
            placement,
            epochs=feature_epochs,
            batch_size=config.batch_size,
            seed=config.seed,
            log=log,
            track=track,
        )
        clf.meta["feature_history"] = feature_history
    result = fit(
        clf,
        train,
        data.validation,
        out_dir=out_dir,
        placement=placement,
        loss=loss,
        config=config,
        teacher_train=teacher_train,
        teacher_val=teacher_val,
        gates=gates,
        rare_labels=taxonomy.rare_labels,
        oos_label=taxonomy.oos_label,
        stage="output_kd" if loss.alpha > 0 else "hard_labels",
        resume=resume,
        meta={"data": str(data_dir), "labeling": labeling.to_dict() if labeling else None},
        track=track,
    )
    return DistillResult(
        out_dir=Path(out_dir),
        labeling=labeling,
        train=result,
        feature_history=feature_history,
        rule_overrides=overrides,
        transfer_rows=len(extra),
        parameters=parameter_count(clf.model),
        size_bytes=size_on_disk(out_dir),
    )
