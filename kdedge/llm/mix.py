"""The training mix for a refresh (seed 001 §14): group shares, row weights, effective rows.

Rows are drawn per group to fixed shares of the set -- recent traffic 50%, stable human
gold 25%, rare-class protected 15%, policy/refusal 10% -- and each row carries a loss
weight by what it is:

========================  ======  ==============================================
class                     weight  rows
========================  ======  ==============================================
``refusal_escalation``     2.5    refusal or escalation asks (the costliest errors)
``human_corrected``        2.0    a human ``reference`` (``source: human``)
``low_confidence_teacher`` 0.5    teacher answers the gate saw hedged
``clean_teacher``          1.0    every other teacher answer
========================  ======  ==============================================

checked in that order, so a human-written refusal counts as a refusal. The effective rows
of a class are its rows times its weight; the report writes the arithmetic out, e.g.
``25,000 x 1.0 + 5,000 x 3.0 + 2,000 x 2.0 = 44,000 effective rows`` (shares 56.8% /
34.1% / 9.1%).

A group with fewer rows than its share asks for is *short*: with ``short="repeat"`` (the
default) all its rows are used once and the rest of its share is drawn again at random;
with ``short="shrink"`` the whole set shrinks until every group fills its share without
repeats. A group with no rows at all gives its share to the others in proportion. The
report says which happened.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from kdedge.atomic import atomic_write, atomic_write_text
from kdedge.data.io import clip, read_jsonl
from kdedge.errors import ConfigError, DataError
from kdedge.progress import Tracker, silent

GROUPS = ("recent", "gold", "rare", "policy")
CLASSES = ("clean_teacher", "human_corrected", "refusal_escalation", "low_confidence_teacher")
POLICY_KINDS = ("refusal", "escalation")
HUMAN_SOURCES = ("human", "human_corrected", "corrected")
SHORT_MODES = ("repeat", "shrink")
TRAIN = "train.jsonl"
REPORT = "mix_report.json"
GATED = "accepted.jsonl"


@dataclass(frozen=True)
class Weights:
    """Loss weight per row class (the seeds' table)."""

    clean: float = 1.0
    human: float = 2.0
    policy: float = 2.5
    low_confidence: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"mix weight '{f.name}' must be a number > 0, got {value!r}")

    def of(self, cls: str) -> float:
        return {
            "clean_teacher": self.clean,
            "human_corrected": self.human,
            "refusal_escalation": self.policy,
            "low_confidence_teacher": self.low_confidence,
        }[cls]


@dataclass(frozen=True)
class Mix:
    """Share of the training rows per group; the shares sum to 1."""

    recent: float = 0.50
    gold: float = 0.25
    rare: float = 0.15
    policy: float = 0.10

    def __post_init__(self) -> None:
        shares = self.shares()
        bad = {k: v for k, v in shares.items() if not (math.isfinite(v) and 0.0 <= v <= 1.0)}
        if bad:
            raise ConfigError(f"mix shares must be in [0, 1], got {bad}")
        if abs(sum(shares.values()) - 1.0) > 1e-6:
            listed = ", ".join(f"{k} {v:g}" for k, v in shares.items())
            raise ConfigError(
                f"mix shares must sum to 1, got {sum(shares.values()):g} ({listed}). "
                "Fix: adjust the shares"
            )

    def shares(self) -> dict[str, float]:
        return {g: float(getattr(self, g)) for g in GROUPS}


def row_weight(row: Mapping[str, Any], weights: Weights | None = None) -> tuple[float, str]:
    """``(weight, class)`` of one training row, by the table in the module docstring.

    Low confidence is the gate's ``high_confidence: false``; a row without gate scores is
    checked for hedges directly.
    """
    weights = weights or Weights()
    gate = row.get("gate") if isinstance(row.get("gate"), Mapping) else {}
    if row.get("kind") in POLICY_KINDS or gate.get("is_refusal") or gate.get("is_escalation"):
        cls = "refusal_escalation"
    elif _is_human(row):
        cls = "human_corrected"
    elif _low_confidence(row, gate):
        cls = "low_confidence_teacher"
    else:
        cls = "clean_teacher"
    return weights.of(cls), cls


def _is_human(row: Mapping[str, Any]) -> bool:
    reference = row.get("reference")
    return row.get("source") in HUMAN_SOURCES or (
        isinstance(reference, str) and bool(reference.strip())
    )


def _low_confidence(row: Mapping[str, Any], gate: Mapping[str, Any]) -> bool:
    if "high_confidence" in gate:
        return not gate["high_confidence"]
    from kdedge.llm.speech_acts import is_hedged

    return is_hedged(str(row.get("answer", "")))


