"""``kdedge bench --apply``: keep a run's per-target figures in the bundle's manifest, where
:func:`kdedge.runtimes.selection.choose_artifact` ranks artifacts by them.

A target's figures come from one run: applying a new run replaces that target's entry
whole (figures from different runs of a shared machine do not rank against each other),
and leaves other targets' entries alone. Reference rows (torch, optimum, raw llama.cpp) are
not artifacts of the bundle and are not recorded.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from kdedge.runtimes.bundle import read_manifest, write_manifest


def figures_of(row: dict[str, Any]) -> dict[str, float]:
    """The figures selection and ``kdedge inspect`` use, from one report row."""
    out: dict[str, float] = {}
    if row.get("batch_1"):
        out["p50_ms"] = row["batch_1"]["p50"]
        out["p95_ms"] = row["batch_1"]["p95"]
    elif (row.get("rerank") or {}).get("50"):  # a reranker: one query, 50 candidates
        out["p50_ms"] = row["rerank"]["50"]["p50"]
        out["p95_ms"] = row["rerank"]["50"]["p95"]
    for stage in ("pp", "tg"):
        rate = (row.get(stage) or {}).get("tokens_per_s")
        if rate:
            out[f"{stage}_tokens_per_s"] = rate
    if row.get("cold_start_ms"):
        out["cold_start_ms"] = row["cold_start_ms"]["median"]
    if row.get("peak_rss_mb") is not None:
        out["peak_rss_mb"] = row["peak_rss_mb"]
    return out


def apply_report(bundle: str | Path, report: dict[str, Any]) -> list[str]:
    """Record the report's artifact figures per measured target in ``bundle``'s manifest
    (written atomically); return the targets recorded."""
    manifest = read_manifest(bundle)
    recorded = dict(manifest.benchmarks)
    host = report["host"]
    applied = []
    for target, info in report["targets"].items():
        if info.get("skipped"):
            continue
        rows = [r for r in report["rows"] if r["target"] == target and not r["error"]]
        figures = {r["name"]: figures_of(r) for r in rows if r["kind"] in ("artifact", "generate")}
        if figures:
            recorded[target] = {
                "measured": report["created"],
                "host": f"{host['cpu']}, {host['usable_cores'] or host['cores']} cores",
                "artifacts": figures,
            }
            applied.append(target)
    if applied:
        write_manifest(bundle, replace(manifest, benchmarks=recorded))
    return applied
