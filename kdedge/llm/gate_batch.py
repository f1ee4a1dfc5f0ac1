"""Gating a collected answer set: ``answers.jsonl`` in, accepted and rejected rows and a
:class:`GateReport` out (what ``kdedge llm gate`` runs). Each answer is judged by
:func:`kdedge.llm.gate.assess`; rows with a human ``reference`` are kept as gold, ungated.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdedge.atomic import atomic_write, atomic_write_text
from kdedge.data.io import clip, read_jsonl
from kdedge.errors import DataError
from kdedge.llm.catalog import Catalog
from kdedge.llm.gate import KINDS, GateRule, assess
from kdedge.progress import Tracker, silent

ACCEPTED = "accepted.jsonl"
REJECTED = "rejected.jsonl"
REPORT = "gate_report.json"
ANSWERS = "answers.jsonl"


@dataclass
class GateReport:
    """Counts of one gate run. The acceptance rate is over teacher answers (gold rows apart)."""

    rows: int = 0
    human_rows: int = 0
    teacher_rows: int = 0
    accepted: int = 0
    rejected: int = 0
    hallucinated: int = 0
    by_reason: Counter = field(default_factory=Counter)
    by_kind: dict[str, Counter] = field(default_factory=dict)
    rule: GateRule = field(default_factory=GateRule)
    paths: dict[str, str] = field(default_factory=dict)

    @property
    def acceptance_rate(self) -> float | None:
        return round(self.accepted / self.teacher_rows, 4) if self.teacher_rows else None

    @property
    def hallucination_rate(self) -> float | None:
        return round(self.hallucinated / self.teacher_rows, 4) if self.teacher_rows else None

    def to_dict(self) -> dict[str, Any]:
        by_kind = {}
        for kind, counts in sorted(self.by_kind.items()):
            rows = counts["accepted"] + counts["rejected"]
            by_kind[kind] = {
                "rows": rows,
                "accepted": counts["accepted"],
                "rejected": counts["rejected"],
                "human": counts["human"],
                "acceptance_rate": round(counts["accepted"] / rows, 4) if rows else None,
            }
        return {
            "rows": self.rows,
            "human_rows": self.human_rows,
            "teacher_rows": self.teacher_rows,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "acceptance_rate": self.acceptance_rate,
            "hallucinated": self.hallucinated,
            "hallucination_rate": self.hallucination_rate,
            "rejected_by_reason": dict(self.by_reason.most_common()),
            "by_kind": by_kind,
            "rule": self.rule.to_dict(),
            **({"paths": self.paths} if self.paths else {}),
        }

    def lines(self) -> list[str]:
        """A short human-readable summary."""
        rate = self.acceptance_rate
        out = [
            f"{self.teacher_rows} teacher answers: {self.accepted} accepted, {self.rejected} "
            f"rejected (acceptance {rate:.1%})"
            if rate is not None
            else "no teacher answers",
            f"{self.human_rows} human reference rows kept as gold (not gated)",
        ]
        if self.by_reason:
            out.append(
                "rejected for: " + ", ".join(f"{k} {v}" for k, v in self.by_reason.most_common())
            )
        return out


def gate_rows(
    rows: Iterable[Mapping[str, Any]],
    catalog: Catalog,
    rule: GateRule | None = None,
    *,
    track: Tracker = silent,
    total: int | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], GateReport]:
    """Gate collected rows: ``(accepted, rejected, report)``; every output row is the input
    row plus ``source`` and ``gate`` (scores, reasons, claims)."""
    rule = rule or GateRule()
    report = GateReport(rule=rule)
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for row in track(rows, "gating answers", total=total):
        out = dict(row)
        kind = str(row.get("kind") or "catalog")
        counts = report.by_kind.setdefault(kind, Counter())
        report.rows += 1
        reference = row.get("reference")
        if isinstance(reference, str) and reference.strip():
            out["source"] = "human"
            out["gate"] = {"accepted": True, "reasons": ["human_reference"], "gated": False}
            report.human_rows += 1
            counts["human"] += 1
            accepted.append(out)
            continue
        found = assess(
            str(row.get("answer", "")),
            catalog,
            question=str(row.get("question", "")),
            evidence=_row_evidence(row),
            kind=str(row["kind"]) if row.get("kind") else None,
            rule=rule,
        )
        out.setdefault("source", "teacher")
        out["gate"] = found.to_dict()
        report.teacher_rows += 1
        report.hallucinated += found.hallucinated
        if found.accepted:
            report.accepted += 1
            counts["accepted"] += 1
            accepted.append(out)
        else:
            report.rejected += 1
            counts["rejected"] += 1
            report.by_reason.update(found.reasons)
            rejected.append(out)
    return accepted, rejected, report


def _row_evidence(row: Mapping[str, Any]) -> list[str] | None:
    ids = row.get("evidence_ids")
    if isinstance(ids, list) and ids:
        return [str(i) for i in ids]
    lines = row.get("evidence")
    if isinstance(lines, list) and lines:
        return [str(line) for line in lines]
    return None


def _answers_file(path: Path) -> Path:
    if path.is_dir():
        if (path / ANSWERS).is_file():
            return path / ANSWERS
        found = sorted(p.name for p in path.glob("*.jsonl"))
        raise DataError(
            f"holds no {ANSWERS} (found: {', '.join(found) or 'no .jsonl files'}). "
            "Fix: pass the folder `kdedge llm collect` wrote, or the answers file itself",
            path=path,
        )
    return path


def read_answers(path: str | Path, catalog: Catalog) -> list[dict[str, Any]]:
    """Collected answer rows, checked field by field; errors name file and line."""
    source = _answers_file(Path(path))
    rows = [_check_row(row, catalog, source, line) for line, row in read_jsonl(source)]
    if not rows:
        raise DataError("holds no answers. Fix: run `kdedge llm collect` first", path=source)
    return rows


def _check_row(row: dict[str, Any], catalog: Catalog, source: Path, line: int) -> dict[str, Any]:
    def fail(message: str, name: str) -> DataError:
        return DataError(message, path=source, line=line, field=name)

    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise fail(f"must be a non-empty string, got {clip(question)}", "question")
    reference = row.get("reference")
    if not isinstance(row.get("answer"), str) and not (
        isinstance(reference, str) and reference.strip()
    ):
        raise fail(
            f"must be the teacher's answer text, got {clip(row.get('answer'))}. Fix: re-run "
            "`kdedge llm collect`, or give the row a human 'reference'",
            "answer",
        )
    for name in ("evidence", "evidence_ids"):
        value = row.get(name)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise fail(f"must be a list of strings, got {clip(value)}", name)
    unknown = [i for i in row.get("evidence_ids") or [] if i not in catalog]
    if unknown:
        raise fail(
            f"names record(s) {', '.join(map(repr, unknown[:3]))} that are not in the catalog. "
            "Fix: gate with the catalog the answers were collected with",
            "evidence_ids",
        )
    kind = row.get("kind")
    if kind is not None and kind not in KINDS:
        raise fail(f"unknown kind {clip(kind)}. Fix: use one of {', '.join(KINDS)}", "kind")
    return row


def gate_dir(
    answers_path: str | Path,
    catalog_path: str | Path,
    out_dir: str | Path,
    rule: GateRule | None = None,
    *,
    track: Tracker = silent,
) -> GateReport:
    """Gate ``answers.jsonl`` (a file, or the collect folder holding it) against a catalog;
    writes ``accepted.jsonl``, ``rejected.jsonl`` and ``gate_report.json`` to ``out_dir``."""
    catalog = Catalog.load(catalog_path)
    source = _answers_file(Path(answers_path))
    rows = read_answers(source, catalog)
    accepted, rejected, report = gate_rows(rows, catalog, rule, track=track, total=len(rows))
    out = Path(out_dir)
    report.paths = {"answers": str(source), "catalog": str(catalog_path), "out": str(out)}
    for name, items in ((ACCEPTED, accepted), (REJECTED, rejected)):
        with atomic_write(out / name) as handle:
            for item in items:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    atomic_write_text(out / REPORT, json.dumps(report.to_dict(), indent=2) + "\n")
    return report
