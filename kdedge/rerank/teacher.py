"""Fine-tune a cross-encoder teacher from a local base encoder (``kdedge rerank teach``).

The base encoder (e.g. the bundled all-MiniLM-L6-v2) gets a fresh one-logit head and is
trained on the training groups' relevance labels, list batch by list batch (positives and
BM25 hard negatives of each query, :class:`kdedge.rerank.lists.ListData`).

The default objective is pointwise binary cross-entropy with logits (``supervised="bce"``,
the classic cross-encoder recipe). Its scores keep an absolute meaning (a logit of the
probability that the passage answers the query), which two later stages rely on: the
pointwise-MSE distillation copies the teacher's score *values*, and the router's
``score_threshold`` compares a top-1 score with a fixed number. ``supervised="listwise"``
(softmax cross-entropy over each query's candidates) is available; its scores are only
defined up to a per-query shift.

The epoch with the best validation NDCG@10 among those passing the gates is kept (not the
lowest loss); the directory is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdedge.distill.device import Placement
from kdedge.distill.gates import Gates
from kdedge.progress import Tracker, silent
from kdedge.rerank.config import TEACHER_TRAINING, RerankTrainConfig
from kdedge.rerank.losses import RerankLossConfig
from kdedge.rerank.models import DEFAULT_MAX_LENGTH, reranker_from_encoder
from kdedge.rerank.trainer import (
    RerankTrainResult,
    as_groups,
    as_placement,
    check_out_dir,
    describe_groups,
    fit_reranker,
)

TEACHER_LOSS = RerankLossConfig(alpha=1.0, supervised="bce")


def teach_reranker(
    base_dir: str | Path,
    train_groups: Any,
    val_groups: Any,
    out_dir: str | Path,
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    supervised: str = "bce",
    config: RerankTrainConfig = TEACHER_TRAINING,
    device: str | Placement = "auto",
    precision: str = "auto",
    gates: Gates | None = None,
    resume: bool = False,
    overwrite: bool = False,
    track: Tracker = silent,
) -> RerankTrainResult:
    """Fine-tune ``base_dir`` into a reranker teacher written to ``out_dir``."""
    placement = as_placement(device, precision)
    train = as_groups(train_groups, "training")
    val = as_groups(val_groups, "validation")
    check_out_dir(Path(out_dir), resume, overwrite)
    loss = RerankLossConfig(alpha=1.0, supervised=supervised)
    teacher = reranker_from_encoder(base_dir, max_length=max_length, seed=config.seed)
    teacher.meta.update(
        role="teacher",
        base_model=str(base_dir),
        data={"train": describe_groups(train), "validation": describe_groups(val)},
    )
    return fit_reranker(
        teacher,
        train,
        val,
        out_dir=out_dir,
        placement=placement,
        loss=loss,
        config=config,
        gates=gates,
        stage="rerank_teacher",
        resume=resume,
        overwrite=overwrite,
        track=track,
    )
