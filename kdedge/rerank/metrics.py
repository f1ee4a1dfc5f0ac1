"""Ranking metrics for rerankers: NDCG, MRR, recall, and teacher/student rank agreement.

Numpy only (scipy is used for Kendall's tau when it is importable): the torch-free runtime
and the converters import this module.

Definitions (the standard ones, as ``trec_eval`` computes them):

* **DCG@k** = sum over ranks ``i = 1..k`` of ``gain(rel_i) / log2(i + 1)``, with
  ``gain(rel) = rel`` (``gain="linear"``, trec_eval's ``ndcg_cut``) or ``2**rel - 1``
  (``gain="exponential"``, Burges et al. 2005). Every rank is discounted, rank 1 by
  ``log2(2) = 1``. (The original Järvelin–Kekäläinen 2002 form, which leaves ranks 1-2
  undiscounted and divides by ``log2(i)`` after, is *not* what this module computes.)
* **NDCG@k** = DCG@k of the ranking / DCG@k of the ideal ranking, the ideal being the
  judged relevances sorted from high to low. It is 0.0 when the ideal DCG is 0 (nothing
  relevant), as in trec_eval.
* **MRR@k** = 1 / rank of the first candidate with relevance > 0 within the top k, else 0.
* **recall@k** = relevant candidates (relevance > 0) in the top k / relevant candidates in
  the list. It is measured *within the candidate list*: if the first stage missed some
  relevant documents they count neither here nor in the ideal DCG, so these numbers measure
  the reranker alone (see :mod:`kdedge.rerank.retrieval` for the first stage's own recall).

Ties in scores are broken by position in the candidate list (:func:`rank` is a stable sort),
so every metric is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from kdedge.errors import KdedgeError

if TYPE_CHECKING:
    from kdedge.rerank.data import QueryGroup

Gain = Literal["linear", "exponential"]

__all__ = [
    "ScoresError",
    "dcg_at_k",
    "kendall_tau",
    "ndcg_at_k",
    "rank",
    "ranking_report",
    "top_k_agreement",
]


class ScoresError(KdedgeError, ValueError):
    """Scores or relevances that cannot be ranked (wrong length, NaN, not 1-D).

    A :class:`ValueError` for library callers and a :class:`KdedgeError`, so the CLI
    prints it on one line and exits with status 2.
    """


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ScoresError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def _vector(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ScoresError(f"{what} must be numbers, got {values!r:.80}") from None
    if array.ndim != 1:
        raise ScoresError(f"{what} must be one-dimensional, got shape {array.shape}")
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise ScoresError(f"{what} must be finite, got {array[bad]} at position {bad}")
    return array


def _relevances(values: Sequence[float] | np.ndarray, what: str = "relevance") -> np.ndarray:
    array = _vector(values, what)
    if (array < 0).any():
        bad = int(np.flatnonzero(array < 0)[0])
        raise ScoresError(f"{what} must be >= 0, got {array[bad]} at position {bad}")
    return array


def _gains(relevance: np.ndarray, gain: Gain) -> np.ndarray:
    if gain == "linear":
        return relevance
    if gain == "exponential":
        return np.exp2(relevance) - 1.0
    raise ScoresError(f"gain must be 'linear' or 'exponential', got {gain!r}")


def dcg_at_k(
    relevance_in_ranked_order: Sequence[float] | np.ndarray, k: int, *, gain: Gain = "linear"
) -> float:
    """Discounted cumulative gain of the first ``k`` items: ``sum gain(rel_i) / log2(i + 1)``.

    ``relevance_in_ranked_order[0]`` is the relevance of the item ranked first. Fewer than
    ``k`` items is fine (the sum stops at the end of the list).
    """
    k = _check_k(k)
    rel = _relevances(relevance_in_ranked_order)[:k]
    discounts = np.log2(np.arange(2, rel.size + 2, dtype=np.float64))
    return float(np.sum(_gains(rel, gain) / discounts))


def ndcg_at_k(
    relevance_in_ranked_order: Sequence[float] | np.ndarray,
    k: int,
    ideal: Sequence[float] | np.ndarray | None = None,
    *,
    gain: Gain = "linear",
) -> float:
    """DCG@k of the ranking divided by the DCG@k of the ideal ranking; 0.0 if that is 0.

    ``ideal`` is the set of judged relevances to sort for the ideal ranking (any order);
    by default the relevances of the ranked items themselves. Pass all judged relevances
    of the query when the ranked list may miss relevant documents, to charge for them.
    """
    rel = _relevances(relevance_in_ranked_order)
    ideal_rel = rel if ideal is None else _relevances(ideal, "ideal relevance")
    best = dcg_at_k(np.sort(ideal_rel)[::-1], k, gain=gain)
    if best == 0.0:
        return 0.0
    return dcg_at_k(rel, k, gain=gain) / best


def rank(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Candidate indices from the highest score to the lowest; ties keep list order.

    ``scores[rank(scores)[0]]`` is the top score. NaN or infinite scores raise
    :class:`ScoresError` rather than being sorted somewhere arbitrary.
    """
    values = _vector(scores, "scores")
    return np.argsort(-values, kind="stable")


