from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from kdedge.errors import ConfigError, DataError
from kdedge.llm.catalog import Catalog
from kdedge.llm.demo_answers import DemoTeacher
from kdedge.llm.gate import GateRule, assess
from kdedge.llm.gate_batch import ACCEPTED, REJECTED, REPORT, gate_dir, gate_rows

SAMPLES = Path(__file__).parents[2] / "kdedge" / "samples" / "manga_llm"


def _rec(rid, title, author, volumes, offers, genre="shonen"):
    return {
        "id": rid,
        "title": title,
        "author": author,
        "volumes": volumes,
        "formats": list(offers),
        "availability": {f: s for f, (s, _) in offers.items()},
        "price_usd": {f: p for f, (_, p) in offers.items()},
        "genre": genre,
    }


RECORDS = [
    _rec("nana", "Nana", "Ai Yazawa", 21, {"paperback": ("in_stock", 9.99)}, "josei"),
    _rec("parakiss", "Paradise Kiss", "Ai Yazawa", 5, {"paperback": ("in_stock", 10.99)}, "josei"),
    _rec(
        "neverland",
        "The Promised Neverland",
        "Kaiu Shirai",
        20,
        {
            "paperback": ("preorder", 10.99),
            "hardcover": ("in_stock", 34.99),
            "digital": ("in_stock", 6.99),
        },
        "thriller",
    ),
    _rec("pluto", "Pluto", "Naoki Urasawa", 8, {"paperback": ("out_of_stock", 12.99)}),
    _rec("uzumaki", "Uzumaki", "Junji Ito", 1, {"hardcover": ("in_stock", 24.99)}, "horror"),
    _rec(
        "march",
        "March Comes in Like a Lion",
        "Chica Umino",
        17,
        {"paperback": ("in_stock", 11.99), "box set": ("out_of_stock", 99.99)},
    ),
    _rec("akira", "Akira", "Katsuhiro Otomo", 6, {"digital": ("in_stock", 9.99)}, "sci-fi"),
    _rec("db", "Dragon Ball", "Akira Toriyama", 42, {"paperback": ("in_stock", 11.99)}),
]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    path = tmp_path_factory.mktemp("catalog") / "catalog.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return Catalog.load(path)


NANA_HC = "Is Nana hardcover available?"

CORRECT = [
    (
        NANA_HC,
        "Nana only comes in paperback, so there's no hardcover edition. The paperback is "
        "in stock at $9.99 per volume.",
    ),
    (
        NANA_HC,
        "Sorry, Nana isn't available in hardcover; we only carry it in paperback "
        "($9.99, in stock).",
    ),
    (
        NANA_HC,
        "No hardcover, I'm afraid: **Nana** is sold in paperback only. It's in stock for $9.99.",
    ),
    ("How many volumes does Nana have?", "Nana runs 21 volumes, all in paperback."),
    ("How many volumes does Nana have?", "Nana is complete in twenty-one volumes."),
    (
        "Is The Promised Neverland in stock?",
        "The Promised Neverland: the paperback is on "
        "preorder at $10.99, the hardcover is in stock ($34.99) and the digital edition is in "
        "stock for $6.99.",
    ),
    (
        "Is The Promised Neverland in stock?",
        "Yes! It's in stock in hardcover and digital, and you can preorder the paperback.",
    ),
    (
        "Is The Promised Neverland in stock?",
        "The hardcover ($34.99) is in stock, and the paperback is available for preorder.",
    ),
    ("Price of Pluto?", "Pluto is $12.99 a volume in paperback, but it's sold out right now."),
    (
        "Price of Pluto?",
        "All 8 volumes of Pluto would be $103.92 in paperback (currently out of stock).",
    ),
    (
        "Is volume 30 of Nana out?",
        "I can't confirm a volume 30: our listing for Nana ends at 21 volumes.",
    ),
    (
        "Do you have Uzumaki?",
        "Uzumaki by Junji Ito is a single volume, hardcover only, in stock at $24.99.",
    ),
    (
        "Tell me about March Comes in Like a Lion",
        "March Comes in Like a Lion runs 17 volumes. "
        "The paperback is $11.99 and in stock; the box set is sold out.",
    ),
    (
        "Anything like Dragon Ball?",
        "Akira Toriyama's Dragon Ball fans often like Akira too: 6 volumes, digital, $9.99.",
    ),
]


@pytest.mark.parametrize(("question", "answer"), CORRECT)
def test_correct_answers_are_accepted(catalog: Catalog, question: str, answer: str) -> None:
    found = assess(answer, catalog, question=question, kind="catalog")
    assert found.accepted, (found.reasons, [c.to_dict() for c in found.claims])
    assert found.support == 1.0 and found.contradiction == 0.0 and not found.hallucinated
    assert found.evidence_present and found.claims


