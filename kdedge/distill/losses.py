"""Distillation losses (Hinton KD, the rare-class hybrid, TinyBERT feature/attention terms).

All functions take per-batch tensors and return scalar tensors; reductions are means over
the rows that carry the signal, optionally weighted by per-example weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # hard label of an unlabeled row: it contributes KD only


@dataclass(frozen=True)
class LossConfig:
    """Mix of hard CE, KD and the rare-class term.

    ``total = (1 - alpha - rare_weight) * CE + alpha * T^2 * KL(p_T || p_S) + rare_weight * CE_w``

    With ``rare_weight = 0`` this is Hinton KD; the seeds' hybrid is ``alpha=0.35,
    rare_weight=0.20`` (0.45 hard + 0.35 KD + 0.20 rare-weighted). ``alpha = 0`` trains on
    hard labels only.
    """

    alpha: float = 0.7
    temperature: float = 4.0
    rare_weight: float = 0.0

    def __post_init__(self) -> None:
        from kdedge.errors import ConfigError

        if not 0.0 <= self.alpha <= 1.0 or not 0.0 <= self.rare_weight <= 1.0:
            raise ConfigError(
                f"alpha={self.alpha} and rare_weight={self.rare_weight} must be in [0, 1]"
            )
        if self.alpha + self.rare_weight > 1.0 + 1e-9:
            raise ConfigError(
                f"alpha + rare_weight = {self.alpha + self.rare_weight:.3f} > 1: "
                "the hard-label weight 1 - alpha - rare_weight would be negative"
            )
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")

    @property
    def hard_weight(self) -> float:
        return 1.0 - self.alpha - self.rare_weight


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clamp_min(1e-12)


def soft_targets(teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Teacher probabilities at temperature T. [B, C] -> [B, C]."""
    return F.softmax(teacher_logits.float() / temperature, dim=-1)


def kd_loss(
    student_logits: torch.Tensor,  # [B, C]
    teacher_probs: torch.Tensor,  # [B, C], already softened at `temperature`
    temperature: float,
    weights: torch.Tensor | None = None,  # [B]
) -> torch.Tensor:
    """``T^2 * KL(p_T || p_S)`` per row, averaged. T^2 keeps gradient scale independent of T."""
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    kl = F.kl_div(log_p_student, teacher_probs.float(), reduction="none").sum(dim=-1)  # [B]
    return temperature**2 * _weighted_mean(kl, weights)


def hard_ce(
    student_logits: torch.Tensor,  # [B, C]
    labels: torch.Tensor,  # [B], IGNORE_INDEX for unlabeled rows
    weights: torch.Tensor | None = None,  # [B]
    class_weights: torch.Tensor | None = None,  # [C]
) -> torch.Tensor:
    """Cross-entropy over labeled rows; 0 when the batch has none.

    With ``class_weights`` each row counts ``class_weights[label]`` times, normalised by
    the sum of those weights (as ``torch.nn.CrossEntropyLoss(weight=...)`` does).
    """
    labeled = labels != IGNORE_INDEX
    if not labeled.any():
        return student_logits.sum() * 0.0
    logits, targets = student_logits[labeled].float(), labels[labeled]
    ce = F.cross_entropy(logits, targets, reduction="none")  # [B']
    row_w = torch.ones_like(ce) if weights is None else weights[labeled].float()
    if class_weights is not None:
        row_w = row_w * class_weights.to(ce.device)[targets]
    return _weighted_mean(ce, row_w)


@dataclass
class LossTerms:
    """The scalar terms of one step, kept apart for logging."""

    total: torch.Tensor
    hard: torch.Tensor
    kd: torch.Tensor
    rare: torch.Tensor


