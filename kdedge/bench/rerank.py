"""Bench a ``rerank`` bundle: one query against 10, 50 and 100 candidates per artifact and
target (p50 / p95 ms, documents/s), cold start and peak RSS, beside torch cross-encoders
(``--compare-torch``: the teacher and the student) measured in the same run with the same
thread limits; with ``paired``, the 50-candidate call interleaved with an A/A control.

Candidates come from ``--data`` (a query-group file: its first query with at least 10
candidates, passages cycled up to 100) or, without it, from a built-in set of FAQ-length
passages; either way the report records which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdedge.bench.harness import (
    BenchReport,
    BenchSettings,
    Row,
    measure,
    measure_paired,
    target_record,
)
from kdedge.bench.host import describe
from kdedge.bench.targets import Target
from kdedge.errors import ConfigError
from kdedge.progress import Tracker
from kdedge.runtimes.bundle import Artifact, Manifest
from kdedge.runtimes.selection import engine_installed

SIZES = (10, 50, 100)
PAIRED_SIZE = 50
DEFAULT_QUERY = "how do I cross out text in a markdown comment on github?"
# FAQ answers of realistic length (20-80 words), varied topics and shapes.
DEFAULT_PASSAGES = (
    "Wrap the words in two tildes on each side, like ~~this~~, and the text renders with a "
    "line through it in issues, pull requests and comments.",
    "To delete your account, open Settings, choose Account, then Delete account. You will be "
    "asked for your password and the deletion is final after fourteen days.",
    "Orders ship within two business days. Once a parcel leaves the warehouse you receive an "
    "email with a tracking number; the carrier's page then shows each scan.",
    "Markdown supports headings with #, emphasis with one or two asterisks, inline code with "
    "backticks and links with [text](url). Tables need a header row and dashes.",
    "Refunds go back to the original payment method within five to ten days. If the card has "
    "expired the bank forwards the money to the replacement card automatically.",
    "You can change the default branch of a repository under Settings, Branches. Open pull "
    "requests keep their base branch until you edit them.",
    "Use the <del> element for deleted text and <ins> for inserted text; both are allowed in "
    "GitHub comments and render as strikethrough and underline.",
    "Two-factor authentication protects the account with a code from an app or a security key. "
    "Recovery codes let you sign in if the phone is lost; keep them somewhere safe.",
)


def _candidates(data: str | Path | None) -> tuple[str, list[str], str]:
    """(query, passages, where they came from)."""
    if data is None:
        return DEFAULT_QUERY, list(DEFAULT_PASSAGES), "built-in FAQ passages"
    from kdedge.rerank.data import read_groups

    groups = read_groups(data)
    group = next((g for g in groups if len(g.candidates) >= 10), None)
    if group is None:
        raise ConfigError(f"{data}: no query has 10 or more candidates to benchmark with")
    where = f"{data} (query {group.query_id}, {len(group.candidates)} candidates, cycled)"
    return group.query, [c.text for c in group.candidates], where


def bench_rerank(
    bundle: Path,
    manifest: Manifest,
    chosen: list[Artifact],
    resolved: dict[str, Target],
    settings: BenchSettings,
    track: Tracker,
) -> BenchReport:
    """Rows per passing artifact and target, plus one torch row per ``compare_torch`` dir."""
    query, passages, source = _candidates(settings.data)
    report = BenchReport(
        host=describe(),
        bundle=str(bundle),
        settings={
            "task": "rerank",
            "sizes": list(SIZES),
            "paired_size": PAIRED_SIZE,
            "repeats": settings.repeats,
            "cold_runs": settings.cold_runs,
            "data": source,
            "max_length": manifest.max_length,
            "paired": settings.paired,
        },
        targets={},
    )
    base = {"query": query, "passages": passages, "sizes": list(SIZES)}
    base.update(paired_size=PAIRED_SIZE, repeats=settings.repeats)
    plan: list[tuple[Target, dict[str, Any], Row]] = []
    for name, target in resolved.items():
        why = target.unavailable()
        report.targets[name] = target_record(target, why)
        if why:
            continue
        limits = {**target.limits(), **base}
        for a in chosen:
            if a.backend not in target.backends or not engine_installed(a.backend):
                continue
            row = Row(name, a.name, "artifact", a.backend, a.precision, a.size_bytes)
            row.accuracy = a.parity.get("ndcg10")
            job = {**limits, "kind": "rerank", "bundle": str(bundle), "artifact": a.name}
            plan.append((target, job, row))
        for model_dir in settings.compare_torch:
            size = sum(p.stat().st_size for p in Path(model_dir).glob("*.safetensors"))
            row = Row(name, f"torch:{Path(model_dir).name}", "torch", "torch", "fp32", size or None)
            job = {
                **limits,
                "kind": "torch-rerank",
                "model_dir": str(model_dir),
                "max_length": manifest.max_length,
            }
            plan.append((target, job, row))
    for _target, job, row in track(plan, "benchmarking", total=len(plan)):
        measure(job, row, settings.cold_runs)
        report.rows.append(row)
    if settings.paired:
        groups = [[(job, row) for t, job, row in plan if t.name == name] for name in resolved]
        report.paired = measure_paired(groups, settings.repeats, 5, track)
    return report
