"""BM25 candidate lists: hard negatives, ensured positives, BM25's own recall, determinism."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kdedge.errors import DataError, MissingDependencyError
from kdedge.rerank.data import read_groups, write_groups

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.fixture
def bm25s():
    try:
        import bm25s
    except ImportError:
        # CI installs every extra (.ci/run sets KDEDGE_CI=1): there a missing piece fails
        give_up = pytest.fail if os.environ.get("KDEDGE_CI") == "1" else pytest.skip
        give_up("bm25s is not installed: pip install 'kdedge[rerank]'")
    return bm25s


CORPUS = {
    "git-0": "git reset --soft HEAD~1 undoes the last commit and keeps your changes",
    "git-1": "git revert creates a new commit that undoes an earlier commit",
    "branch": "rename a local git branch with git branch -m old new",
    "bread": "knead the dough, let it rise, then bake the bread for forty minutes",
    "oven": "preheat the oven before you bake bread or a cake",
    "tax": "file your tax return before the deadline to avoid a penalty",
    "python": "a python list comprehension builds a list from an iterable",
}
QUERIES = [
    ("q-undo", "how do I undo my last git commit"),
    ("q-bread", "how long to knead and bake bread"),
    ("q-tax", "when is the deadline for my tax return"),
]
RELEVANT = {
    "q-undo": {"git-0": 1.0, "git-1": 1.0},
    "q-bread": {"bread": 2.0},
    "q-tax": {"python": 1.0},  # lexically unrelated: BM25 cannot find it
}


def retrieve(**kw):
    from kdedge.rerank.retrieval import bm25_retrieve

    return bm25_retrieve(QUERIES, CORPUS, RELEVANT, **kw)


def test_top_k_are_bm25_hits_with_judged_relevance(bm25s):
    groups, report = retrieve(k=3, ensure_positives=False)
    undo = groups[0]
    assert undo.query_id == "q-undo" and undo.query == QUERIES[0][1]
    assert set(undo.doc_ids[:2]) == {"git-0", "git-1"}  # the two commit passages lead
    assert len(undo) == 3 and undo.doc_ids[2] == "branch"  # "git" only: a hard negative
    assert [c.relevance for c in undo.candidates] == [1.0, 1.0, 0.0]
    assert groups[1].doc_ids[0] == "bread" and groups[1].candidates[0].relevance == 2.0
    assert "python" not in groups[2].doc_ids  # BM25 missed it; not appended
    assert report.recall_at_k == pytest.approx((1 + 1 + 0) / 3)
    assert report.hit_rate_at_k == pytest.approx(2 / 3)
    assert report.positives_appended == 0 and report.queries_with_appended == 0


def test_missed_positives_are_appended_after_the_top_k(bm25s):
    groups, report = retrieve(k=1, ensure_positives=True)
    undo, bread, tax = groups
    # k=1 keeps one commit passage; the other positive comes right after it
    assert len(undo) == 2 and set(undo.doc_ids) == {"git-0", "git-1"}
    assert bread.doc_ids == ("bread",)
    assert tax.doc_ids[-1] == "python" and tax.candidates[-1].relevance == 1.0
    assert len(tax) == 2  # BM25's one hit, then the appended positive
    assert all(g.positives for g in groups)
    # BM25's own recall is measured before anything is appended
    assert report.recall_at_k == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert report.positives_appended == 2 and report.queries_with_appended == 2
    assert report.mean_candidates == pytest.approx((2 + 1 + 2) / 3)
    line = report.summary()
    assert "recall@1 50.00%" in line and "2 missed positives appended to 2 queries" in line


def test_k_larger_than_corpus_and_shorter_lists(bm25s):
    groups, report = retrieve(k=100, ensure_positives=False)
    # only documents sharing a word with the query are hits, so lists are shorter than k
    assert all(len(g) < len(CORPUS) for g in groups)
    assert report.k == 100 and report.corpus_size == len(CORPUS)


def test_deterministic_and_ties_keep_corpus_order(bm25s):
    from kdedge.rerank.retrieval import bm25_candidates

    corpus = {f"d{i}": "same words here" for i in range(5)} | {"x": "other thing"}
    first = bm25_candidates([("q", "same words")], corpus, {}, k=3)
    again = bm25_candidates([("q", "same words")], corpus, {}, k=3)
    assert first == again
    assert first[0].doc_ids == ("d0", "d1", "d2")


def test_queries_without_positives_and_without_hits(bm25s):
    from kdedge.rerank.retrieval import bm25_retrieve

    queries = [("hit", "bake bread"), ("nothing", "zzz qqq"), ("stop", "the of and")]
    groups, report = bm25_retrieve(queries, CORPUS, {}, k=5)
    assert [g.query_id for g in groups] == ["hit"]
    assert report.queries == 3 and report.queries_without_positive == 3
    assert report.queries_without_candidates == 2
    assert report.recall_at_k == 0.0
    assert "2 queries left out" in report.summary()
    # a query BM25 cannot match still gets its positive when ensured
    groups, report = bm25_retrieve([("nothing", "zzz")], CORPUS, {"nothing": {"tax": 1}}, k=5)
    assert groups[0].doc_ids == ("tax",) and report.recall_at_k == 0.0


def test_input_errors(bm25s):
    from kdedge.rerank.retrieval import bm25_retrieve

    with pytest.raises(DataError, match="not in the corpus"):
        bm25_retrieve([("q", "x")], CORPUS, {"q": {"missing": 1}})
    with pytest.raises(DataError, match="duplicate query id 'q'"):
        bm25_retrieve([("q", "x"), ("q", "y")], CORPUS, {})
    with pytest.raises(DataError, match="corpus is empty"):
        bm25_retrieve([("q", "x")], {}, {})
    with pytest.raises(ValueError, match="k must be"):
        bm25_retrieve([("q", "x")], CORPUS, {}, k=0)


def test_missing_bm25s_names_the_extra(monkeypatch):
    import sys

    from kdedge.rerank.retrieval import bm25_candidates

    monkeypatch.setitem(sys.modules, "bm25s", None)  # import bm25s -> ImportError
    with pytest.raises(MissingDependencyError, match=r"kdedge\[rerank\]"):
        bm25_candidates([("q", "x")], CORPUS, {})


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def faq(doc_id: str, question: str, answer: str) -> dict:
    return {"doc_id": doc_id, "thread_id": doc_id[:2], "question": question, "answer": answer}


def test_stackfaq_layout_end_to_end(tmp_path, bm25s):
    from kdedge.rerank.retrieval import stackfaq_groups

    corpus = write_jsonl(
        tmp_path / "corpus.jsonl",
        [
            faq("t0-a0", "Undo a git commit", "reset"),
            faq("t0-a1", "Undo a git commit", "revert"),
            faq("t1-a0", "Bake bread", "oven"),
        ],
    )
    queries = write_jsonl(
        tmp_path / "test.jsonl",
        [{"text": "undo my commit", "label": "t0"}, {"text": "bread baking", "label": "t1"}],
    )
    groups, report = stackfaq_groups(queries, corpus, k=1)
    assert [g.query_id for g in groups] == ["test:1", "test:2"]
    assert groups[0].candidates[0].text.startswith("Undo a git commit\n")
    assert {c.doc_id for c in groups[0].positives} == {"t0-a0", "t0-a1"}
    assert report.recall_at_k == pytest.approx((1 / 2 + 1) / 2)
    assert report.hit_rate_at_k == 1.0
    out = write_groups(tmp_path / "groups.jsonl", groups)
    assert read_groups(out) == groups


@pytest.mark.slow
def test_stackfaq_test_split_candidates(bm25s):
    """The real StackFAQ test split (../shared/data): every query gets a positive."""
    from kdedge.rerank.retrieval import stackfaq_groups

    folder = SHARED_DATA / "stackfaq"
    if not (folder / "test.jsonl").is_file():
        pytest.skip(f"StackFAQ not found at {folder}")
    groups, report = stackfaq_groups(folder / "test.jsonl", folder / "corpus.jsonl", k=50)
    assert len(groups) == report.queries == 250
    assert report.queries_without_positive == 0 and report.queries_without_candidates == 0
    assert all(g.positives for g in groups)
    assert all(len(g) <= 50 + len(g.positives) for g in groups)
    assert 0.0 < report.recall_at_k <= report.hit_rate_at_k <= 1.0
    assert "recall@50" in report.summary()