def ranking_report(
    groups: Sequence[QueryGroup],
    scores: Sequence[Sequence[float] | np.ndarray],
    ks: Sequence[int] = (3, 5, 10),
    *,
    gain: Gain = "linear",
) -> dict[str, float]:
    """Mean NDCG@k, MRR@max(ks) and recall@k over queries, ranking each group by ``scores``.

    ``scores[i][j]`` is the score of ``groups[i].candidates[j]``. Keys: ``"ndcg@K"`` and
    ``"recall@K"`` for each K in ``ks``, ``"mrr@M"`` with M = max(ks), ``"queries"`` (how many
    were averaged) and ``"queries_without_positive"``: queries with no candidate of relevance
    > 0 have no defined NDCG/MRR/recall, so they are left out of the means and counted there.
    All means are 0.0 when no query has a positive. Metrics are within the candidate list
    (see the module docstring).
    """
    ks = sorted({_check_k(k) for k in ks})
    if not ks:
        raise ScoresError("ks is empty: give at least one cutoff, e.g. (3, 5, 10)")
    if len(groups) != len(scores):
        raise ScoresError(f"{len(groups)} query groups but {len(scores)} score lists")
    mrr_k = ks[-1]
    sums = {f"ndcg@{k}": 0.0 for k in ks}
    sums[f"mrr@{mrr_k}"] = 0.0
    sums.update({f"recall@{k}": 0.0 for k in ks})
    counted = skipped = 0
    for group, group_scores in zip(groups, scores, strict=True):
        rel = np.asarray(group.relevances(), dtype=np.float64)
        values = _vector(group_scores, f"scores of query {group.query_id!r}")
        if values.shape != rel.shape:
            raise ScoresError(
                f"query {group.query_id!r} has {rel.size} candidates but {values.size} scores"
            )
        positive = rel > 0
        n_pos = int(positive.sum())
        if n_pos == 0:
            skipped += 1
            continue
        counted += 1
        ranked = rel[rank(values)]
        hits = np.flatnonzero(ranked > 0)
        for k in ks:
            sums[f"ndcg@{k}"] += ndcg_at_k(ranked, k, gain=gain)
            sums[f"recall@{k}"] += int((ranked[:k] > 0).sum()) / n_pos
        if hits.size and hits[0] < mrr_k:
            sums[f"mrr@{mrr_k}"] += 1.0 / (hits[0] + 1)
    report = {key: (value / counted if counted else 0.0) for key, value in sums.items()}
    report["queries"] = float(counted)
    report["queries_without_positive"] = float(skipped)
    return report


def kendall_tau(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Kendall's tau-b between two score vectors for the same candidates (-1..1).

    Uses :func:`scipy.stats.kendalltau` (tau-b, O(n log n)) when scipy is importable, else
    an O(n^2) numpy version of the same tau-b (fine for candidate lists of a few hundred).
    NaN when it is undefined: fewer than 2 items, or one vector is constant (as scipy).
    """
    x, y = _vector(a, "a"), _vector(b, "b")
    if x.shape != y.shape:
        raise ScoresError(f"a has {x.size} values but b has {y.size}")
    if x.size < 2:
        return math.nan
    try:
        from scipy.stats import kendalltau as scipy_kendalltau
    except ImportError:
        return _kendall_tau_numpy(x, y)
    if np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan  # scipy agrees, but newer versions also warn about it
    return float(scipy_kendalltau(x, y).statistic)


def _kendall_tau_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """tau-b = (concordant - discordant) / sqrt((n0 - ties_x) * (n0 - ties_y)), O(n^2)."""
    upper = np.triu_indices(x.size, k=1)
    sx = np.sign(x[:, None] - x[None, :])[upper]
    sy = np.sign(y[:, None] - y[None, :])[upper]
    n0 = sx.size
    denominator = math.sqrt(
        float(n0 - np.count_nonzero(sx == 0)) * (n0 - np.count_nonzero(sy == 0))
    )
    if denominator == 0.0:
        return math.nan
    return float(np.sum(sx * sy) / denominator)


def top_k_agreement(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, k: int
) -> float:
    """``|top-k(a) ∩ top-k(b)| / k``: how many of one ranking's top k the other keeps.

    Ties are broken by position (:func:`rank`). With fewer than ``k`` candidates, ``k`` is
    the list length (two identical rankings always agree 1.0).
    """
    k = _check_k(k)
    x, y = _vector(a, "a"), _vector(b, "b")
    if x.shape != y.shape:
        raise ScoresError(f"a has {x.size} values but b has {y.size}")
    if x.size == 0:
        raise ScoresError("a and b are empty: nothing to rank")
    k = min(k, x.size)
    common = np.intersect1d(rank(x)[:k], rank(y)[:k], assume_unique=True)
    return common.size / k
