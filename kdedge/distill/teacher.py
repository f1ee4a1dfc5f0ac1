"""Fine-tune a teacher classifier from a local base encoder (``kdedge teach``)."""

from __future__ import annotations

from pathlib import Path

import torch

from kdedge.data.prepare import load_prepared
from kdedge.distill.device import Placement
from kdedge.distill.models import load_encoder_for_classification
from kdedge.distill.taxonomy import Taxonomy
from kdedge.distill.trainer import TrainConfig, TrainResult, fit
from kdedge.progress import Tracker, silent

TEACHER_TRAINING = TrainConfig(epochs=6, batch_size=32, lr=1e-4, min_epochs=3)


def teach(
    base_model: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    placement: Placement,
    config: TrainConfig = TEACHER_TRAINING,
    max_length: int = 64,
    resume: bool = False,
    overwrite: bool = False,
    track: Tracker = silent,
) -> TrainResult:
    """Fine-tune ``base_model`` on the labeled rows of a prepared dataset.

    The checkpoint with the best validation accuracy is kept; the teacher is trained on
    hard labels only (it has no teacher of its own).
    """
    data = load_prepared(data_dir)
    torch.manual_seed(config.seed)  # the new classification head is initialised on load
    teacher = load_encoder_for_classification(base_model, data.labels)
    taxonomy = Taxonomy.infer(data)
    teacher.meta.update(role="teacher", max_length=max_length, **taxonomy.to_meta())
    return fit(
        teacher,
        [e for e in data.train if e.label is not None],
        data.validation,
        out_dir=out_dir,
        placement=placement,
        config=config,
        rare_labels=taxonomy.rare_labels,
        oos_label=taxonomy.oos_label,
        stage="teacher",
        resume=resume,
        overwrite=overwrite,
        meta={"data": str(data_dir)},
        track=track,
    )
