"""The rows SFT trains and validates on, read from a build/gate folder or a JSONL file.

Training rows carry their target (the human ``reference``, else the teacher's ``answer``)
and weight; validation rows are the prompt rows ``kdedge llm eval`` and the per-epoch gates
answer and score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdedge.data.io import clip, read_jsonl
from kdedge.errors import DataError

TRAIN_FILES = ("train.jsonl", "accepted.jsonl", "answers.jsonl")


@dataclass(frozen=True)
class TrainRow:
    """One weighted training example: the prompt's parts and the target answer."""

    id: str
    question: str
    evidence: tuple[str, ...]
    answer: str
    weight: float
    kind: str = "catalog"


def _rows_file(path: Path) -> Path:
    if path.is_dir():
        for name in TRAIN_FILES:
            if (path / name).is_file():
                return path / name
        raise DataError(
            f"holds none of {', '.join(TRAIN_FILES)}. Fix: pass the folder `kdedge llm gate` "
            "or `kdedge llm build` wrote, or a JSONL file",
            path=path,
        )
    return path


def read_rows(path: str | Path) -> list[TrainRow]:
    """Training rows from a build/gate folder or a JSONL file. The target is the human
    ``reference`` when a row has one, else the teacher's ``answer``; a missing ``weight``
    comes from :func:`kdedge.llm.mix.row_weight`."""
    source = _rows_file(Path(path))
    rows = []
    for line, row in read_jsonl(source):
        target = row.get("reference") or row.get("answer")
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise DataError("'question' must be a non-empty string", path=source, line=line)
        if not isinstance(target, str) or not target.strip():
            raise DataError(
                f"row has no 'answer' or 'reference' text ({clip(row)})", path=source, line=line
            )
        weight = row.get("weight")
        if weight is None:
            from kdedge.llm.mix import row_weight

            weight, _ = row_weight(row)
        if not isinstance(weight, int | float) or not math.isfinite(weight) or weight <= 0:
            raise DataError(f"'weight' must be > 0, got {weight!r}", path=source, line=line)
        evidence = row.get("evidence") or []
        rows.append(
            TrainRow(
                id=str(row.get("id") or f"line{line}"),
                question=question.strip(),
                evidence=tuple(str(e) for e in evidence),
                answer=target.strip(),
                weight=float(weight),
                kind=str(row.get("kind") or "catalog"),
            )
        )
    if not rows:
        raise DataError("holds no training rows", path=source)
    return rows


def read_eval_rows(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Validation rows (``question``, ``evidence``, ``kind`` and the teacher's ``answer``)."""
    source = _rows_file(Path(path))
    rows = []
    for line, row in read_jsonl(source):
        if not isinstance(row.get("question"), str) or not row["question"].strip():
            raise DataError("'question' must be a non-empty string", path=source, line=line)
        rows.append(row)
    return rows[:limit]
