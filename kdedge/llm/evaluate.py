"""Score a response model's answers: catalog hallucinations, refusals, agreement with the teacher.

Every answer is checked by the same grounding gate that filters the teacher's training data
(:mod:`kdedge.llm.gate`), so "hallucination" means one thing across the pipeline: an answer
with a catalog claim that the catalog does not support or contradicts. Agreement with the
teacher is measured without a judge model: the *action* (answer, cannot-confirm, refuse,
escalate) must match, and for answers the content overlap is a token F1.

The promotion gates are the seeds': hallucination rate <= 4%, refusal precision >= 94%,
teacher agreement >= 85%, and cost per 1K responses at least 50% below the teacher's.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

ACTIONS = ("answer", "cannot_confirm", "refusal", "escalation")
_WORD = re.compile(r"\$?\d+(?:\.\d+)?|[a-z0-9]+")


@dataclass(frozen=True)
class Gates:
    """Release gates for a response model (the seeds' defaults)."""

    max_hallucination_rate: float = 0.04
    min_refusal_precision: float = 0.94
    min_teacher_agreement: float = 0.85
    min_cost_reduction: float = 0.50

    def check(self, metrics: dict[str, Any]) -> list[str]:
        """The gates ``metrics`` fail, as readable lines (empty = all pass)."""
        failures = []
        rules = (
            ("hallucination_rate", self.max_hallucination_rate, "<="),
            ("refusal_precision", self.min_refusal_precision, ">="),
            ("teacher_agreement", self.min_teacher_agreement, ">="),
            ("cost_reduction", self.min_cost_reduction, ">="),
        )
        for key, bound, op in rules:
            value = metrics.get(key)
            if value is None:
                continue
            ok = value <= bound if op == "<=" else value >= bound
            if not ok:
                failures.append(f"{key} {value:.4f} {'>' if op == '<=' else '<'} {bound:g}")
        return failures

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def action(assessment: Any) -> str:
    """What an answer does, from its gate assessment."""
    if assessment.is_escalation:
        return "escalation"
    if assessment.is_refusal:
        return "refusal"
    if getattr(assessment, "is_cannot_confirm", False):
        return "cannot_confirm"
    return "answer"


def token_f1(a: str, b: str) -> float:
    """Bag-of-words F1 between two answers (lowercased words, numbers and prices)."""
    x, y = Counter(_WORD.findall(a.lower())), Counter(_WORD.findall(b.lower()))
    common = sum((x & y).values())
    if not x or not y or not common:
        return float(not x and not y)
    precision, recall = common / sum(x.values()), common / sum(y.values())
    return 2 * precision * recall / (precision + recall)


@dataclass
class Scored:
    """One prompt's answer and what the gate found in it."""

    id: str
    kind: str
    answer: str
    action: str
    hallucinated: bool
    reasons: list[str]
    teacher_action: str | None = None
    f1: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def score(
    rows: Sequence[dict[str, Any]],
    answers: Sequence[str],
    catalog: Any,
) -> tuple[dict[str, Any], list[Scored]]:
    """Metrics of ``answers`` to ``rows`` (prompt rows with ``question``, ``kind``, and the
    teacher's ``answer`` when agreement is wanted), judged against ``catalog``."""
    from kdedge.llm.gate import assess

    if len(rows) != len(answers):
        raise ValueError(f"{len(rows)} rows but {len(answers)} answers")
    scored = []
    for row, text in zip(rows, answers, strict=True):
        found = assess(text, catalog, question=row["question"])
        item = Scored(
            id=str(row.get("id", "")),
            kind=str(row.get("kind", "catalog")),
            answer=text,
            action=action(found),
            hallucinated=bool(found.hallucinated),
            reasons=list(found.reasons) if found.hallucinated else [],
        )
        teacher = row.get("answer")
        if isinstance(teacher, str) and teacher:
            item.teacher_action = action(assess(teacher, catalog, question=row["question"]))
            item.f1 = token_f1(text, teacher)
        scored.append(item)
    return metrics(scored), scored


def _share(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def metrics(scored: Sequence[Scored]) -> dict[str, Any]:
    """Aggregate rates over scored answers."""
    n = len(scored)
    out: dict[str, Any] = {
        "answers": n,
        "hallucinated": sum(s.hallucinated for s in scored),
        "hallucination_rate": _share(sum(s.hallucinated for s in scored), n),
        "actions": dict(Counter(s.action for s in scored)),
    }
    for act in ("refusal", "escalation"):
        made = [s for s in scored if s.action == act]
        due = [s for s in scored if s.kind == act]
        out[f"{act}_precision"] = _share(sum(s.kind == act for s in made), len(made))
        out[f"{act}_recall"] = _share(sum(s.action == act for s in due), len(due))
    paired = [s for s in scored if s.teacher_action is not None]
    agree = sum(s.action == s.teacher_action for s in paired)
    out["teacher_agreement"] = _share(agree, len(paired))
    both = [s for s in paired if s.action == s.teacher_action == "answer"]
    out["content_f1"] = round(sum(s.f1 or 0 for s in both) / len(both), 4) if both else None
    return out


@dataclass
class Timing:
    """Generation cost of a set of answers."""

    seconds: float = 0.0
    completion_tokens: int = 0
    responses: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float | None:
        return round(self.completion_tokens / self.seconds, 1) if self.seconds > 0 else None

    def cost_per_1k(self, price_per_hour: float) -> float | None:
        """USD per 1,000 responses on a machine billed ``price_per_hour``, one stream."""
        if not self.responses or self.seconds <= 0:
            return None
        return round(price_per_hour / 3600 * self.seconds / self.responses * 1000, 4)


def _rows_with_evidence(rows: list[dict[str, Any]], catalog: Any) -> list[dict[str, Any]]:
    """Rows as given when they carry evidence; else with the catalog's retrieved records."""
    out = []
    for row in rows:
        if row.get("evidence") is None:
            found = catalog.retrieve(row["question"])
            row = {**row, "evidence": [r.evidence_line() for r in found]}
        out.append(row)
    return out


def _bundle_generator(bundle: Any, artifact: str | None, threads: int | None) -> tuple:
    from kdedge.runtimes.loader import load

    rt = load(bundle, artifact=artifact, threads=threads)
    if not hasattr(rt, "generate"):
        rt.close()
        from kdedge.errors import ConfigError

        raise ConfigError(f"{bundle} is a {rt.manifest.task} bundle; llm eval needs a generate one")

    def run(batch: list[dict[str, Any]], max_new: int) -> list[tuple[str, int]]:
        out = []
        for row in batch:
            g = rt.generate(row["question"], row["evidence"], route=False, max_tokens=max_new)
            out.append((g.text, g.tokens))
        return out

    return run, rt.artifact.name, rt.close


def _model_generator(path: Any) -> tuple:
    from kdedge.distill.device import resolve
    from kdedge.llm.generator import TorchGenerator
    from kdedge.llm.models import load_causal_lm

    placement = resolve("auto")
    model, tokenizer = load_causal_lm(path)
    model.to(placement.device)
    from kdedge.llm.prompts import SYSTEM_PROMPT

    return TorchGenerator(model, tokenizer, placement, SYSTEM_PROMPT), "torch", lambda: None


def evaluate_target(
    target: Any,
    data: Any,
    catalog_path: Any,
    *,
    artifact: str | None = None,
    threads: int | None = None,
    limit: int | None = None,
    max_new_tokens: int = 128,
    price_per_hour: float = 0.0384,
    teacher_cost_per_1k: float | None = None,
    gates: Gates | None = None,
    track: Any = None,
) -> dict[str, Any]:
    """Answer every prompt of ``data`` with ``target`` (a generate bundle, or a Hugging Face
    model folder run by torch), score the answers and check the gates."""
    from pathlib import Path

    from kdedge.llm.catalog import Catalog
    from kdedge.llm.rows import read_eval_rows
    from kdedge.progress import silent
    from kdedge.runtimes.bundle import MANIFEST

    gates = gates or Gates()
    catalog = Catalog.load(catalog_path)
    rows = _rows_with_evidence(read_eval_rows(data, limit), catalog)
    if (Path(target) / MANIFEST).is_file():
        generate, artifact_name, close = _bundle_generator(target, artifact, threads)
        batch = 1
    else:
        generate, artifact_name, close = _model_generator(target)
        batch = 8
    timing = Timing()
    answers: list[str] = []
    try:
        chunks = [rows[i : i + batch] for i in range(0, len(rows), batch)]
        for chunk in (track or silent)(chunks, "answering", len(chunks)):
            start = time.perf_counter()
            out = generate(chunk, max_new_tokens)
            timing.seconds += time.perf_counter() - start
            timing.responses += len(out)
            timing.completion_tokens += sum(n for _, n in out)
            answers += [text for text, _ in out]
    finally:
        close()
    found, scored = score(rows, answers, catalog)
    found["tokens_per_s"] = timing.tokens_per_s
    found["seconds_per_response"] = round(timing.seconds / max(timing.responses, 1), 3)
    found["cost_per_1k"] = timing.cost_per_1k(price_per_hour)
    if teacher_cost_per_1k is None:
        costs = [float(r["cost_usd"]) for r in rows if r.get("cost_usd")]
        teacher_cost_per_1k = round(1000 * sum(costs) / len(costs), 4) if costs else None
    found["teacher_cost_per_1k"] = teacher_cost_per_1k
    found["cost_reduction"] = (
        round(1 - found["cost_per_1k"] / teacher_cost_per_1k, 4)
        if teacher_cost_per_1k and found["cost_per_1k"] is not None
        else None
    )
    return {
        "target": str(target),
        "artifact": artifact_name,
        "data": str(data),
        "metrics": found,
        "gates": gates.to_dict(),
        "gate_failures": gates.check(found),
        "price_per_hour": price_per_hour,
        "answers": [s.to_dict() for s in scored],
    }
