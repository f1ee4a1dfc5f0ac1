"""``kdedge bench``."""

from __future__ import annotations

from pathlib import Path

import click

from kdedge import jsonout
from kdedge.bench.targets import TARGETS
from kdedge.cli.console import info, rich_tracker, stdout


@click.command("bench")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option(
    "--target",
    "targets",
    multiple=True,
    default=("cpu",),
    show_default=True,
    help="|".join(TARGETS) + " (repeat).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="Inputs (.jsonl/.csv, field 'text'), sampled across the file.",
)
@click.option(
    "--compare-torch",
    "compare_torch",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A model directory measured through transformers as a reference (repeat).",
)
@click.option("--artifact", "artifacts", multiple=True, help="Only these artifacts (repeat).")
@click.option(
    "--batch",
    type=click.IntRange(2),
    default=8,
    show_default=True,
    help="The larger batch size measured besides batch 1.",
)
@click.option("--repeats", type=click.IntRange(10), default=200, show_default=True)
@click.option(
    "--cold-runs",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="Fresh processes per row for cold start and peak RSS.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report as JSON (schema kdedge-bench v1).",
)
@click.option(
    "--report",
    "md_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a Markdown report.",
)
@click.option(
    "--plot",
    "png_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG of accuracy vs p95 latency (needs matplotlib).",
)
@click.option(
    "--no-optimum",
    is_flag=True,
    help="Skip optimum's ORTModel rows (measured when optimum is installed).",
)
@click.option(
    "--pp",
    type=click.IntRange(1),
    default=512,
    show_default=True,
    help="Generate bundles: prompt tokens processed per pp measurement.",
)
@click.option(
    "--tg",
    type=click.IntRange(2),
    default=128,
    show_default=True,
    help="Generate bundles: tokens generated per tg measurement.",
)
@click.option(
    "--gen-repeats",
    type=click.IntRange(1),
    default=5,
    show_default=True,
    help="Generate bundles: pp and tg measurements per row (median reported).",
)
@click.option(
    "--no-paired",
    is_flag=True,
    help="Skip the interleaved rounds that give ratios with 95% intervals (faster, noisier).",
)
@click.option(
    "--apply",
    is_flag=True,
    help="Record each measured target's figures in the bundle, so `load`/`predict`/`serve` "
    "pick the fastest artifact measured for the host (or for `load(target=...)`).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def command(
    bundle,
    targets,
    data,
    compare_torch,
    artifacts,
    batch,
    repeats,
    cold_runs,
    json_out,
    md_out,
    png_out,
    no_optimum,
    pp,
    tg,
    gen_repeats,
    no_paired,
    apply,
    quiet,
):
    """Benchmark every artifact of a bundle per hardware target, with reference rows.

    Each row runs in fresh processes: batch-1 p50/p95/p99, a larger batch and its throughput,
    cold start (process launch to first prediction), peak RSS, size, and accuracy from the
    bundle's parity evidence. Reference rows, measured in the same run with the same
    inputs and threads: each --compare-torch model through transformers, and optimum's
    ORTModel on the bundle's own .onnx files when optimum is installed. Lambda targets are
    emulated on one pinned core; intel-cpu-avx2 / intel-cpu-avx512 cap OpenVINO's
    instruction set to stand for CPUs without VNNI; the report says so.

    Then every comparison (row vs reference, INT8 vs FP32) runs again interleaved in one
    process, round by round: those speed-ups, with 95% intervals, are the ones to trust on
    a busy machine, and the report explains each INT8-vs-FP32 result by the CPU's flags.

    A generate bundle gets llama-bench style rows per GGUF artifact: prompt processing (pp)
    and generation (tg) tokens/s through the kdedge runtime, and through raw
    llama-cpp-python on the same file with the same threads, with runtime/raw ratios.

    A rerank bundle gets one query against 10, 50 and 100 candidates per artifact
    (p50/p95 ms, documents/s), beside each --compare-torch cross-encoder (the teacher, the
    student); --data is then a query-group file (`kdedge rerank candidates` writes one).

    \b
    Examples:
      kdedge bench bundle/ --target lambda-1024 --target intel-cpu \\
          --compare-torch student/ --data test.jsonl --json bench.json --report bench.md
      kdedge bench llm-bundle/ --target cpu --pp 512 --tg 128 --report llm-bench.md
      kdedge bench rerank-bundle/ --target lambda-1769 --compare-torch teacher/ \
          --compare-torch student/ --data test_groups.jsonl --report rerank-bench.md
      kdedge bench bundle/ --target intel-cpu --target intel-cpu-avx2 --apply
    """
    from kdedge.atomic import atomic_write_text
    from kdedge.bench.explain import quantization_notes
    from kdedge.bench.harness import bench
    from kdedge.bench.record import apply_report
    from kdedge.bench.report import (
        generation_rows,
        is_generation,
        is_rerank,
        markdown,
        plot,
        rerank_rows,
        table_rows,
    )
    from kdedge.errors import ConfigError
    from kdedge.runtimes.bundle import read_manifest
    from kdedge.runtimes.selection import choose_artifact

    if png_out and read_manifest(bundle).task != "intent":
        raise ConfigError("--plot draws classifier accuracy against latency; drop it here")

    result = bench(
        bundle,
        list(targets),
        data=data,
        compare_torch=list(compare_torch),
        artifacts=list(artifacts) or None,
        batch=batch,
        repeats=repeats,
        cold_runs=cold_runs,
        compare_optimum=not no_optimum,
        pp=pp,
        tg=tg,
        gen_repeats=gen_repeats,
        paired=not no_paired,
        track=rich_tracker(quiet),
    ).to_dict()
    for name, t in result["targets"].items():
        info(
            f"{name}: "
            + (
                f"[yellow]skipped[/] ({t['skipped']})"
                if t["skipped"]
                else t["emulation"] or t["summary"]
            )
        )
    if json_out:
        atomic_write_text(json_out, jsonout.dumps(result, indent=2) + "\n")
    if md_out:
        atomic_write_text(md_out, markdown(result))
    if png_out:
        plot(result, png_out)
    if is_generation(result):
        _print_generation_tables(result, generation_rows(result))
    elif is_rerank(result):
        _print_rerank_tables(result, rerank_rows(result))
    else:
        _print_tables(result, table_rows(result))
    _print_paired(result)
    for note in quantization_notes(result):
        info(note)
    if apply:
        applied = apply_report(bundle, result)
        if applied:
            choice = choose_artifact(read_manifest(bundle))
            info(
                f"recorded figures for {', '.join(applied)} in {bundle}/manifest.json; "
                f"on this host `load` now picks {choice.artifact.name}: {choice.why}"
            )
        else:
            info("[yellow]nothing to record[/]: no artifact row was measured")
    if not json_out and not md_out:
        info("add --json/--report/--plot to keep the figures")
    errors = [r for r in result["rows"] if r["error"]]
    if errors:
        raise click.exceptions.Exit(1)
    return result


