from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from kdedge.errors import ConfigError, DataError
from kdedge.llm.mix import (
    REPORT,
    TRAIN,
    Mix,
    Weights,
    build,
    build_dir,
    group_of,
    row_weight,
    summarize,
)

SAMPLES = Path(__file__).parents[2] / "kdedge" / "samples" / "manga_llm"


def _teacher(i: int, group: str = "recent", confident: bool = True) -> dict:
    return {
        "id": f"t{i}",
        "question": f"q{i}",
        "kind": "catalog",
        "group": group,
        "answer": f"a{i}",
        "source": "teacher",
        "gate": {"accepted": True, "high_confidence": confident},
    }


def _human(i: int) -> dict:
    return {
        "id": f"h{i}",
        "question": f"q{i}",
        "group": "gold",
        "answer": "x",
        "reference": "r",
        "source": "human",
    }


def _policy(i: int) -> dict:
    return {
        "id": f"p{i}",
        "question": f"q{i}",
        "kind": "refusal",
        "group": "policy",
        "answer": "I can't help with that.",
    }


def test_the_seeds_effective_row_example() -> None:
    """25,000 teacher + 5,000 corrected x3 + 2,000 refusal x2 = 44,000 effective rows."""
    rows = [_teacher(i) for i in range(25_000)]
    rows += [_human(i) for i in range(5_000)] + [_policy(i) for i in range(2_000)]
    report = summarize(rows, Weights(human=3.0, policy=2.0))
    assert report.total_rows == 32_000 and report.effective_rows == 44_000
    shares = {c: round(report.share(c) * 100, 1) for c in report.classes}
    assert shares == {"clean_teacher": 56.8, "human_corrected": 34.1, "refusal_escalation": 9.1}
    assert report.lines == [
        "clean_teacher       25,000 rows x 1.0 = 25,000 effective rows (56.8%)",
        "human_corrected     5,000 rows x 3.0 = 15,000 effective rows (34.1%)",
        "refusal_escalation  2,000 rows x 2.0 = 4,000 effective rows (9.1%)",
        "total: 25,000 + 15,000 + 4,000 = 44,000 effective rows from 32,000 rows",
    ]
    # the same rows drawn at exactly those shares come out the same
    mix = Mix(recent=25 / 32, gold=5 / 32, rare=0.0, policy=2 / 32)
    _, built = build(rows, mix, weights=Weights(human=3.0, policy=2.0))
    assert built.effective_rows == 44_000 and built.lines == report.lines
    assert all(g.repeated == 0 for g in built.groups.values())


@pytest.mark.parametrize(
    ("row", "weight", "cls"),
    [
        (_teacher(0), 1.0, "clean_teacher"),
        (_teacher(0, confident=False), 0.5, "low_confidence_teacher"),
        ({"question": "q", "answer": "Nana is probably in stock."}, 0.5, "low_confidence_teacher"),
        ({"question": "q", "answer": "Nana is in stock."}, 1.0, "clean_teacher"),
        (_human(0), 2.0, "human_corrected"),
        ({**_teacher(0), "source": "corrected"}, 2.0, "human_corrected"),
        (_policy(0), 2.5, "refusal_escalation"),
        ({**_human(0), "kind": "escalation"}, 2.5, "refusal_escalation"),  # policy first
        (
            {**_teacher(0), "gate": {"is_refusal": True, "high_confidence": False}},
            2.5,
            "refusal_escalation",
        ),
    ],
)
def test_row_weight_follows_the_table(row: dict, weight: float, cls: str) -> None:
    assert row_weight(row) == (weight, cls)


def test_group_of_reads_or_infers_the_group() -> None:
    assert group_of({"group": "rare"}) == "rare"
    assert group_of({"kind": "escalation"}) == "policy"
    assert group_of({"reference": "gold answer"}) == "gold"
    assert group_of({"kind": "catalog"}) == "recent"
    with pytest.raises(ValueError, match="unknown group 'vip'"):
        group_of({"group": "vip"})


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="must sum to 1"):
        Mix(recent=0.6)
    with pytest.raises(ConfigError, match="in \\[0, 1\\]"):
        Mix(recent=1.2, gold=-0.2, rare=0.0, policy=0.0)
    with pytest.raises(ConfigError, match="'human' must be a number > 0"):
        Weights(human=0)
    rows = [_teacher(0)]
    with pytest.raises(ConfigError, match="total must be"):
        build(rows, total=0)
    with pytest.raises(ConfigError, match="short must be one of"):
        build(rows, short="drop")
    with pytest.raises(DataError, match=r"row 1 .*unknown group"):
        build([{**_teacher(0), "group": "vip"}])


