"""The sweep report: accuracy and router figures per model, the gap closed, what the cache saved.

Numpy-free and torch-free, so the CLI can render a stored report without importing either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class SweepReport:
    workdir: Path
    rows: list[dict[str, Any]] = field(default_factory=list)  # teachers first, then variants
    cost: dict[str, Any] = field(default_factory=dict)
    not_run: list[str] = field(default_factory=list)  # variants with no result yet (``only``)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workdir": str(self.workdir),
            "rows": self.rows,
            "cost": self.cost,
            "not_run": self.not_run,
        }


def in_scope(row: dict[str, Any]) -> float:
    """A row's argmax in-scope accuracy (plain accuracy when there is no OOS label)."""
    m = row["metrics"]
    return m["in_scope_accuracy"] if m.get("in_scope_accuracy") is not None else m["accuracy"]


def add_gap_closed(rows: list[dict[str, Any]], baseline: str | None) -> None:
    """Share of the (best teacher - baseline) gap in :func:`in_scope` accuracy that each
    student closed."""
    teachers = [r for r in rows if r["kind"] == "teacher"]
    base = next((r for r in rows if r["kind"] == "student" and r["name"] == baseline), None)
    if not teachers or base is None:
        return
    gap = max(in_scope(r) for r in teachers) - in_scope(base)
    for r in rows:  # None when the baseline is not below the teacher: nothing to close
        if r["kind"] == "student":
            r["gap_closed"] = round((in_scope(r) - in_scope(base)) / gap, 4) if gap > 0 else None


def cost_summary(students: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Teacher and student seconds paid, and the teacher seconds the cache saved."""
    paid = sum(r["teacher_seconds"] for r in students)
    student = sum(r["student_seconds"] for r in students)
    savings = [(r["labeling"] or {}).get("saved_seconds") for r in students if r["labeling"]]
    known = all(s is not None for s in savings)
    saved = sum(s for s in savings if s is not None)
    with_cache = paid + student
    return {
        "runs": len(students),
        "teacher_seconds_paid": round(paid, 3),
        "student_seconds": round(student, 3),
        "teacher_seconds_saved": round(saved, 3) if known else None,
        "seconds_with_cache": round(with_cache, 3),
        "seconds_without_cache": round(with_cache + saved, 3) if known else None,
        "saved_share": round(saved / (with_cache + saved), 4)
        if known and with_cache + saved
        else None,
        "cache_hits": sum((r["labeling"] or {}).get("cache_hits", 0) for r in students),
        "cache_misses": sum((r["labeling"] or {}).get("cache_misses", 0) for r in students),
    }


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def table_rows(report: SweepReport) -> list[list[str]]:
    """One row per teacher and variant: the figures the Markdown and terminal tables show."""
    rows = []
    for r in report.rows:
        m, routed, argmax = r["metrics"], r.get("router", {}), r.get("argmax", {})
        rows.append(
            [
                r["name"],
                str(r["layers"]),
                _pct(in_scope(r)),
                _pct(routed.get("in_scope_accuracy")),
                _pct(argmax.get("oos_recall")),
                _pct(routed.get("oos_recall")),
                _pct(routed.get("oos_precision")),
                f"{routed['threshold']:.3f}" if routed else "—",
                f"{m['ece']:.4f}",
                "—" if r.get("gap_closed") is None else f"{100 * r['gap_closed']:.0f}%",
                "—" if r["kind"] == "teacher" else f"{r['student_seconds']:.0f}",
            ]
        )
    return rows


HEADERS = [
    "model",
    "layers",
    "in-scope acc (argmax)",
    "in-scope acc (router)",
    "OOS recall (argmax)",
    "OOS recall (router)",
    "OOS precision (router)",
    "router threshold",
    "ECE",
    "gap closed",
    "student s",
]
SHORT_HEADERS = [
    "model",
    "L",
    "acc",
    "acc@thr",
    "OOS R",
    "OOS R@thr",
    "OOS P@thr",
    "thr",
    "ECE",
    "gap",
    "s",
]


def markdown(report: SweepReport) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    c = report.cost
    lines += ["", cost_sentence(c), ""]
    if report.not_run:
        lines += [f"Not run yet: {', '.join(report.not_run)}.", ""]
    return "\n".join(lines)


def cost_sentence(c: dict[str, Any]) -> str:
    """The seed-000 arithmetic in one sentence."""
    if not c.get("runs"):
        return "no student runs"
    if c.get("teacher_seconds_saved") is None:
        return (
            f"{c['runs']} runs: teacher {_s(c['teacher_seconds_paid'])} paid, students "
            f"{_s(c['student_seconds'])}; the cache's savings are unknown (a teacher's cost "
            "per text was never measured into this cache)"
        )
    return (
        f"{c['runs']} runs, {c['cache_hits']:,} cached teacher labels reused, "
        f"{c['cache_misses']:,} computed: with the cache {_s(c['seconds_with_cache'])} "
        f"(teacher {_s(c['teacher_seconds_paid'])} + students {_s(c['student_seconds'])}); "
        f"without it {_s(c['seconds_without_cache'])}. The cache saved "
        f"{_s(c['teacher_seconds_saved'])} of teacher time "
        f"({100 * (c['saved_share'] or 0):.0f}% of the sweep)."
    )


def _s(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 100 else f"{seconds:.1f} s"