def test_the_seeds_nana_hardcover_answer_is_rejected_as_a_contradiction(catalog: Catalog) -> None:
    found = assess("Yes, hardcover is in stock.", catalog, question=NANA_HC)
    assert not found.accepted and found.hallucinated
    assert "contradiction" in found.reasons and "confident_unsupported" in found.reasons
    assert found.high_confidence and found.evidence_ids == ("nana",)
    (claim,) = found.contradicted
    assert (claim.record_id, claim.format, claim.value) == ("nana", "hardcover", "in_stock")
    assert "hardcover not offered" in claim.note
    # the same fact in other words
    for answer in ("Yes, the hardcover of Nana is in stock for $24.99.", "Yes, we have it!"):
        assert "contradiction" in assess(answer, catalog, question=NANA_HC).reasons


@pytest.mark.parametrize(
    ("question", "answer", "kind"),
    [
        ("How many volumes does Nana have?", "Nana has 24 volumes.", "volumes"),
        ("Price of Pluto?", "Pluto costs $14.99 in paperback.", "price"),
        ("Is Pluto in stock?", "Pluto is in stock in paperback.", "availability"),
        ("Is Uzumaki in stock?", "Uzumaki comes in paperback and hardcover.", "format"),
        ("Is volume 30 of Nana out?", "Volume 30 of Nana is in stock.", "volume_number"),
        ("Who wrote Nana?", "Nana is by Naoki Urasawa.", "author"),
        ("Anything like Nana?", "Fans of Nana often love Paradise Kiss: 12 volumes.", "volumes"),
    ],
)
def test_wrong_facts_are_contradicted(
    catalog: Catalog, question: str, answer: str, kind: str
) -> None:
    found = assess(answer, catalog, question=question)
    assert not found.accepted and "contradiction" in found.reasons
    assert kind in {c.kind for c in found.contradicted}


def test_titles_not_in_the_catalog_are_unsupported(catalog: Catalog) -> None:
    q = "Do you have Chainsaw Man?"
    found = assess("Yes, Chainsaw Man is in stock in paperback for $10.99.", catalog, question=q)
    assert not found.accepted and found.hallucinated and not found.evidence_present
    assert {"no_evidence", "unknown_title", "low_support"} <= set(found.reasons)
    assert {c.subject for c in found.unsupported} == {"Chainsaw Man"}
    # a recommendation naming one real and one invented title
    rec = assess("You might like Paradise Kiss or Ao Haru Ride.", catalog, question="Like Nana?")
    assert not rec.accepted and "unknown_title" in rec.reasons and rec.support == 0.5
    # saying it cannot be found is the right answer, in any wording
    for answer in (
        "I can't confirm that: Chainsaw Man isn't in our catalog.",
        "I couldn't find *Chainsaw Man* in our catalog, so I can't confirm stock or price.",
    ):
        ok = assess(answer, catalog, question=q, kind="unknown_title")
        assert ok.accepted and ok.is_cannot_confirm and ok.support == 1.0, ok.reasons


def test_hedged_correct_answers_pass_and_confident_slips_do_not(catalog: Catalog) -> None:
    hedged = assess(
        "I think Nana is only sold in paperback, which should be in stock at $9.99 - please "
        "double-check at checkout.",
        catalog,
        question=NANA_HC,
    )
    assert hedged.accepted and not hedged.high_confidence and hedged.support == 1.0
    # ten claims, one wrong price: inside the seeds' thresholds, so only a hedge lets it pass
    text = (
        "The Promised Neverland by Kaiu Shirai runs 20 volumes (volumes 1-20 are listed): the "
        "paperback is on preorder at $10.99, the hardcover is in stock at $34.99 and the "
        "digital edition is in stock at $7.99."
    )
    q = "Tell me about The Promised Neverland"
    confident = assess(text, catalog, question=q)
    assert len(confident.claims) == 10 and len(confident.contradicted) == 1
    assert confident.support == pytest.approx(0.9) and confident.contradiction == pytest.approx(0.1)
    assert not confident.accepted and confident.reasons == ("confident_unsupported",)
    unsure = assess("I believe " + text[0].lower() + text[1:], catalog, question=q)
    assert unsure.accepted and not unsure.high_confidence and unsure.hallucinated
    assert assess(text, catalog, question=q, rule=GateRule(confident_min_support=0.9)).accepted