def _pool() -> list[dict]:
    rows = [_teacher(i) for i in range(300)] + [
        _teacher(i, confident=False) for i in range(300, 400)
    ]
    rows += [_human(i) for i in range(150)]
    rows += [_teacher(i, group="rare") for i in range(400, 500)]
    rows += [_policy(i) for i in range(80)]
    return rows


def test_build_draws_each_group_to_its_share_without_repeats() -> None:
    rows = _pool()
    chosen, report = build(rows, total=500, seed=3)
    groups = Counter(r["group"] for r in chosen)
    assert groups == {"recent": 250, "gold": 125, "rare": 75, "policy": 50}
    assert len({r["id"] for r in chosen}) == 500 and not report.notes
    assert all(r["weight"] == row_weight(r)[0] and r["weight_reason"] for r in chosen)
    assert report.total_rows == 500
    assert report.effective_rows == pytest.approx(sum(r["weight"] for r in chosen))
    assert report.groups["gold"].effective_rows == 125 * 2.0
    again, _ = build(rows, total=500, seed=3)
    assert [r["id"] for r in again] == [r["id"] for r in chosen]  # deterministic
    other, _ = build(rows, total=500, seed=4)
    assert [r["id"] for r in other] != [r["id"] for r in chosen]
    assert rows[0] == _teacher(0)  # inputs untouched


def test_short_groups_repeat_or_shrink_and_say_so() -> None:
    pool = _pool()
    rows = pool[:400] + pool[400:420] + [r for r in pool if r["group"] in ("rare", "policy")]
    chosen, report = build(rows, total=400, seed=0)
    gold = report.groups["gold"]
    assert (gold.target, gold.available, gold.selected, gold.unique, gold.repeated) == (
        100,
        20,
        100,
        20,
        80,
    )
    assert gold.short and len(report.notes) == 1
    assert report.notes[0].startswith("group gold is short: 20 rows for a target of 100")
    assert Counter(r["group"] for r in chosen)["gold"] == 100
    chosen, report = build(rows, total=400, seed=0, short="shrink")
    assert report.total_rows == len(chosen) < 400
    assert all(g.repeated == 0 for g in report.groups.values())
    assert any("short='shrink'" in n for n in report.notes)


def test_an_empty_group_gives_its_share_to_the_others() -> None:
    rows = [_teacher(i) for i in range(100)] + [_policy(i) for i in range(100)]
    chosen, report = build(rows, total=60)
    counts = Counter(r["group"] for r in chosen)
    assert counts == {"recent": 50, "policy": 10}
    assert "gold, rare have no rows" in report.notes[0]


def test_build_dir_on_gated_sample_rows(tmp_path: Path) -> None:
    """The train prompts as if gated: gold rows fall short of 25% and are repeated."""
    gated = tmp_path / "gated"
    gated.mkdir()
    rows = [json.loads(line) for line in (SAMPLES / "prompts_train.jsonl").read_text().splitlines()]
    for row in rows:
        row["answer"] = row.get("reference") or "Nana is in stock."
    (gated / "accepted.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = build_dir(gated, tmp_path / "train", seed=0)
    written = [json.loads(x) for x in (tmp_path / "train" / TRAIN).read_text().splitlines()]
    assert len(written) == 400 == report.total_rows
    assert Counter(r["group"] for r in written) == {
        "recent": 200,
        "gold": 100,
        "rare": 60,
        "policy": 40,
    }
    saved = json.loads((tmp_path / "train" / REPORT).read_text())
    assert saved["arithmetic"] == report.lines and saved["groups"]["gold"]["short"]
    assert saved["effective_rows"] == 200 * 1.0 + 100 * 2.0 + 60 * 1.0 + 40 * 2.5
    assert saved["mix"] == {"recent": 0.5, "gold": 0.25, "rare": 0.15, "policy": 0.1}


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"answer": "x"}, "question"),
        ({"question": "q"}, "answer"),
        ({"question": "q", "answer": "x", "group": "vip"}, "group"),
    ],
)
def test_build_dir_names_file_and_line_of_bad_rows(tmp_path: Path, row: dict, field: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(_teacher(0)) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError) as info:
        build_dir(path, tmp_path / "out")
    assert (info.value.line, info.value.field) == (2, field)
    assert not (tmp_path / "out").exists()
    with pytest.raises(DataError, match=r"holds no accepted\.jsonl"):
        build_dir(tmp_path, tmp_path / "out")