def group_of(row: Mapping[str, Any]) -> str:
    """The row's ``group``; without one: policy for refusal/escalation kinds, gold for human
    rows, recent otherwise."""
    group = row.get("group")
    if group is not None:
        if group not in GROUPS:
            raise ValueError(f"unknown group {clip(group)}; use one of {', '.join(GROUPS)}")
        return str(group)
    if row.get("kind") in POLICY_KINDS:
        return "policy"
    return "gold" if _is_human(row) else "recent"


@dataclass
class GroupReport:
    """How one group was filled."""

    share: float
    target: int = 0
    available: int = 0
    selected: int = 0
    unique: int = 0
    repeated: int = 0
    effective_rows: float = 0.0
    short: bool = False


@dataclass
class MixReport:
    """Rows and effective rows per group and weight class, with the arithmetic as text."""

    total_rows: int = 0
    effective_rows: float = 0.0
    groups: dict[str, GroupReport] = field(default_factory=dict)
    classes: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def share(self, cls: str) -> float:
        """Share of the effective rows that class ``cls`` holds."""
        if not self.effective_rows:
            return 0.0
        return self.classes.get(cls, {}).get("effective_rows", 0.0) / self.effective_rows

    @property
    def lines(self) -> list[str]:
        """The effective-row arithmetic, one line per weight class, then the total."""
        out = []
        terms = []
        width = max((len(c) for c in self.classes), default=0)
        for cls, row in self.classes.items():
            out.append(
                f"{cls:<{width}}  {_num(row['rows'])} rows x {_weight(row['weight'])} = "
                f"{_num(row['effective_rows'])} effective rows ({self.share(cls):.1%})"
            )
            terms.append(_num(row["effective_rows"]))
        out.append(
            f"total: {' + '.join(terms) or '0'} = {_num(self.effective_rows)} effective rows "
            f"from {_num(self.total_rows)} rows"
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_rows": self.total_rows,
            "effective_rows": round(self.effective_rows, 4),
            "groups": {g: asdict(r) for g, r in self.groups.items()},
            "classes": {
                c: {**r, "share_of_effective": round(self.share(c), 4)}
                for c, r in self.classes.items()
            },
            "arithmetic": self.lines,
            "notes": list(self.notes),
            **self.settings,
        }


def _weight(value: float) -> str:
    return f"{value:.1f}" if float(value * 10).is_integer() else f"{value:g}"


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}".rstrip("0")


def summarize(
    rows: Iterable[Mapping[str, Any]],
    weights: Weights | None = None,
    mix: Mix | None = None,
) -> MixReport:
    """The report for ``rows`` as they are (no sampling): rows and effective rows per weight
    class and per group."""
    weights = weights or Weights()
    shares = (mix or Mix()).shares()
    report = MixReport(groups={g: GroupReport(share=shares[g]) for g in GROUPS})
    counts: Counter[str] = Counter()
    for row in rows:
        weight, cls = row_weight(row, weights)
        group = report.groups[group_of(row)]
        group.selected += 1
        group.effective_rows += weight
        counts[cls] += 1
        report.total_rows += 1
        report.effective_rows += weight
    report.classes = {
        cls: {
            "weight": weights.of(cls),
            "rows": counts[cls],
            "effective_rows": counts[cls] * weights.of(cls),
        }
        for cls in CLASSES
        if counts[cls]
    }
    return report


def build(
    rows: Sequence[Mapping[str, Any]],
    mix: Mix | None = None,
    total: int | None = None,
    seed: int = 0,
    *,
    weights: Weights | None = None,
    short: str = "repeat",
) -> tuple[list[dict[str, Any]], MixReport]:
    """Draw ``total`` rows (default: as many as given) to the group shares of ``mix``.

    Returns the rows (shuffled, each with ``group``, ``weight`` and ``weight_reason``) and
    the report. Deterministic for a given ``seed``.
    """
    mix = mix or Mix()
    weights = weights or Weights()
    if short not in SHORT_MODES:
        raise ConfigError(f"short must be one of {', '.join(SHORT_MODES)}, got {short!r}")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 1):
        raise ConfigError(f"total must be a whole number >= 1, got {total!r}")
    pools: dict[str, list[Mapping[str, Any]]] = {g: [] for g in GROUPS}
    for i, row in enumerate(rows):
        try:
            pools[group_of(row)].append(row)
        except ValueError as exc:
            raise DataError(
                f"row {i + 1} (id {clip(row.get('id'))}): {exc}", field="group"
            ) from exc
    if not any(pools.values()):
        raise DataError("no rows to mix. Fix: gate some answers first")
    shares, notes = _fill_empty(mix.shares(), pools)
    size = len(rows) if total is None else total
    if short == "shrink":
        fits = [math.floor(len(pools[g]) / s + 1e-9) for g, s in shares.items() if s > 0]
        if min(fits) < size:
            notes.append(
                f"short='shrink': {size} rows cut to {min(fits)} so that every group fills its "
                "share without repeats"
            )
            size = min(fits)
    targets = _apportion(size, shares)
    rng = random.Random(seed)
    chosen: list[dict[str, Any]] = []
    report = MixReport(notes=notes)
    for group in GROUPS:
        pool, target = pools[group], targets[group]
        info = GroupReport(share=shares[group], target=target, available=len(pool))
        picks = rng.sample(pool, min(target, len(pool)))
        if target > len(pool) and pool:
            extra = target - len(pool)
            picks += rng.choices(pool, k=extra)
            info.short = True
            notes.append(
                f"group {group} is short: {len(pool)} rows for a target of {target} "
                f"({shares[group]:.0%} of {size}); all {len(pool)} used once and {extra} "
                "repeats drawn at random (short='repeat')"
            )
        info.selected = len(picks)
        info.unique = len({id(p) for p in picks})
        info.repeated = info.selected - info.unique
        for row in picks:
            weight, cls = row_weight(row, weights)
            out = dict(row)
            out["group"] = group
            out["weight"] = weight
            out["weight_reason"] = cls
            chosen.append(out)
        report.groups[group] = info
    rng.shuffle(chosen)
    summary = summarize(chosen, weights, mix)
    for group, info in report.groups.items():
        info.effective_rows = summary.groups[group].effective_rows
    report.total_rows = summary.total_rows
    report.effective_rows = summary.effective_rows
    report.classes = summary.classes
    report.settings = {
        "mix": mix.shares(),
        "weights": asdict(weights),
        "seed": seed,
        "short": short,
        "requested_total": total,
        "input_rows": len(rows),
    }
    return chosen, report


