"""How a reranker trains and when it stops: optimisation and sampling settings, the gates
checkpoints must pass, and seed 004's stop rule (NDCG@10 gains < 0.002 across an epoch)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdedge.distill.gates import GateRule, Gates
from kdedge.errors import ConfigError

RANKING_METRICS = (
    "ndcg@3",
    "ndcg@5",
    "ndcg@10",
    "mrr@10",
    "recall@3",
    "recall@5",
    "recall@10",
)
SELECTION_METRIC = "ndcg@10"


@dataclass(frozen=True)
class RerankTrainConfig:
    """Optimisation and sampling settings. ``lr`` is the peak learning rate after warmup."""

    epochs: int = 4
    queries_per_batch: int = 8
    candidates_per_query: int = 8
    max_positives: int | None = None  # default: half of candidates_per_query (rounded up)
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 0
    eval_batch_size: int = 128
    min_epochs: int = 2
    early_stop: bool = True
    min_ndcg_gain: float = 0.002
    log_every: int = 50

    def __post_init__(self) -> None:
        ints = {
            "epochs": self.epochs,
            "queries_per_batch": self.queries_per_batch,
            "candidates_per_query": self.candidates_per_query,
            "eval_batch_size": self.eval_batch_size,
            "log_every": self.log_every,
        }
        for name, value in ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if self.candidates_per_query < 2:
            raise ConfigError(
                "candidates_per_query must be >= 2 (a positive and a negative), "
                f"got {self.candidates_per_query}"
            )
        if self.max_positives is not None and self.max_positives < 1:
            raise ConfigError(f"max_positives must be >= 1, got {self.max_positives}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.min_epochs < 1:
            raise ConfigError(f"min_epochs must be >= 1, got {self.min_epochs}")
        if not self.min_ndcg_gain >= 0:
            raise ConfigError(f"min_ndcg_gain must be >= 0, got {self.min_ndcg_gain}")

    @property
    def positives_cap(self) -> int:
        return self.max_positives or -(-self.candidates_per_query // 2)


TEACHER_TRAINING = RerankTrainConfig(epochs=3, lr=5e-5, min_epochs=2)
STUDENT_TRAINING = RerankTrainConfig(epochs=4, lr=1e-4, min_epochs=2)


def default_gates(min_ndcg: float = 0.0) -> Gates:
    """``ndcg@10 >= min_ndcg``; checkpoints that pass rank by NDCG@10."""
    return Gates(rules=(GateRule(SELECTION_METRIC, min=min_ndcg),), weights={SELECTION_METRIC: 1.0})


def gates_from_toml(path: str | Path) -> Gates:
    """A gates file over ranking metrics, e.g. ``"ndcg@10" = { min = 0.8 }``."""
    return Gates.from_toml(path, extra_metrics=RANKING_METRICS)


@dataclass(frozen=True)
class RerankStopRule:
    """Stop when ``metric`` gains less than ``min_gain`` over one epoch (seed: 0.002).

    The gain is the last epoch's value minus the one before. Never fires before
    ``min_epochs`` epochs (and never after a single epoch).
    """

    min_gain: float = 0.002
    min_epochs: int = 2
    metric: str = SELECTION_METRIC

    def should_stop(self, history: Sequence[dict[str, Any]]) -> tuple[bool, str]:
        n = len(history)
        if n < max(2, self.min_epochs):
            return False, f"continue: {n} epoch(s) so far; the stop rule needs {self.min_epochs}"
        gain = history[-1][self.metric] - history[-2][self.metric]
        if gain < self.min_gain - 1e-12:
            return True, (
                f"validation {self.metric} gained {gain:+.4f} < {self.min_gain} in epoch {n}"
            )
        return False, f"continue: validation {self.metric} gained {gain:+.4f} in epoch {n}"
