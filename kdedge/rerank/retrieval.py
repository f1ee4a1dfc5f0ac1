"""First-stage retrieval: BM25 candidate lists, with hard negatives, for every query.

A reranker is trained and judged on lists a cheap retriever produced: the top ``k`` BM25
documents are lexically close to the query, so the non-relevant ones are *hard* negatives.
Scoring is done by the `bm25s <https://github.com/xhluca/bm25s>`_ library (``pip install
'kdedge[rerank]'``): Lucene's BM25 variant with ``k1=1.5, b=0.75``, scikit-learn-style word
tokens, lower-cased, English stopwords removed, no stemming (so results do not depend on
whether an optional stemmer is installed).

With ``ensure_positives=True`` (the default), relevant documents BM25 did not rank in its top
``k`` are appended after them (in corpus order), so every query with a judged positive has one
in its list: the list is BM25's ranking followed by the missed positives. Ranking metrics on
such lists (:func:`kdedge.rerank.metrics.ranking_report`) measure the reranker alone, as if
the first stage had perfect recall; BM25's own recall@k is in the :class:`RetrievalReport`.

Only documents that share a word with the query (BM25 score > 0) are retrieved, as in
Lucene, so a list can be shorter than ``k``; a query with no candidate at all is left out and
counted in the report. Deterministic: ties in BM25 score keep corpus order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kdedge.errors import DataError
from kdedge.rerank.corpus import read_corpus, read_doc_labels, read_queries, relevance_from_labels
from kdedge.rerank.data import Candidate, QueryGroup

__all__ = ["RetrievalReport", "bm25_candidates", "bm25_retrieve", "stackfaq_groups"]

BM25_PARAMS = {"k1": 1.5, "b": 0.75, "method": "lucene"}
"""The scoring variant and parameters passed to ``bm25s.BM25`` (its defaults, pinned here)."""


@dataclass(frozen=True)
class RetrievalReport:
    """How well the first stage did, before any positives were appended.

    ``recall_at_k`` is the mean over queries with at least one relevant document of
    (relevant documents in BM25's top k) / (relevant documents); ``hit_rate_at_k`` is the
    fraction of those queries with at least one relevant document in the top k (success@k).
    Queries without any relevant document are counted in ``queries_without_positive`` and
    left out of both means. ``queries_without_candidates`` counts queries left out of the
    groups because no document shares a word with them and none is relevant (with
    ``ensure_positives=False``, also those whose relevant documents BM25 missed entirely).
    ``mean_candidates`` is over the groups returned.
    """

    k: int
    queries: int
    corpus_size: int
    queries_without_positive: int
    recall_at_k: float
    hit_rate_at_k: float
    positives_appended: int
    queries_with_appended: int
    queries_without_candidates: int
    mean_candidates: float
    ensure_positives: bool

    def to_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)

    def summary(self) -> str:
        """One line for a terminal."""
        appended = (
            f"{self.positives_appended} missed positives appended to "
            f"{self.queries_with_appended} queries"
            if self.ensure_positives
            else "missed positives not appended"
        )
        without = (
            f"; {self.queries_without_positive} queries have no relevant document"
            if self.queries_without_positive
            else ""
        )
        if self.queries_without_candidates:
            without += f"; {self.queries_without_candidates} queries left out: no candidate at all"
        return (
            f"{self.queries} queries, {self.mean_candidates:.1f} candidates per query "
            f"(BM25 top {self.k} of {self.corpus_size} documents); BM25 recall@{self.k} "
            f"{100 * self.recall_at_k:.2f}% (hit rate {100 * self.hit_rate_at_k:.2f}%); "
            f"{appended}{without}"
        )


def bm25_candidates(
    queries: Sequence[tuple[str, str]],
    corpus: Mapping[str, str],
    relevant: Mapping[str, Mapping[str, float]],
    *,
    k: int = 50,
    ensure_positives: bool = True,
) -> list[QueryGroup]:
    """A :class:`QueryGroup` per query, in query order: BM25's top ``k`` documents, judged.

    ``queries`` are ``(query_id, text)``; ``corpus`` maps doc_id to passage text;
    ``relevant`` maps query_id to ``{doc_id: relevance}`` (missing = not relevant). See the
    module docstring for ``ensure_positives`` and for queries without any candidate (left
    out); :func:`bm25_retrieve` also returns BM25's recall@k.
    """
    groups, _ = bm25_retrieve(queries, corpus, relevant, k=k, ensure_positives=ensure_positives)
    return groups


def bm25_retrieve(
    queries: Sequence[tuple[str, str]],
    corpus: Mapping[str, str],
    relevant: Mapping[str, Mapping[str, float]],
    *,
    k: int = 50,
    ensure_positives: bool = True,
) -> tuple[list[QueryGroup], RetrievalReport]:
    """:func:`bm25_candidates` plus a :class:`RetrievalReport` of BM25's own recall@k."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if not corpus:
        raise DataError("the corpus is empty: nothing to retrieve. Fix: give it documents")
    if not queries:
        raise DataError("no queries to retrieve candidates for")
    doc_ids = list(corpus)
    position = {doc_id: i for i, doc_id in enumerate(doc_ids)}
    seen: set[str] = set()
    for query_id, _text in queries:
        if query_id in seen:
            raise DataError(f"duplicate query id {query_id!r}: query ids must be unique")
        seen.add(query_id)
        for doc_id in relevant.get(query_id, {}):
            if doc_id not in position:
                raise DataError(
                    f"query {query_id!r} has relevant document {doc_id!r}, which is not in the "
                    "corpus. Fix: use the corpus the judgements were made on"
                )

    index = _Bm25Index([corpus[d] for d in doc_ids])
    top = min(k, len(doc_ids))
    groups: list[QueryGroup] = []
    recall_sum = hit_sum = 0.0
    without = appended = with_appended = total = empty = 0
    for query_id, text in queries:
        judged = relevant.get(query_id, {})
        positives = [d for d in doc_ids if judged.get(d, 0.0) > 0]  # corpus order
        scores = index.scores(text)
        order = np.argsort(-scores, kind="stable")
        order = order[scores[order] > 0][:top]  # as Lucene: a document sharing no word is not hit
        chosen = [doc_ids[i] for i in order]
        if positives:
            found = sum(1 for d in chosen if judged.get(d, 0.0) > 0)
            recall_sum += found / len(positives)
            hit_sum += found > 0
        else:
            without += 1
        if ensure_positives:
            in_list = set(chosen)
            missed = [d for d in positives if d not in in_list]
            chosen += missed
            appended += len(missed)
            with_appended += bool(missed)
        if not chosen:
            empty += 1  # BM25 hit nothing, and no relevant document was appended
            continue
        total += len(chosen)
        candidates = tuple(Candidate(d, corpus[d], float(judged.get(d, 0.0))) for d in chosen)
        groups.append(QueryGroup(query_id, text, candidates))
    judged_queries = len(queries) - without
    report = RetrievalReport(
        k=k,
        queries=len(queries),
        corpus_size=len(doc_ids),
        queries_without_positive=without,
        recall_at_k=recall_sum / judged_queries if judged_queries else 0.0,
        hit_rate_at_k=hit_sum / judged_queries if judged_queries else 0.0,
        positives_appended=appended,
        queries_with_appended=with_appended,
        queries_without_candidates=empty,
        mean_candidates=total / len(groups) if groups else 0.0,
        ensure_positives=ensure_positives,
    )
    return groups, report


def stackfaq_groups(
    queries_path: str | Path,
    corpus_path: str | Path,
    *,
    k: int = 50,
    ensure_positives: bool = True,
    label_field: str = "thread_id",
) -> tuple[list[QueryGroup], RetrievalReport]:
    """BM25 candidate groups for a StackFAQ-style split: labeled queries plus a corpus.

    ``queries_path`` rows are ``{"text", "label"}`` (query ids ``"<stem>:<line>"`` unless a
    ``query_id`` is given); ``corpus_path`` rows have ``doc_id``, a text (``text``, or
    ``question`` + ``answer`` joined by a newline) and ``label_field``. A document is
    relevant (1.0) to a query iff its ``label_field`` equals the query's label.
    """
    queries = read_queries(queries_path)
    corpus = read_corpus(corpus_path)
    doc_labels = read_doc_labels(corpus_path, label_field)
    relevant = relevance_from_labels(queries, doc_labels)
    pairs = [(query_id, text) for query_id, text, _label in queries]
    return bm25_retrieve(pairs, corpus, relevant, k=k, ensure_positives=ensure_positives)


class _Bm25Index:
    """bm25s behind a two-method interface: build once, score one query against all docs."""

    def __init__(self, texts: Sequence[str]) -> None:
        from kdedge.extras import require

        self._bm25s = require("bm25s", "rerank", "BM25 candidate retrieval")
        self._retriever = self._bm25s.BM25(**BM25_PARAMS, backend="numpy")
        self._retriever.index(self._tokenize(list(texts)), show_progress=False)
        self._size = len(texts)

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        return self._bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (zeros if no query word is indexed)."""
        ids = self._retriever.get_tokens_ids(self._tokenize([query])[0])
        ids = [i for i in ids if i != self._retriever.vocab_dict.get("")]
        if not ids:
            return np.zeros(self._size, dtype=np.float64)
        return np.asarray(self._retriever.get_scores_from_ids(ids), dtype=np.float64)