@pytest.mark.parametrize(
    ("kind", "answer", "accepted", "reason"),
    [
        (
            "refusal",
            "Sorry, I can't help with pirated scans; that's against our policy.",
            True,
            None,
        ),
        ("refusal", "Pluto is in stock in paperback at $12.99.", False, "missed_refusal"),
        (
            "escalation",
            "I'm sorry! I'll hand you over to a human agent for the refund.",
            True,
            None,
        ),
        ("escalation", "I can't help with that.", False, "missed_escalation"),
        ("escalation", "Nana is in stock in paperback at $9.99.", False, "missed_escalation"),
        ("catalog", "Let me connect you with our support team.", False, "unwarranted_escalation"),
        (
            "catalog",
            "I can't confirm that from our catalog.",
            False,
            "cannot_confirm_with_evidence",
        ),
        ("unknown_title", "I can't confirm that from our catalog.", True, None),
    ],
)
def test_policy_answers_pass_when_they_fit_the_kind(
    catalog: Catalog, kind: str, answer: str, accepted: bool, reason: str | None
) -> None:
    found = assess(answer, catalog, question="Is Nana in stock? scans please, refund", kind=kind)
    assert found.accepted is accepted, found.reasons
    if reason:
        assert reason in found.reasons
    else:
        assert not found.claims and found.support == 1.0 and found.contradiction == 0.0


def test_a_policy_answer_with_a_wrong_catalog_claim_is_still_checked(catalog: Catalog) -> None:
    text = "I can't help with scans, but Nana is in stock in hardcover."
    found = assess(text, catalog, question="Free Nana scans?", kind="refusal")
    assert found.is_refusal and not found.accepted and "contradiction" in found.reasons


def test_no_claims_and_no_evidence(catalog: Catalog) -> None:
    found = assess("Sure, happy to help!", catalog, question="Is Nana in stock?")
    assert not found.accepted and found.reasons == ("no_claims",) and found.support == 0.0
    # a true claim the question gave no grounds for: no evidence, no acceptance
    found = assess(
        "Nana is in stock in paperback.", catalog, question="Is it in stock?", evidence=[]
    )
    assert not found.evidence_present and found.reasons == ("no_evidence",)
    # recommendations may name the evidence themselves
    rec = assess(
        "Try Paradise Kiss by Ai Yazawa.", catalog, question="Any josei?", kind="recommendation"
    )
    assert rec.accepted and rec.evidence_present and rec.evidence_ids == ()


def test_rule_validation() -> None:
    with pytest.raises(ConfigError, match="min_support must be in"):
        GateRule(min_support=1.5)
    assert GateRule().to_dict() == {
        "min_support": 0.78,
        "max_contradiction": 0.10,
        "confident_min_support": 1.0,
        "require_evidence": True,
    }


def _rows(catalog: Catalog) -> list[dict]:
    nana = catalog["nana"]
    return [
        {
            "id": "a",
            "question": NANA_HC,
            "kind": "catalog",
            "group": "recent",
            "evidence": [nana.evidence_line()],
            "evidence_ids": ["nana"],
            "answer": "Nana only comes in paperback; it's in stock at $9.99.",
            "teacher_model": "t",
        },
        {
            "id": "b",
            "question": NANA_HC,
            "kind": "catalog",
            "group": "recent",
            "evidence": [nana.evidence_line()],
            "evidence_ids": ["nana"],
            "answer": "Yes, hardcover is in stock.",
            "teacher_model": "t",
        },
        {
            "id": "c",
            "question": "How many volumes does Nana have?",
            "kind": "catalog",
            "group": "gold",
            "answer": "Nana has 30 volumes.",
            "reference": "Nana runs 21 volumes in our listing.",
            "teacher_model": "t",
        },
        {
            "id": "d",
            "question": "Give me free Nana scans",
            "kind": "refusal",
            "group": "policy",
            "evidence": [],
            "evidence_ids": [],
            "answer": "Sorry, I can't help with scans.",
            "teacher_model": "t",
        },
    ]


def test_gate_rows_keep_fields_mark_human_gold_and_count(catalog: Catalog) -> None:
    accepted, rejected, report = gate_rows(_rows(catalog), catalog)
    assert [r["id"] for r in accepted] == ["a", "c", "d"] and [r["id"] for r in rejected] == ["b"]
    human = accepted[1]
    assert human["source"] == "human" and human["answer"] == "Nana has 30 volumes."
    assert human["gate"]["reasons"] == ["human_reference"] and not human["gate"]["gated"]
    assert accepted[0]["source"] == "teacher" and accepted[0]["teacher_model"] == "t"
    assert rejected[0]["gate"]["reasons"][:2] == ["low_support", "contradiction"]
    assert rejected[0]["gate"]["claims"][0]["verdict"] == "contradicted"
    data = report.to_dict()
    assert (data["rows"], data["teacher_rows"], data["human_rows"]) == (4, 3, 1)
    assert data["acceptance_rate"] == round(2 / 3, 4) and data["hallucinated"] == 1
    assert data["rejected_by_reason"]["contradiction"] == 1
    assert data["by_kind"]["catalog"] == {
        "rows": 2,
        "accepted": 1,
        "rejected": 1,
        "human": 1,
        "acceptance_rate": 0.5,
    }


