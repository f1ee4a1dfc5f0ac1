"""``kdedge export``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kdedge.cli.console import emit_json, info, megabytes, percent, rich_tracker, stdout
from kdedge.cli.options import json_option, overwrite_option, quiet_option
from kdedge.converters.registry import FORMATS


def _format_help() -> str:
    return "\n".join(f"  {name:<18} {spec.summary}" for name, spec in FORMATS.items())


def _select(ctx, param, value):
    if value is None:
        return None
    rule, budget = value
    if rule != "fastest-within":
        raise click.BadParameter(f"unknown rule '{rule}'; use: fastest-within POINTS")
    try:
        return float(budget)
    except ValueError:
        raise click.BadParameter(f"'{budget}' is not a number of accuracy points") from None


@click.command("export", epilog="\b\nFormats:\n" + _format_help())
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option(
    "-f",
    "--format",
    "formats",
    multiple=True,
    required=True,
    metavar="FORMAT",
    help="Artifact to build; repeat for several (list below).",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Bundle directory.")
@click.option(
    "--eval-data",
    type=click.Path(path_type=Path),
    help="Labeled JSONL/CSV: accuracy and ECE of every artifact against torch (a "
    "reranker: query groups, NDCG@10).",
)
@click.option(
    "--calibration-data",
    type=click.Path(path_type=Path),
    help="Texts for static INT8 activation ranges (labels ignored), e.g. validation.jsonl "
    "(a reranker: query groups).",
)
@click.option(
    "--calibration-size", default=300, show_default=True, help="Calibration texts used at most."
)
@click.option(
    "--per-tensor",
    is_flag=True,
    help="ONNX INT8 with one weight scale per tensor (default: one per output channel).",
)
@click.option(
    "--int8-embeddings/--no-int8-embeddings",
    default=None,
    help="onnx-int8: quantize the embedding table too (smaller file, a little less "
    "accurate)  [default: yes for classifiers, no for rerankers]",
)
@click.option(
    "--select",
    nargs=2,
    callback=_select,
    metavar="fastest-within POINTS",
    help="Ship only the fastest passing artifact that loses at most POINTS accuracy.",
)
@click.option(
    "--keep-failed",
    is_flag=True,
    help="Ship artifacts that miss their tolerance too, marked 'failed' in the manifest.",
)
@overwrite_option
@quiet_option
@json_option
def command(
    model_dir,
    formats,
    out,
    eval_data,
    calibration_data,
    calibration_size,
    per_tensor,
    int8_embeddings,
    select,
    keep_failed,
    overwrite,
    quiet,
    as_json,
):
    """Convert a model directory into verified artifacts, packed in one bundle.

    Every artifact is run on a fixed probe set and on --eval-data beside the torch model;
    one that misses its format's tolerance is left out and the command exits 1. A causal
    LM (generation model) exports to gguf-f16 / gguf-q8_0 / gguf-q4_k_m, checked on chat
    probes: tokenization, next-token logits and teacher-forced greedy tokens. A reranker
    (a one-score cross-encoder) exports to the ONNX and OpenVINO formats with pair inputs,
    checked by score, by each query's order (Kendall τ) and by NDCG@10 against torch.

    \b
    Example:
      kdedge export student/ -f onnx -f onnx-int8 -f openvino-int8 -f gguf-q8_0 \\
          --eval-data data/test.jsonl --calibration-data data/validation.jsonl --out bundle/
      kdedge export student-llm/ -f gguf-q8_0 -f gguf-q4_k_m --out llm-bundle/
      kdedge export reranker/ -f onnx -f onnx-int8 --eval-data test_groups.jsonl \
          --calibration-data validation_groups.jsonl --out rerank-bundle/
      kdedge inspect bundle/
    """
    from kdedge.converters.base import ExportOptions
    from kdedge.converters.export import export_bundle

    report = export_bundle(
        model_dir,
        formats,
        out,
        eval_data=eval_data,
        calibration_data=calibration_data,
        keep_failed=keep_failed,
        select_within=select,
        options=ExportOptions(
            per_channel=not per_tensor,
            calibration_size=calibration_size,
            int8_embeddings=int8_embeddings,
        ),
        overwrite=overwrite,
        track=rich_tracker(quiet),
    )
    if as_json:
        emit_json(report.to_dict())
    else:
        _render(report)
    unshipped = [r for r in report.failed if not r.shipped]
    if unshipped:
        sys.exit(1)


def _render(report) -> None:
    if report.task == "generate":
        _render_generator(report)
    elif report.task == "rerank":
        _render_reranker(report)
    else:
        _render_classifier(report)
    for r in report.results:
        for warning in r.warnings:
            info(f"[yellow]{r.name}:[/] {warning}")
    if report.selection:
        chosen = report.selection.get("selected")
        info(
            f"{report.selection['rule']}: "
            + (
                f"shipping {chosen}"
                if chosen
                else "no artifact qualified; shipping the passing ones"
            )
        )
    for r in report.failed:
        if not r.shipped:
            info(f"[red]{r.name} not shipped:[/] {r.reason}")


def _verdict(r) -> str:
    verdict = "[green]pass[/]" if r.status == "passed" else f"[red]FAIL[/]: {r.reason}"
    return verdict + (" (kept)" if r.status != "passed" and r.shipped else "")


def _render_generator(report) -> None:
    from rich.table import Table

    def share(value: float) -> str:  # a handful of probes: whole percents
        return f"{100 * value:.0f}%"

    table = Table(title=f"{report.model_dir} → {report.out_dir or '(no bundle written)'}")
    table.add_column("artifact", no_wrap=True)
    for col in ("size", "ids", "|Δlogit|", "top-1", "greedy", "tok/s"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("result")
    table.add_row("torch fp32", megabytes(report.torch_size_bytes), *["—"] * 5, "")
    for r in report.results:
        p = r.parity
        if p is None:
            table.add_row(r.name, *["—"] * 6, f"[red]error[/]: {r.error}")
            continue
        table.add_row(
            r.name,
            megabytes(r.size_bytes),
            share(p.tokenizer_agreement),
            f"{p.max_abs_logit:.2g}",
            share(p.top1_agreement),
            share(p.greedy_agreement),
            f"{p.tokens_per_s:.0f}",
            _verdict(r),
        )
    stdout.print(table)
    info(
        "ids: probes llama.cpp tokenizes like the HF tokenizer; |Δlogit|, top-1: next token "
        "vs torch; greedy: teacher-forced greedy tokens equal to torch's"
    )


def _render_reranker(report) -> None:
    from rich.table import Table

    def number(value: float | None, spec: str = ".4f") -> str:
        return "—" if value is None else f"{value:{spec}}"

    table = Table(title=f"{report.model_dir} → {report.out_dir or '(no bundle written)'}")
    table.add_column("artifact", no_wrap=True)
    for col in ("size", "|Δscore|", "Kendall τ", "top-3", "NDCG@10", "Δ NDCG", "p50"):
        table.add_column(col, justify="right")
    table.add_column("result")
    torch_ndcg = report.torch_metrics.get("ndcg@10")
    table.add_row(
        "torch (reference)",
        megabytes(report.torch_size_bytes),
        *["—"] * 3,
        number(torch_ndcg),
        "—",
        "—",
        "",
    )
    for r in report.results:
        p = r.parity
        if p is None:
            table.add_row(r.name, *["—"] * 7, f"[red]error[/]: {r.error}")
            continue
        table.add_row(
            r.name,
            megabytes(r.size_bytes),
            f"{p.max_abs_score:.2g}",
            number(p.kendall_tau),
            percent(p.top3_agreement),
            number(p.ndcg10),
            "—" if p.ndcg10_drop is None else f"{-p.ndcg10_drop:+.4f}",
            "—" if p.latency_ms_p50 is None else f"{p.latency_ms_p50:.2f} ms",
            _verdict(r),
        )
    stdout.print(table)
    info(
        "|Δscore|, Kendall τ, top-3: per query against torch on the probe set and the eval "
        "queries; NDCG@10 on the eval queries; p50: one probe query with all its passages"
    )


def _render_classifier(report) -> None:
    from rich.table import Table

    table = Table(title=f"{report.model_dir} → {report.out_dir or '(no bundle written)'}")
    table.add_column("artifact", no_wrap=True)
    for col in ("size", "|Δlogit|", "agree", "accuracy", "Δ acc", "ECE", "p50"):
        table.add_column(col, justify="right")
    table.add_column("result")
    table.add_row(
        "torch (reference)",
        megabytes(report.torch_size_bytes),
        "—",
        "—",
        percent(report.torch_accuracy),
        "—",
        "—",
        "—",
        "",
    )
    for r in report.results:
        p = r.parity
        mark = "★ " if r.selected else ""
        if p is None:
            table.add_row(mark + r.name, *["—"] * 7, f"[red]error[/]: {r.error}")
            continue
        table.add_row(
            mark + r.name,
            megabytes(r.size_bytes),
            f"{p.max_abs_logit:.2g}",
            percent(p.agreement),
            percent(p.accuracy),
            "—" if p.accuracy_drop_points is None else f"{-p.accuracy_drop_points:+.2f}",
            "—" if p.ece is None else f"{p.ece:.4f}",
            "—" if p.latency_ms_p50 is None else f"{p.latency_ms_p50:.2f} ms",
            _verdict(r),
        )
    stdout.print(table)