def _fill_empty(
    shares: dict[str, float], pools: Mapping[str, list[Any]]
) -> tuple[dict[str, float], list[str]]:
    """Shares with each empty group's share spread over the groups that have rows."""
    empty = [g for g, s in shares.items() if s > 0 and not pools[g]]
    if not empty:
        return shares, []
    freed = sum(shares[g] for g in empty)
    rest = {g: s for g, s in shares.items() if g not in empty and pools[g]}
    base = sum(rest.values())
    out = {g: 0.0 for g in shares}
    for g, s in rest.items():
        out[g] = s + freed * (s / base if base else 1 / len(rest))
    note = (
        f"group(s) {', '.join(empty)} have no rows; their {freed:.0%} went to the other groups "
        "in proportion to their shares"
    )
    return out, [note]


def _apportion(total: int, shares: Mapping[str, float]) -> dict[str, int]:
    """Whole row counts per group summing to ``total`` (largest remainders)."""
    raw = {g: total * s for g, s in shares.items()}
    counts = {g: math.floor(v) for g, v in raw.items()}
    left = total - sum(counts.values())
    for g in sorted(raw, key=lambda g: (counts[g] - raw[g], GROUPS.index(g)))[:left]:
        counts[g] += 1
    return counts


def read_gated(sources: str | Path | Sequence[str | Path]) -> list[dict[str, Any]]:
    """Rows from gate folders (their ``accepted.jsonl``) or JSONL files, checked per line."""
    paths = [sources] if isinstance(sources, (str, Path)) else list(sources)
    rows: list[dict[str, Any]] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            if not (path / GATED).is_file():
                raise DataError(
                    f"holds no {GATED}. Fix: pass the folder `kdedge llm gate` wrote, or a "
                    "JSONL file of rows",
                    path=path,
                )
            path = path / GATED
        for line, row in read_jsonl(path):
            question = row.get("question")
            if not isinstance(question, str) or not question.strip():
                raise DataError(
                    f"must be a non-empty string, got {clip(question)}",
                    path=path,
                    line=line,
                    field="question",
                )
            target = row.get("reference") or row.get("answer")
            if not isinstance(target, str) or not target.strip():
                raise DataError(
                    "row has no 'answer' or 'reference' text. Fix: mix gated rows",
                    path=path,
                    line=line,
                    field="answer",
                )
            try:
                group_of(row)
            except ValueError as exc:
                raise DataError(f"{exc}", path=path, line=line, field="group") from None
            rows.append(row)
    return rows


def build_dir(
    gated: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    mix: Mix | None = None,
    total: int | None = None,
    seed: int = 0,
    *,
    weights: Weights | None = None,
    short: str = "repeat",
    track: Tracker = silent,
) -> MixReport:
    """Mix gated rows into ``out_dir/train.jsonl`` and write ``mix_report.json`` beside it."""
    rows = read_gated(gated)
    chosen, report = build(rows, mix, total, seed, weights=weights, short=short)
    out = Path(out_dir)
    with atomic_write(out / TRAIN) as handle:
        for row in track(chosen, "writing the training mix", total=len(chosen)):
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    atomic_write_text(out / REPORT, json.dumps(report.to_dict(), indent=2) + "\n")
    return report
