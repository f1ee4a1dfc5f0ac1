"""``kdedge evaluate``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kdedge import jsonout
from kdedge.cli.console import emit_json, rich_tracker
from kdedge.cli.options import compute_options
from kdedge.cli.render import render_confusions, render_evaluations


@click.command("evaluate")
@click.argument("model_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Labeled test file.")
@click.option("--gates", type=click.Path(path_type=Path), help="Gates TOML ([gates] and [score]).")
@click.option(
    "--rare-label",
    "rare_labels",
    multiple=True,
    help="Rare labels to pool for rare-class recall  [default: saved with the model]",
)
@click.option("--oos-label", help="Out-of-scope label  [default: saved with the model]")
@click.option(
    "--latency-samples", default=100, show_default=True, help="Batch-1 CPU latency calls (0 skips)."
)
@click.option("--report", type=click.Path(path_type=Path), help="Also write the JSON report here.")
@compute_options
def command(
    model_dirs,
    data,
    gates,
    rare_labels,
    oos_label,
    latency_samples,
    report,
    device,
    precision,
    quiet,
    as_json,
):
    """Accuracy, macro-F1, rare-class and out-of-scope metrics, ECE, latency, release gates.

    \b
    Examples:
      kdedge evaluate student/ --data data/test.jsonl --gates gates.toml
      kdedge evaluate teacher/ student/ --data data/test.jsonl --json
    Exit status: 0 when every model passes every gate, 1 when any gate fails.
    """
    from kdedge.atomic import atomic_write_text
    from kdedge.distill.device import resolve
    from kdedge.distill.evaluation import evaluate_model
    from kdedge.distill.gates import Gates

    placement = resolve(device, precision)
    gate_set = Gates.from_toml(gates) if gates else None
    reports = []
    for model_dir in model_dirs:
        result = evaluate_model(
            model_dir,
            data,
            placement,
            gates=gate_set,
            rare_labels=rare_labels or None,
            oos_label=oos_label,
            latency_samples=latency_samples,
            track=rich_tracker(quiet),
        )
        reports.append((Path(model_dir).name, result.to_dict()))
    payload = {name: r for name, r in reports} if len(reports) > 1 else reports[0][1]
    if report:
        atomic_write_text(report, jsonout.dumps(payload, indent=2, default=str) + "\n")
    if as_json:
        emit_json(payload)
    else:
        render_evaluations(reports)
        render_confusions(reports[-1][1])
    if not all(r["passed"] for _, r in reports):
        sys.exit(1)
