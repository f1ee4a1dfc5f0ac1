"""``kdedge inspect``."""

from __future__ import annotations

from pathlib import Path

import click

from kdedge.cli.console import emit_json, megabytes, percent, stdout


@click.command("inspect")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--no-verify", is_flag=True, help="Skip checking file sizes and sha256.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def command(bundle, no_verify, as_json):
    """Show a bundle's manifest: labels, calibration, router defaults, artifacts, evidence.

    Files are checked against their sha256 first, so a damaged bundle is reported here
    rather than at load time in production.

    \b
    Example:
      kdedge inspect bundle/
    """
    from kdedge.runtimes.bundle import load_bundle, read_manifest

    manifest = read_manifest(bundle) if no_verify else load_bundle(bundle)
    if as_json:
        emit_json(manifest.to_dict())
        return
    from rich.table import Table

    generate = manifest.task == "generate"
    rerank = manifest.task == "rerank"
    labels = ", ".join(manifest.labels)
    what = (
        f"context {manifest.generation.get('context_length')} tokens · answers up to "
        f"{manifest.generation.get('max_new_tokens')} tokens"
        if generate
        else "one score per (query, passage) pair · inputs " + ", ".join(manifest.inputs)
        if rerank
        else f"{len(manifest.labels)} labels: {labels if len(labels) < 160 else labels[:157] + '…'}"
    )
    stdout.print(
        f"[bold]{bundle}[/] · schema v{manifest.schema_version} · task {manifest.task} · {what}"
    )
    cal = manifest.calibration
    stdout.print(
        f"tokenizer {manifest.tokenizer.path} · max length {manifest.max_length}"
        f" · temperature {manifest.temperature:.3f}"
        + (f" (ECE {cal['ece_before']:.4f} → {cal['ece_after']:.4f})" if "ece_after" in cal else "")
    )
    router = manifest.router
    stdout.print(
        "router defaults: "
        + " · ".join(f"{k}={v}" for k, v in router.items() if v not in (None, [], ""))
    )
    gates = manifest.gates
    if gates:
        stdout.print(
            f"gates: promotable={gates.get('promotable')}"
            + (f" · failures: {'; '.join(gates['failures'])}" if gates.get("failures") else "")
        )
    table = Table(title="Artifacts" + ("" if no_verify else " (sha256 verified)"))
    table.add_column("artifact", no_wrap=True)
    columns = (
        ("size", "|Δlogit|", "top-1", "greedy", "tok/s")
        if generate
        else ("size", "|Δscore|", "Kendall τ", "top-3", "NDCG@10", "Δ NDCG")
        if rerank
        else ("size", "|Δlogit|", "agree", "accuracy", "Δ acc", "ECE")
    )
    for col in columns:
        table.add_column(col, justify="right")
    table.add_column("status", no_wrap=True)
    for a in manifest.artifacts:
        if generate:
            p = a.parity
            tps = p.get("tokens_per_s")
            table.add_row(
                a.name,
                megabytes(a.size_bytes),
                f"{p.get('max_abs_logit', float('nan')):.2g}",
                percent(p.get("top1_agreement")),
                percent(p.get("greedy_agreement")),
                "—" if tps is None else f"{tps:.1f}",
                "[green]passed[/]" if a.status == "passed" else "[red]failed (kept)[/]",
            )
            continue
        p = a.parity
        status = "[green]passed[/]" if a.status == "passed" else "[red]failed (kept)[/]"
        if rerank:
            drop, tau, ndcg = p.get("ndcg10_drop"), p.get("kendall_tau"), p.get("ndcg10")
            table.add_row(
                a.name,
                megabytes(a.size_bytes),
                f"{p.get('max_abs_score', float('nan')):.2g}",
                "—" if tau is None else f"{tau:.4f}",
                percent(p.get("top3_agreement")),
                "—" if ndcg is None else f"{ndcg:.4f}",
                "—" if drop is None else f"{-drop:+.4f}",
                status,
            )
            continue
        drop = p.get("accuracy_drop_points")
        if manifest.selection.get("selected") == a.name:
            status += " ★ selected"
        table.add_row(
            a.name,
            megabytes(a.size_bytes),
            f"{p.get('max_abs_logit', float('nan')):.2g}",
            percent(p.get("agreement")),
            percent(p.get("accuracy")),
            "—" if drop is None else f"{-drop:+.2f}",
            "—" if p.get("ece") is None else f"{p['ece']:.4f}",
            status,
        )
    stdout.print(table)
    for target, run in manifest.benchmarks.items():
        figures = " · ".join(
            f"{name} "
            + (
                f"p50 {f['p50_ms']:.2f} ms"
                if "p50_ms" in f
                else f"tg {f['tg_tokens_per_s']:.1f} t/s"
            )
            for name, f in run["artifacts"].items()
            if "p50_ms" in f or "tg_tokens_per_s" in f
        )
        stdout.print(f"bench {target} ({run.get('measured')}, {run.get('host')}): {figures}")
    prov = manifest.provenance
    stdout.print(
        f"from {prov.get('source_model')} (sha256 {str(prov.get('source_sha256'))[:12]}…)"
        f" · kdedge {prov.get('kdedge_version')} · {prov.get('created')}"
    )
