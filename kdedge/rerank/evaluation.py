"""Judge rerankers by ranking: NDCG@3/5/10, MRR@10 and recall@k on query groups, with a
reference model's share of NDCG@10 kept and top-3 agreement for every other model."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kdedge.distill.device import Placement
from kdedge.rerank.data import QueryGroup
from kdedge.rerank.metrics import ranking_report, top_k_agreement


def first_stage_report(groups: Sequence[QueryGroup]) -> dict[str, float]:
    """The candidates' own order (the first-stage retriever's) judged like a model."""
    order = [-np.arange(len(g.candidates), dtype=np.float32) for g in groups]
    return ranking_report(groups, order)


def evaluate_rerankers(
    models: Sequence[str | Path],
    groups: Sequence[QueryGroup],
    placement: Placement | str = "cpu",
    *,
    batch_size: int = 64,
    max_length: int | None = None,
) -> list[dict[str, Any]]:
    """One report per model, the first being the reference for the others' share of its
    NDCG@10 (``share_of_reference_ndcg@10``) and their ``top3_agreement`` with it."""
    from kdedge.rerank.models import check_reranker_dir, load_reranker, score_groups

    for model in models:
        check_reranker_dir(model)
    reports: list[dict[str, Any]] = []
    reference: tuple[dict[str, Any], list[np.ndarray]] | None = None
    for model in models:
        clf = load_reranker(model, max_length=max_length)
        t0 = time.perf_counter()
        scores = score_groups(clf, groups, batch_size=batch_size, device=placement)
        metrics: dict[str, Any] = ranking_report(groups, scores)
        metrics["seconds"] = round(time.perf_counter() - t0, 3)
        if reference is None:
            reference = (metrics, scores)
        else:
            ref_ndcg = reference[0]["ndcg@10"]
            metrics["share_of_reference_ndcg@10"] = (
                metrics["ndcg@10"] / ref_ndcg if ref_ndcg else None
            )
            metrics["top3_agreement"] = float(
                np.mean(
                    [top_k_agreement(a, b, 3) for a, b in zip(scores, reference[1], strict=True)]
                )
            )
        reports.append(
            {
                "model": str(model),
                "role": clf.meta.get("role"),
                "layers": int(clf.model.config.num_hidden_layers),
                **metrics,
            }
        )
    return reports