def distillation_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_probs: torch.Tensor | None,
    config: LossConfig,
    weights: torch.Tensor | None = None,
    class_weights: torch.Tensor | None = None,
    shard: torch.Tensor | None = None,
) -> LossTerms:
    """Combine the terms of :class:`LossConfig`. Without teacher targets KD is zero.

    ``shard`` ([3], from :func:`shard_scale`) rescales the hard, KD and rare terms inside
    ``total`` when this batch is one process's share of a global batch; the reported
    terms stay this share's own means.
    """
    zero = student_logits.sum() * 0.0
    hard = hard_ce(student_logits, labels, weights)
    kd = (
        kd_loss(student_logits, teacher_probs, config.temperature, weights)
        if teacher_probs is not None and config.alpha > 0
        else zero
    )
    rare = (
        hard_ce(student_logits, labels, weights, class_weights)
        if config.rare_weight > 0 and class_weights is not None
        else zero
    )
    if shard is None:
        total = config.hard_weight * hard + config.alpha * kd + config.rare_weight * rare
    else:
        total = (
            config.hard_weight * hard * shard[0]
            + config.alpha * kd * shard[1]
            + config.rare_weight * rare * shard[2]
        )
    return LossTerms(total=total, hard=hard, kd=kd, rare=rare)


def _denominators(labels: np.ndarray, weights: np.ndarray, class_weights: np.ndarray) -> np.ndarray:
    labeled = labels != IGNORE_INDEX
    rare = weights[labeled] * class_weights[labels[labeled]]
    return np.array([weights[labeled].sum(), weights.sum(), rare.sum()], dtype=np.float64)


def shard_scale(
    labels: np.ndarray,  # [N] hard labels of the dataset, IGNORE_INDEX where unlabeled
    weights: np.ndarray,  # [N] row weights
    class_weights: np.ndarray,  # [C]
    local: Sequence[int],
    whole: Sequence[int],
    world: int,
) -> torch.Tensor:
    """Per-term factors ([hard, kd, rare]) that make data-parallel training exact.

    Each term is a weighted mean over the rows that carry it; a process sees only
    ``local`` rows of the global batch ``whole``. DDP averages gradients over ``world``
    processes, so scaling each term by ``world * local_sum / global_sum`` of its weights
    gives the gradient of the global batch's mean, even when shares differ in labeled rows.
    """
    mine = _denominators(labels[list(local)], weights[list(local)], class_weights)
    every = _denominators(labels[list(whole)], weights[list(whole)], class_weights)
    factor = np.divide(world * mine, every, out=np.zeros(3), where=every > 0)
    return torch.tensor(factor, dtype=torch.float32)


def rare_class_weights(
    num_labels: int, rare_indices: list[int], boost: float = 5.0
) -> torch.Tensor:
    """Class weights for the rare-class term: ``boost`` on rare classes, 1 elsewhere."""
    weights = torch.ones(num_labels)
    if rare_indices:
        weights[torch.tensor(rare_indices)] = boost
    return weights


def hidden_mse(
    student_hidden: torch.Tensor,  # [B, L, D_t], already projected to the teacher width
    teacher_hidden: torch.Tensor,  # [B, L, D_t]
    mask: torch.Tensor | None = None,  # [B, L], 1 on real tokens
) -> torch.Tensor:
    """Mean squared error over real tokens and hidden units."""
    diff = (student_hidden.float() - teacher_hidden.float()) ** 2  # [B, L, D]
    if mask is None:
        return diff.mean()
    m = mask.unsqueeze(-1).to(diff.dtype)  # [B, L, 1]
    return (diff * m).sum() / (m.sum() * diff.shape[-1]).clamp_min(1.0)


def attention_mse(
    student_attn: torch.Tensor,  # [B, H_s, L, L]
    teacher_attn: torch.Tensor,  # [B, H_t, L, L]
    mask: torch.Tensor | None = None,  # [B, L]
) -> torch.Tensor:
    """MSE between attention maps; heads are averaged when the head counts differ."""
    if student_attn.shape[1] != teacher_attn.shape[1]:
        student_attn = student_attn.mean(dim=1, keepdim=True)
        teacher_attn = teacher_attn.mean(dim=1, keepdim=True)
    diff = (student_attn.float() - teacher_attn.float()) ** 2  # [B, H, L, L]
    if mask is None:
        return diff.mean()
    m = mask.to(diff.dtype)
    pair = (m.unsqueeze(-1) * m.unsqueeze(-2)).unsqueeze(1)  # [B, 1, L, L]
    return (diff * pair).sum() / (pair.sum() * diff.shape[1]).clamp_min(1.0)
