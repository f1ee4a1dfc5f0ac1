"""Reranker losses over list batches: ``scores[q, c]`` for query q's candidate c.

A training batch holds Q queries with up to C candidates each; ``mask[q, c]`` marks the
real candidates (a query with fewer than C is padded). Every loss averages over what carries
its signal: pointwise terms over real candidates, margin-MSE over (positive, negative)
pairs, listwise terms over queries.

The objective (seed 002, "Distilled Reranker")::

    loss = alpha * supervised + (1 - alpha) * distill

``supervised`` learns the relevance labels: ``"bce"`` (binary cross-entropy with logits,
relevance scaled to [0, 1] by the data's top grade) or ``"listwise"`` (softmax
cross-entropy over a query's candidates against the relevance distribution, ListNet with
graded labels). ``distill`` follows the teacher's scores by ``kind``:

* ``"pointwise"``: MSE between student and teacher raw scores, as seed 002 writes it;
* ``"margin_mse"``: MSE between the student's and the teacher's score *margins*
  ``s(q, pos) - s(q, neg)`` over every (more relevant, less relevant) pair of a query
  (Hofstätter et al. 2020, "Improving Efficient Neural Ranking Models with Cross-Architecture
  Knowledge Distillation"): only differences matter, so the student's scale is free;
* ``"listwise"``: ``T^2 * KL(softmax(t / T) || softmax(s / T))`` over a query's candidates.

``alpha = 1`` trains on labels only (the same-size baseline the goal compares against). Note
the direction: here ``alpha`` weighs the *labels* (as the seed writes the reranker loss),
while the intent trainer's ``LossConfig.alpha`` weighs the teacher.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from kdedge.errors import ConfigError

KINDS = ("pointwise", "margin_mse", "listwise")
SUPERVISED = ("bce", "listwise")
_NEG = -1e4  # a masked score: exp(_NEG) underflows to 0 in float32


@dataclass(frozen=True)
class RerankLossConfig:
    """``alpha * supervised + (1 - alpha) * distill``; see the module docstring."""

    kind: str = "pointwise"
    alpha: float = 0.5
    temperature: float = 1.0
    supervised: str = "bce"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(
                f"unknown rerank loss '{self.kind}'; choose one of {', '.join(KINDS)}"
            )
        if self.supervised not in SUPERVISED:
            raise ConfigError(
                f"unknown supervised loss '{self.supervised}'; choose one of "
                + ", ".join(SUPERVISED)
            )
        if not isinstance(self.alpha, (int, float)) or not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha={self.alpha!r} must be in [0, 1] (1 = labels only)")
        if (
            not isinstance(self.temperature, (int, float))
            or not math.isfinite(self.temperature)
            or self.temperature <= 0
        ):
            raise ConfigError(f"temperature must be a finite number > 0, got {self.temperature!r}")

    @property
    def needs_teacher(self) -> bool:
        return self.alpha < 1.0

    @property
    def labels_only(self) -> bool:
        return self.alpha >= 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


LABELS_ONLY = RerankLossConfig(alpha=1.0)


class RerankLossTerms(NamedTuple):
    total: torch.Tensor
    supervised: torch.Tensor
    distill: torch.Tensor


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.float()
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def pointwise_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``(s - t)^2`` over real candidates."""
    return _masked_mean((student.float() - teacher.float()) ** 2, mask)