# terminal columns (the Markdown and JSON reports keep them all): index into table_rows()
TERMINAL = (
    ("model", 1),
    ("p50", 2),
    ("p95", 3),
    ("items/s", 6),
    ("cold", 8),
    ("RSS", 9),
    ("acc", 11),
    ("×torch", 12),
)


def _print_tables(result: dict, rows: list[list[str]]) -> None:
    """One table per target, so it fits a terminal; times in ms, memory in MB."""
    from rich import box
    from rich.table import Table

    batch = result["settings"]["batch"]
    for target in result["targets"]:
        mine = [r for r in rows if r[0] == target]
        if not mine:
            continue
        table = Table(
            title=f"{target}: latency and cold start in ms, RSS in MB, items/s at batch {batch}",
            box=box.SIMPLE_HEAD,
        )
        for i, (name, _) in enumerate(TERMINAL):
            table.add_column(name, justify="left" if i == 0 else "right", no_wrap=i == 0)
        for r in mine:
            table.add_row(*(r[j] for _, j in TERMINAL))
            if r[13]:
                table.add_row(f"[red]error: {r[13]}[/]")
        stdout.print(table)


# terminal columns of generator rows: index into generation_rows()
GEN_TERMINAL = (
    ("model", 1),
    ("pp t/s", 3),
    ("tg t/s", 5),
    ("cold", 6),
    ("RSS", 7),
    ("pp ×raw", 9),
    ("tg ×raw", 10),
)


def _print_generation_tables(result: dict, rows: list[list[str]]) -> None:
    """One table per target: pp and tg tokens/s, runtime rows with runtime/raw ratios."""
    from rich import box
    from rich.table import Table

    settings = result["settings"]
    for target in result["targets"]:
        mine = [r for r in rows if r[0] == target]
        if not mine:
            continue
        table = Table(
            title=f"{target}: tokens/s at pp {mine[0][2]} / tg {settings['tg']} tokens, "
            "cold start in ms, RSS in MB",
            box=box.SIMPLE_HEAD,
        )
        for i, (name, _) in enumerate(GEN_TERMINAL):
            table.add_column(name, justify="left" if i == 0 else "right", no_wrap=i == 0)
        for r in mine:
            table.add_row(*(r[j] for _, j in GEN_TERMINAL))
            if r[-1]:
                table.add_row(f"[red]error: {r[-1]}[/]")
        stdout.print(table)


def _print_rerank_tables(result: dict, rows: list[list[str]]) -> None:
    """One table per target: latency per candidate count, documents/s, cold start, RSS."""
    from rich import box
    from rich.table import Table

    from kdedge.bench.report import headers

    cols = headers(result)
    keep = [i for i, c in enumerate(cols) if c not in ("target", "size MB", "error")]
    for target in result["targets"]:
        mine = [r for r in rows if r[0] == target]
        if not mine:
            continue
        table = Table(
            title=f"{target}: ms per query by candidate count, cold start in ms, RSS in MB",
            box=box.SIMPLE_HEAD,
        )
        for n, i in enumerate(keep):
            table.add_column(cols[i], justify="left" if n == 0 else "right", no_wrap=n == 0)
        for r in mine:
            table.add_row(*(r[i] for i in keep))
            if r[-1]:
                table.add_row(f"[red]error: {r[-1]}[/]")
        stdout.print(table)


def _print_paired(result: dict) -> None:
    """The interleaved speed-ups, one line each, with their 95% intervals."""
    from rich import box
    from rich.table import Table

    from kdedge.bench.paired import METRICS

    paired = [p for p in result.get("paired", []) if "speedup" in p]
    if not paired:
        return
    table = Table(
        title="interleaved rounds: speed-up of row over reference (>1: row faster), 95% CI",
        box=box.SIMPLE_HEAD,
    )
    for name in ("target", "row", "reference", "of", "×", "95% CI", "verdict"):
        table.add_column(name, justify="right" if name in ("×", "95% CI") else "left", no_wrap=True)
    for p in paired:
        color = {"faster": "green", "slower": "red"}.get(p["verdict"], "yellow")
        table.add_row(
            p["target"],
            p["row"],
            p["reference"],
            METRICS[p["metric"]].short if p["metric"] in METRICS else p["metric"],
            f"{p['speedup']:.2f}",
            f"{p['ci95'][0]:.2f}-{p['ci95'][1]:.2f}",
            f"[{color}]{p['verdict']}[/]",
        )
    stdout.print(table)
