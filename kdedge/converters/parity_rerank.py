"""Parity for cross-encoders: does an artifact rank candidates as the torch reranker does?

Each artifact runs on the same (query, passage) token ids as the torch reference, through
the runtime's own backend with its default graph optimisations (onnxruntime
``ORT_ENABLE_ALL``, OpenVINO's CPU plugin): the graph that ships is the graph checked.

1. a fixed probe set of query groups (short, long, non-ASCII, truncated passages): largest
   |score difference|, Kendall tau and top-3 agreement per query;
2. with ``--eval-data`` (query groups with relevance): the same per real query, plus NDCG@10
   of the artifact against torch's.

A score scale differs from a classifier's, so the tolerances are per format here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from kdedge.rerank.data import QueryGroup
from kdedge.rerank.metrics import kendall_tau, ranking_report, top_k_agreement
from kdedge.runtimes.backends import Backend
from kdedge.runtimes.rerank import batched_scores
from kdedge.runtimes.tokenizer import Tokenizer, pad_pairs

# Probe queries and passages: padding, truncation, unicode, digits, an empty-looking text.
PROBE_QUERIES: tuple[str, ...] = (
    "where is my order",
    "how do I cross out text in markdown?",
    "¿Cómo elimino mi cuenta?",
    "refund charged twice $59.99",
)
PROBE_PASSAGES: tuple[str, ...] = (
    "Use ~~two tildes~~ around the words.",
    "Orders ship within two business days; track yours from the account page.",
    "Go to settings, choose 'delete account' and confirm with your password.",
    "Para eliminar la cuenta, abre la configuración y elige «eliminar».",
    "Refunds reach the original card in 5-10 days. Order #A-123 was charged once.",
    "   ",
    "please " * 300,
    "注文した漫画はいつ届きますか 📦",
)
BATCH = 16
LATENCY_CALLS = 10


@dataclass(frozen=True)
class RerankTolerance:
    """How far a reranker artifact may drift from torch and still ship.

    ``max_abs_score`` bounds the largest raw-score difference; ``min_kendall_tau`` the mean
    per-query rank correlation with torch's order; ``max_ndcg_drop`` the NDCG@10 lost on
    the eval queries (absolute, 0.005 = half a point).
    """

    max_abs_score: float
    min_kendall_tau: float
    max_ndcg_drop: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


TOLERANCES: dict[str, RerankTolerance] = {
    "onnx": RerankTolerance(1e-3, 0.999, 0.0005),
    "openvino": RerankTolerance(1e-3, 0.999, 0.0005),
    "onnx-int8": RerankTolerance(2.5, 0.85, 0.005),
    "onnx-int8-static": RerankTolerance(2.5, 0.8, 0.01),
    "openvino-int8": RerankTolerance(2.5, 0.8, 0.01),
    "openvino-int8-wo": RerankTolerance(1.0, 0.9, 0.005),
}
"""Per format. Quantized formats move a few scores by up to ~2 logits (seen on StackFAQ,
12,670 pairs) but must keep each query's order (Kendall tau) and its NDCG@10."""


@dataclass
class RerankParity:
    """The evidence recorded in the manifest for one reranker artifact."""

    probe_queries: int
    probe_pairs: int
    max_abs_score: float
    kendall_tau: float  # mean over probe and eval queries
    top3_agreement: float  # mean share of torch's top 3 the artifact also puts in its top 3
    tolerance: RerankTolerance
    eval_queries: int = 0
    ndcg10: float | None = None
    ndcg10_torch: float | None = None
    ndcg10_drop: float | None = None
    latency_ms_p50: float | None = None  # one probe query, all its passages; indicative
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tolerance"] = self.tolerance.to_dict()
        d["passed"] = self.passed
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


@dataclass
class RerankReference:
    """Token ids per query group and the torch scores every artifact is compared with."""

    groups: list[tuple[list[list[int]], list[list[int]]]]  # per query: (ids, type ids)
    scores: list[np.ndarray]  # per query: [candidates]
    probe_queries: int  # the first groups are the probe set, the rest eval queries
    eval_groups: list[QueryGroup] = field(default_factory=list)
    pad_id: int = 0


def probe_groups() -> list[tuple[str, list[str]]]:
    """The fixed probe set: every probe query against every probe passage."""
    return [(q, list(PROBE_PASSAGES)) for q in PROBE_QUERIES]


def tokenize_groups(
    tok: Tokenizer, groups: Sequence[tuple[str, Sequence[str]]]
) -> list[tuple[list[list[int]], list[list[int]]]]:
    return [tok.pair_ids(query, passages) for query, passages in groups]


def check(backend: Backend, ref: RerankReference, tolerance: RerankTolerance) -> RerankParity:
    """Run ``backend`` on every reference group and compare it with torch under ``tolerance``."""
    ours = [
        batched_scores(backend.logits, ids, types, ref.pad_id, BATCH) for ids, types in ref.groups
    ]
    times = []
    ids, types = ref.groups[0]
    for _ in range(LATENCY_CALLS):
        start = time.perf_counter()
        backend.logits(*pad_pairs(ids, types, ref.pad_id))
        times.append(time.perf_counter() - start)
    deltas = [float(np.abs(a - b).max()) for a, b in zip(ours, ref.scores, strict=True)]
    taus = [kendall_tau(a, b) for a, b in zip(ours, ref.scores, strict=True)]
    tops = [top_k_agreement(a, b, min(3, len(a))) for a, b in zip(ours, ref.scores, strict=True)]
    report = RerankParity(
        probe_queries=ref.probe_queries,
        probe_pairs=sum(len(g[0]) for g in ref.groups[: ref.probe_queries]),
        max_abs_score=max(deltas),
        kendall_tau=float(np.nanmean(taus)),
        top3_agreement=float(np.mean(tops)),
        tolerance=tolerance,
        latency_ms_p50=round(float(np.median(times)) * 1e3, 3),
    )
    if ref.eval_groups:
        n = ref.probe_queries
        mine = ranking_report(ref.eval_groups, ours[n:])["ndcg@10"]
        torch_ndcg = ranking_report(ref.eval_groups, ref.scores[n:])["ndcg@10"]
        report.eval_queries = len(ref.eval_groups)
        report.ndcg10, report.ndcg10_torch = mine, torch_ndcg
        report.ndcg10_drop = torch_ndcg - mine
    if report.max_abs_score > tolerance.max_abs_score:
        report.failures.append(
            f"max |Δscore| {report.max_abs_score:.4g} > {tolerance.max_abs_score:g}"
        )
    if report.kendall_tau < tolerance.min_kendall_tau:
        report.failures.append(
            f"mean Kendall tau {report.kendall_tau:.4f} < {tolerance.min_kendall_tau:g}"
        )
    drop = report.ndcg10_drop
    if drop is not None and drop > tolerance.max_ndcg_drop:
        report.failures.append(f"NDCG@10 drop {drop:.4f} > {tolerance.max_ndcg_drop:g}")
    return report
