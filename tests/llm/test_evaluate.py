from __future__ import annotations

from pathlib import Path

import pytest

from kdedge.llm.catalog import Catalog
from kdedge.llm.collect import read_prompts
from kdedge.llm.demo_answers import DemoTeacher
from kdedge.llm.evaluate import Gates, score, token_f1

SAMPLES = Path(__file__).parents[2] / "kdedge" / "samples" / "manga_llm"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(SAMPLES / "catalog.jsonl")


def _rows(catalog: Catalog, teacher: DemoTeacher) -> tuple[list[dict], list]:
    rows, found = [], []
    for p in read_prompts(SAMPLES / "prompts_validation.jsonl"):
        evidence = [r.evidence_line() for r in catalog.retrieve(p.question)]
        said = teacher.answer(p.question, evidence)
        rows.append(
            {
                "id": p.id,
                "question": p.question,
                "kind": p.kind,
                "evidence": evidence,
                "answer": said.text,
            }
        )
        found.append(said)
    return rows, found


def test_hallucination_rate_counts_exactly_the_injected_errors(catalog: Catalog) -> None:
    rows, said = _rows(catalog, DemoTeacher(catalog, error_rate=0.3, seed=1))
    metrics, _ = score(rows, [s.text for s in said], catalog)
    injected = sum(s.error is not None for s in said)
    assert injected > 5
    assert metrics["hallucinated"] == injected
    assert metrics["hallucination_rate"] == pytest.approx(injected / len(rows), abs=1e-4)
    assert metrics["teacher_agreement"] == 1.0  # the teacher agrees with itself
    assert metrics["refusal_precision"] == 1.0 and metrics["escalation_recall"] == 1.0


def test_a_model_that_refuses_everything_has_poor_refusal_precision(catalog: Catalog) -> None:
    rows, _ = _rows(catalog, DemoTeacher(catalog))
    refusals = ["Sorry, I can't help with that request."] * len(rows)
    metrics, _ = score(rows, refusals, catalog)
    share = sum(r["kind"] == "refusal" for r in rows) / len(rows)
    assert metrics["refusal_precision"] == pytest.approx(share, abs=1e-4)
    assert metrics["teacher_agreement"] < 0.2
    failures = Gates().check({**metrics, "cost_reduction": 0.7})
    assert any(f.startswith("refusal_precision") for f in failures)
    assert not any(f.startswith("cost_reduction") for f in failures)


def test_token_f1() -> None:
    assert token_f1("Nana is $9.99 in paperback.", "nana is $9.99 in paperback") == 1.0
    assert token_f1("yes", "no") == 0.0
    assert 0 < token_f1("Nana paperback in stock", "Nana hardcover in stock") < 1