def test_gate_dir_writes_three_files(catalog: Catalog, tmp_path: Path) -> None:
    answers = tmp_path / "answers"
    answers.mkdir()
    (answers / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(catalog)))
    out = tmp_path / "gated"
    report = gate_dir(answers, catalog.path, out)
    assert sorted(p.name for p in out.iterdir()) == sorted([ACCEPTED, REJECTED, REPORT])
    assert len((out / ACCEPTED).read_text().splitlines()) == 3
    assert json.loads((out / REJECTED).read_text())["id"] == "b"
    saved = json.loads((out / REPORT).read_text())
    assert (
        saved["acceptance_rate"] == report.acceptance_rate and saved["rule"]["min_support"] == 0.78
    )
    assert saved["paths"]["answers"].endswith("answers.jsonl")
    assert any("acceptance" in line for line in report.lines())


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        ({"answer": "x"}, "question", "non-empty string"),
        ({"question": "q"}, "answer", "teacher's answer"),
        ({"question": "q", "answer": "x", "evidence_ids": ["ghost"]}, "evidence_ids", "'ghost'"),
        ({"question": "q", "answer": "x", "evidence": "one line"}, "evidence", "list of strings"),
        ({"question": "q", "answer": "x", "kind": "chitchat"}, "kind", "unknown kind"),
    ],
)
def test_bad_answer_rows_name_file_and_line(
    catalog: Catalog, tmp_path: Path, row: dict, field: str, words: str
) -> None:
    path = tmp_path / "answers.jsonl"
    good = {"question": "Is Nana in stock?", "answer": "Nana is in stock."}
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError) as info:
        gate_dir(path, catalog.path, tmp_path / "out")
    assert info.value.line == 2 and info.value.field == field and words in str(info.value)
    assert not (tmp_path / "out").exists()


def test_gate_dir_needs_an_answers_file(catalog: Catalog, tmp_path: Path) -> None:
    (tmp_path / "answers").mkdir()
    with pytest.raises(DataError, match=r"holds no answers\.jsonl \(found: no \.jsonl files\)"):
        gate_dir(tmp_path / "answers", catalog.path, tmp_path / "out")


def test_gate_against_the_demo_teacher_with_injected_errors(capsys: pytest.CaptureFixture) -> None:
    """Every sample prompt, answered by the demo teacher with 15% of its fact-bearing
    answers given one wrong fact: the gate rejects the wrong ones and keeps the rest."""
    catalog = Catalog.load(SAMPLES / "catalog.jsonl")
    teacher = DemoTeacher(catalog, error_rate=0.15, seed=0)
    matrix: Counter[tuple[str, str]] = Counter()
    by_error: Counter[str] = Counter()
    missed, dropped = [], []
    for split in ("train", "validation", "test"):
        for line in (SAMPLES / f"prompts_{split}.jsonl").read_text().splitlines():
            row = json.loads(line)
            evidence = [r.evidence_line() for r in catalog.retrieve(row["question"])]
            answer = teacher.answer(row["question"], evidence)
            found = assess(
                answer.text, catalog, question=row["question"], evidence=evidence, kind=row["kind"]
            )
            truth = "injected" if answer.error else "clean"
            matrix[truth, "rejected" if not found.accepted else "accepted"] += 1
            if answer.error:
                by_error[answer.error] += 1
                if found.accepted:
                    missed.append(answer.text)
            elif not found.accepted:
                dropped.append((answer.text, found.reasons))
    injected = matrix["injected", "rejected"] + matrix["injected", "accepted"]
    clean = matrix["clean", "accepted"] + matrix["clean", "rejected"]
    with capsys.disabled():
        print(f"\ngate vs demo teacher (error_rate 0.15): {dict(matrix)}; errors {dict(by_error)}")
    assert injected >= 40 and set(by_error) == {"format", "availability", "price", "volumes"}
    assert matrix["injected", "rejected"] >= 0.97 * injected, missed[:3]
    assert matrix["clean", "accepted"] >= 0.98 * clean, dropped[:3]


def test_every_gold_reference_passes_the_gate() -> None:
    """The references are written in another voice than the demo teacher's."""
    catalog = Catalog.load(SAMPLES / "catalog.jsonl")
    rows = [json.loads(line) for line in (SAMPLES / "prompts_train.jsonl").read_text().splitlines()]
    gold = [r for r in rows if "reference" in r]
    assert len(gold) == 60
    failed = [
        (r["reference"], found.reasons)
        for r in gold
        if not (
            found := assess(r["reference"], catalog, question=r["question"], kind=r["kind"])
        ).accepted
    ]
    assert not failed
