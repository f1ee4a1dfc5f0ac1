"""Training lists: each query's positives and hard negatives, drawn afresh per epoch and
cut into global batches of queries (the same on every process under a launcher)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from kdedge.errors import ConfigError
from kdedge.rerank.config import RerankTrainConfig
from kdedge.rerank.models import PairTable


class ListData:
    """A set of query groups tokenized once, with per-candidate relevance and teacher scores."""

    def __init__(
        self,
        groups: Sequence[Any],
        tokenizer: Any,
        max_length: int,
        device: torch.device,
        teacher_scores: Sequence[np.ndarray] | None = None,
    ) -> None:
        pairs = [(g.query, c.text) for g in groups for c in g.candidates]
        self.table = PairTable(tokenizer, pairs, max_length, device)
        self.relevance = np.array(
            [c.relevance for g in groups for c in g.candidates], dtype=np.float32
        )
        self.teacher = (
            np.concatenate([np.asarray(s, dtype=np.float32) for s in teacher_scores])
            if teacher_scores is not None
            else None
        )
        if self.teacher is not None and len(self.teacher) != len(pairs):
            raise ConfigError(f"{len(self.teacher)} teacher scores for {len(pairs)} candidates")
        offsets = np.cumsum([0] + [len(g.candidates) for g in groups])
        self.rows = [np.arange(offsets[i], offsets[i + 1]) for i in range(len(groups))]
        self.max_relevance = float(self.relevance.max()) if len(self.relevance) else 1.0
        self.pairs = len(pairs)

    def sample(self, config: RerankTrainConfig, epoch: int) -> list[np.ndarray]:
        """Each query's candidates for ``epoch``: positives (capped) + random hard negatives."""
        rng = np.random.default_rng([config.seed, epoch])
        size, cap = config.candidates_per_query, config.positives_cap
        lists = []
        for rows in self.rows:
            rel = self.relevance[rows]
            pos, neg = rng.permutation(rows[rel > 0]), rng.permutation(rows[rel <= 0])
            n_pos = min(len(pos), max(cap, size - len(neg)))
            chosen = np.concatenate([pos[:n_pos], neg[: size - n_pos]])
            if len(chosen) >= 2:
                lists.append(chosen)
        order = rng.permutation(len(lists))
        return [lists[i] for i in order]

    def batches(self, config: RerankTrainConfig, epoch: int, world: int) -> list[list[np.ndarray]]:
        """``epoch``'s global batches of ``queries_per_batch`` lists; a last batch with fewer
        lists than the ``world`` processes that share it joins the batch before."""
        lists, size = self.sample(config, epoch), config.queries_per_batch
        batches = [lists[i : i + size] for i in range(0, len(lists), size)]
        if len(batches) > 1 and len(batches[-1]) < world:
            batches[-2].extend(batches.pop())
        return batches


def list_batch(
    data: ListData, lists: Sequence[np.ndarray], device: torch.device
) -> tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Flat rows, mask [Q, C], relevance [Q, C], teacher [Q, C] (or None)."""
    width = max(len(rows) for rows in lists)
    mask = np.zeros((len(lists), width), dtype=bool)
    index = np.zeros((len(lists), width), dtype=np.int64)
    for q, rows in enumerate(lists):
        mask[q, : len(rows)] = True
        index[q, : len(rows)] = rows
    relevance = np.where(mask, data.relevance[index], 0.0)
    teacher = np.where(mask, data.teacher[index], 0.0) if data.teacher is not None else None
    flat = [int(i) for rows in lists for i in rows]

    def put(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    return (
        flat,
        put(mask),
        put(relevance.astype(np.float32)),
        (put(teacher.astype(np.float32)) if teacher is not None else None),
    )
