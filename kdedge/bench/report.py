"""Render a :class:`~kdedge.bench.harness.BenchReport`: Markdown and a PNG chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdedge.bench.explain import quantization_notes
from kdedge.bench.paired import METRICS


def fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def _paired(report: dict[str, Any], metric: str) -> dict[tuple[str, str, str], float]:
    """(target, row, reference) -> interleaved speed-up for one metric."""
    return {
        (p["target"], p["row"], p["reference"]): p["speedup"]
        for p in report.get("paired", [])
        if p.get("metric") == metric
    }


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """One list of cells per row, shared by the Rich table and the Markdown report."""
    paired = _paired(report, "batch_1_ms")
    speedups: dict[tuple[str, str], float] = {}
    for r in report["ratios"]:  # the first torch reference of each target, as given
        if r["reference"].startswith("torch:"):
            key = (r["target"], r["row"], r["reference"])
            speedups.setdefault(key[:2], paired.get(key, r["p50_speedup"]))
    rows = []
    for r in report["rows"]:
        b1, bn, cold = r["batch_1"] or {}, r["batch_n"] or {}, r["cold_start_ms"] or {}
        ratio = speedups.get((r["target"], r["name"]))
        rows.append(
            [
                r["target"],
                r["name"],
                fmt(b1.get("p50")),
                fmt(b1.get("p95")),
                fmt(b1.get("p99")),
                fmt(bn.get("p50")),
                fmt(bn.get("throughput_per_s"), ",.0f"),
                fmt((r.get("batch_1_max_length") or {}).get("p50")),
                fmt(cold.get("median"), ".0f"),
                fmt(r["peak_rss_mb"], ".0f"),
                fmt(None if r["size_bytes"] is None else r["size_bytes"] / 1e6, ".1f"),
                fmt(None if r["accuracy"] is None else 100 * r["accuracy"], ".2f", "%"),
                fmt(ratio, ".2f", "x"),
                r["error"] or "",
            ]
        )
    return rows


HEADERS = (
    "target",
    "model",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "p50 ms @{n}",
    "items/s @{n}",
    "p50 ms @max len",
    "cold ms",
    "RSS MB",
    "size MB",
    "accuracy",
    "vs torch",
    "error",
)


def headers(report: dict[str, Any]) -> list[str]:
    if is_generation(report):
        return list(GENERATION_HEADERS)
    if is_rerank(report):
        sizes = report["settings"]["sizes"]
        return (
            ["target", "model"]
            + [f"{q} ms @{n}" for n in sizes for q in ("p50", "p95")]
            + list(RERANK_TAIL)
        )
    n = report["settings"]["batch"]
    return [h.format(n=n) for h in HEADERS]


def is_generation(report: dict[str, Any]) -> bool:
    return report["settings"].get("task") == "generate"


def is_rerank(report: dict[str, Any]) -> bool:
    return report["settings"].get("task") == "rerank"


RERANK_TAIL = ("docs/s @50", "cold ms", "RSS MB", "size MB", "NDCG@10", "vs torch @50", "error")


def rerank_rows(report: dict[str, Any]) -> list[list[str]]:
    """One list of cells per reranker row (:func:`headers` for a rerank report): p50 / p95
    per candidate count, documents/s at 50, and the speed-up over the first torch row of the
    target at 50 candidates (interleaved where measured)."""
    sizes = [str(n) for n in report["settings"]["sizes"]]
    paired = _paired(report, "rerank_ms")
    speedups: dict[tuple[str, str], float] = {}
    for r in report["ratios"]:
        if r["reference"].startswith("torch:") and isinstance(r.get("p50_speedup"), dict):
            key = (r["target"], r["row"], r["reference"])
            speedups.setdefault(key[:2], paired.get(key, r["p50_speedup"].get("50")))
    rows = []
    for r in report["rows"]:
        lat, cold = r.get("rerank") or {}, r["cold_start_ms"] or {}
        cells = [r["target"], r["name"]]
        for n in sizes:
            cells += [fmt(lat.get(n, {}).get("p50")), fmt(lat.get(n, {}).get("p95"))]
        cells += [
            fmt(lat.get("50", {}).get("docs_per_s"), ",.0f"),
            fmt(cold.get("median"), ".0f"),
            fmt(r["peak_rss_mb"], ".0f"),
            fmt(None if r["size_bytes"] is None else r["size_bytes"] / 1e6, ".1f"),
            fmt(r["accuracy"], ".4f"),
            fmt(speedups.get((r["target"], r["name"])), ".2f", "x"),
            r["error"] or "",
        ]
        rows.append(cells)
    return rows


GENERATION_HEADERS = (
    "target",
    "model",
    "pp tokens",
    "pp tok/s",
    "tg tokens",
    "tg tok/s",
    "cold ms",
    "RSS MB",
    "size MB",
    "pp vs raw",
    "tg vs raw",
    "error",
)


def generation_rows(report: dict[str, Any]) -> list[list[str]]:
    """One list of cells per generator row (GENERATION_HEADERS), runtime rows with their
    runtime/raw llama-cpp-python ratios."""
    ratios = {(r["target"], r["row"]): r for r in report["ratios"] if "pp_ratio" in r}
    pp_paired, tg_paired = _paired(report, "pp_tokens_per_s"), _paired(report, "tg_tokens_per_s")
    for key, r in ratios.items():  # interleaved figures win where measured
        ref = (*key, r["reference"])
        ratios[key] = {
            "pp_ratio": pp_paired.get(ref, r["pp_ratio"]),
            "tg_ratio": tg_paired.get(ref, r["tg_ratio"]),
        }
    rows = []
    for r in report["rows"]:
        pp, tg, cold = r.get("pp") or {}, r.get("tg") or {}, r["cold_start_ms"] or {}
        ratio = ratios.get((r["target"], r["name"]), {})
        rows.append(
            [
                r["target"],
                r["name"],
                fmt(pp.get("tokens"), "d"),
                fmt(pp.get("tokens_per_s"), ",.1f"),
                fmt(tg.get("tokens"), "d"),
                fmt(tg.get("tokens_per_s"), ",.1f"),
                fmt(cold.get("median"), ".0f"),
                fmt(r["peak_rss_mb"], ".0f"),
                fmt(None if r["size_bytes"] is None else r["size_bytes"] / 1e6, ".1f"),
                fmt(ratio.get("pp_ratio"), ".2f", "x"),
                fmt(ratio.get("tg_ratio"), ".2f", "x"),
                r["error"] or "",
            ]
        )
    return rows


def markdown(report: dict[str, Any]) -> str:
    host = report["host"]
    settings = report["settings"]
    if is_generation(report):
        inputs = (
            f"Generation, llama-bench style: pp {settings['pp']} prompt tokens, tg "
            f"{settings['tg']} generated tokens, {settings['gen_repeats']} repeats each (median "
            f"tokens/s); context {settings['context_length']}; {report['created']}."
        )
    elif is_rerank(report):
        inputs = (
            f"Reranking one query against {', '.join(map(str, settings['sizes']))} candidates "
            f"from {settings['data']} (max length {settings['max_length']} tokens); "
            f"{report['created']}."
        )
    else:
        inputs = f"Inputs: {settings['texts']} texts from {settings['data']}; {report['created']}."
    lines = [
        f"# kdedge bench: {report['bundle']}",
        "",
        f"Host: {host['cpu']} ({host['cores']} cores; "
        f"flags {', '.join(host['cpu_flags']) or 'none'}),"
        f" {host['system']}, Python {host['python']}; "
        + ", ".join(f"{k} {v}" for k, v in host["packages"].items())
        + ".",
        inputs,
        "",
    ]
    for name, t in report["targets"].items():
        note = f"skipped: {t['skipped']}" if t["skipped"] else (t["emulation"] or "measured")
        lines.append(f"- **{name}**: {t['summary']}. {note}")
    cols = headers(report)
    lines += ["", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    if is_generation(report):
        lines += ["| " + " | ".join(row) + " |" for row in generation_rows(report)]
        lines += [
            "",
            "`llamacpp:<artifact>`: raw llama-cpp-python (`Llama.generate`) on the same GGUF with "
            "the same threads and context, fed as many prompt tokens as the runtime's chat "
            "prompt had. `vs raw`: runtime tokens/s over raw tokens/s (1.00x = no overhead), "
            "interleaved where measured. pp: from the call to the first sampled token; tg: the "
            "decode steps after it, through end-of-turn tokens.",
        ]
        return "\n".join(lines + paired_section(report)) + "\n"
    if is_rerank(report):
        lines += ["| " + " | ".join(row) + " |" for row in rerank_rows(report)]
        lines += [
            "",
            "One call scores every candidate of the query (length-sorted batches). `NDCG@10`: "
            "the artifact's on the export's eval queries. `vs torch @50`: speed-up over the "
            "first torch cross-encoder row of the same target at 50 candidates, interleaved "
            "where measured.",
        ]
        return "\n".join(lines + paired_section(report)) + "\n"
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    lines += [
        "",
        "`vs torch`: batch-1 p50 speed-up over the first torch reference row of the same "
        "target, from the interleaved rounds where measured, else from the rows above "
        "(every ratio, optimum's included, is in the JSON). `@max len`: batch 1 with every "
        "input truncated to the bundle's maximum length.",
    ]
    lines += paired_section(report)
    notes = quantization_notes(report)
    if notes:
        lines += ["", "## Quantized vs FP32 on this CPU", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def paired_section(report: dict[str, Any]) -> list[str]:
    """The interleaved comparisons as a Markdown table (empty when none were measured)."""
    paired = report.get("paired") or []
    if not paired:
        return []
    rounds = max((p.get("rounds", 0) for p in paired), default=0)
    lines = [
        "",
        "## Interleaved comparisons",
        "",
        f"Each target's compared rows ran in one process, round by round in a random order "
        f"on the same input (up to {rounds} rounds). Speed-up: median of the per-round "
        "ratios (above 1: the row is faster), with a bootstrap 95% interval. The "
        "`(copy)` row is an A/A control: a second copy of the same artifact in the same "
        "process, which differs from the first by a few percent on its own. A difference is "
        "claimed only when the interval clears the control's band, not merely 1.",
        "",
        "| target | row | reference | measure | speed-up | 95% CI | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in paired:
        if "error" in p:
            cells = [p["target"], p["row"], p["reference"], "—", "—", "—", p["error"]]
        else:
            cells = [
                p["target"],
                p["row"],
                p["reference"],
                METRICS[p["metric"]].name if p["metric"] in METRICS else p["metric"],
                f"{p['speedup']:.2f}x",
                f"{p['ci95'][0]:.3f}-{p['ci95'][1]:.3f}",
                p["verdict"],
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def plot(report: dict[str, Any], path: str | Path) -> None:
    """Accuracy against batch-1 p95 latency, one marker per artifact and target."""
    from kdedge.atomic import atomic_write
    from kdedge.extras import require

    matplotlib = require("matplotlib", "train", "Drawing the benchmark chart (--plot)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for target in report["targets"]:
        rows = [
            r
            for r in report["rows"]
            if r["target"] == target and r["batch_1"] and r["accuracy"] is not None
        ]
        if not rows:
            continue
        ax.scatter(
            [r["batch_1"]["p95"] for r in rows],
            [100 * r["accuracy"] for r in rows],
            s=[max(20, r["size_bytes"] / 1e6 * 4) for r in rows],
            alpha=0.6,
            label=target,
        )
        for r in rows:
            ax.annotate(r["name"], (r["batch_1"]["p95"], 100 * r["accuracy"]), fontsize=7)
    ax.set_xlabel("p95 latency at batch 1 (ms)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("kdedge bench: accuracy vs latency (marker area ~ size on disk)")
    ax.legend()
    fig.tight_layout()
    try:
        with atomic_write(path, "wb") as handle:  # no half-written PNG if drawing fails
            fig.savefig(handle, format="png", dpi=120)
    finally:
        plt.close(fig)