def bce_relevance(student: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits against relevance targets in [0, 1]."""
    values = F.binary_cross_entropy_with_logits(
        student.float(), targets.float().clamp(0.0, 1.0), reduction="none"
    )
    return _masked_mean(values, mask)


def listwise_ce(student: torch.Tensor, relevance: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax CE over each query's candidates, target ``rel / sum(rel)``.

    Queries with no relevant candidate carry no signal and are skipped.
    """
    rel = relevance.float().clamp_min(0.0) * mask
    totals = rel.sum(dim=-1)
    has_target = totals > 0
    target = rel / totals.clamp_min(1e-12)[:, None]
    log_p = F.log_softmax(student.float().masked_fill(~mask, _NEG), dim=-1)
    per_query = -(target * log_p.masked_fill(~mask, 0.0)).sum(dim=-1)
    return _masked_mean(per_query, has_target)


def margin_mse(
    student: torch.Tensor, teacher: torch.Tensor, relevance: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """MSE of score margins over (i, j) pairs of a query with ``rel_i > rel_j``."""
    s, t = student.float(), teacher.float()
    s_diff = s[:, :, None] - s[:, None, :]  # [Q, C, C]: s_i - s_j
    t_diff = t[:, :, None] - t[:, None, :]
    rel = relevance.float()
    pairs = (rel[:, :, None] > rel[:, None, :]) & mask[:, :, None] & mask[:, None, :]
    return _masked_mean((s_diff - t_diff) ** 2, pairs)


def listwise_kl(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """``T^2 * KL(softmax(t / T) || softmax(s / T))`` per query (over real candidates)."""
    log_p_s = F.log_softmax((student.float() / temperature).masked_fill(~mask, _NEG), dim=-1)
    log_p_t = F.log_softmax((teacher.float() / temperature).masked_fill(~mask, _NEG), dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).masked_fill(~mask, 0.0).sum(dim=-1)
    return temperature**2 * _masked_mean(kl, mask.any(dim=-1))


def rerank_loss(
    student: torch.Tensor,  # [Q, C] raw scores
    relevance: torch.Tensor,  # [Q, C] graded relevance (0 = not relevant)
    mask: torch.Tensor,  # [Q, C] bool
    teacher: torch.Tensor | None,  # [Q, C] teacher raw scores, or None (labels only)
    config: RerankLossConfig,
    *,
    max_relevance: float = 1.0,
    shard: torch.Tensor | None = None,
) -> RerankLossTerms:
    """The configured mix; ``max_relevance`` scales graded labels into BCE targets.

    ``shard`` ([2], from :func:`shard_scale`) rescales the supervised and distill terms
    inside ``total`` when this batch is one process's share of a global batch; the reported
    terms stay this share's own means.
    """
    f_sup, f_dist = (1.0, 1.0) if shard is None else (shard[0], shard[1])
    mask = mask.bool()
    if config.supervised == "bce":
        supervised = bce_relevance(student, relevance.float() / max(max_relevance, 1e-12), mask)
    else:
        supervised = listwise_ce(student, relevance, mask)
    if config.alpha >= 1.0:
        distill = torch.zeros((), device=student.device)
        return RerankLossTerms(supervised * f_sup, supervised, distill)
    if teacher is None:
        raise ConfigError(f"alpha={config.alpha} mixes in the teacher but no teacher scores came")
    if config.kind == "pointwise":
        distill = pointwise_mse(student, teacher, mask)
    elif config.kind == "margin_mse":
        distill = margin_mse(student, teacher, relevance, mask)
    else:
        distill = listwise_kl(student, teacher, mask, config.temperature)
    total = config.alpha * supervised * f_sup + (1.0 - config.alpha) * distill * f_dist
    return RerankLossTerms(total, supervised, distill)


def _denominators(relevance: Sequence[np.ndarray], config: RerankLossConfig) -> np.ndarray:
    """What each term of :func:`rerank_loss` averages over, for lists of relevance grades."""
    candidates = sum(len(r) for r in relevance)
    if config.supervised == "bce":
        supervised = candidates
    else:  # listwise CE: queries with a relevant candidate
        supervised = sum(1 for r in relevance if np.clip(r, 0, None).sum() > 0)
    if config.kind == "pointwise":
        distill = candidates
    elif config.kind == "margin_mse":  # (more relevant, less relevant) pairs
        distill = sum(int((r[:, None] > r[None, :]).sum()) for r in relevance)
    else:  # listwise KL: every query
        distill = len(relevance)
    return np.array([supervised, distill], dtype=np.float64)


def shard_scale(
    local: Sequence[np.ndarray],
    whole: Sequence[np.ndarray],
    config: RerankLossConfig,
    world: int,
) -> torch.Tensor:
    """Per-term factors ([supervised, distill]) that make data-parallel training exact.

    ``local`` and ``whole`` hold the relevance grades of each query list in this process's
    share and in the global batch (which every process knows, so nothing is communicated).
    Each term is a mean over candidates, queries or pairs; DDP averages gradients over
    ``world`` processes, so scaling a term by ``world * local_count / global_count`` gives
    the gradient of the global batch's mean even when the shares differ in size.
    """
    mine, every = _denominators(local, config), _denominators(whole, config)
    factor = np.divide(world * mine, every, out=np.zeros(2), where=every > 0)
    return torch.tensor(factor, dtype=torch.float32)
