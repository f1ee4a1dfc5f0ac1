"""``kdedge sweep``."""

from __future__ import annotations

from pathlib import Path

import click

from kdedge.cli.console import RANK, emit_json, info, rich_tracker, stdout
from kdedge.cli.options import compute_options
from kdedge.distill.sweep_report import in_scope  # light: no torch


@click.command("sweep")
@click.argument("sweep_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--grid",
    multiple=True,
    help="Add an axis 'key=v1,v2' (e.g. temperature=1,2,4); variants are the cartesian product "
    "over [base].",
)
@click.option(
    "--only",
    help="Train only these variants (comma-separated names); the report still lists every "
    "variant already finished.",
)
@click.option(
    "--rerun", is_flag=True, help="Train finished variants again instead of reusing them."
)
@compute_options
def command(sweep_file, grid, only, rerun, device, precision, quiet, as_json):
    """Distill many students from the same teachers, paying for teacher labels once.

    \b
    A sweep file (TOML):
      data = "data"                        # a folder from `kdedge prepare`
      workdir = "sweep"                    # students, results/, sweep_report.{json,md}
      baseline = "hard"                    # report the share of the teacher gap closed
      [base]                               # settings every variant starts from
      teachers = ["teacher"]               # several = an ensemble (mean soft labels)
      layers = 3
      epochs = 4
      [[variants]]
      name = "hard"
      alpha = 0.0
      [[variants]]
      name = "kd_t2"
      temperature = 2.0
    Keys of [base] and variants: teachers, calibrated_teachers, layers, layer_map, alpha,
    temperature, rare_weight, rare_class_boost, rare_labels, feature_epochs, transfer,
    epochs, lr, batch_size, min_epochs, early_stop, seed, compile.

    \b
    Examples:
      kdedge sweep sweep.toml
      kdedge sweep sweep.toml --grid temperature=1,2,4 --grid alpha=0.5,0.9
    Every student is calibrated on the validation split and judged on the test split, by
    argmax and at its own router threshold. A re-run reuses variants finished with the same
    settings, so a killed sweep resumes; the report says what the logit cache saved.
    """
    from kdedge.distill.device import resolve
    from kdedge.distill.sweep import cost_sentence, load_sweep, run_sweep

    sweep = load_sweep(sweep_file, grid=grid)
    names = [n.strip() for n in (only or "").split(",") if n.strip()]

    def progress(row: dict) -> None:
        if as_json or quiet or RANK:
            return
        what = "reused" if row.get("resumed") else "done"
        info(f"{row['name']}: {what}, in-scope accuracy {100 * in_scope(row):.2f}%")

    report = run_sweep(
        sweep,
        resolve(device, precision),
        only=names,
        rerun=rerun,
        track=rich_tracker(quiet),
        on_row=progress,
    )
    if RANK:
        return  # under a launcher, rank 0 reports
    if as_json:
        emit_json(report.to_dict())
        return
    from rich.table import Table

    table = Table(title=f"sweep: {sweep.workdir}")
    table.add_column("model", overflow="fold")  # wrapped, never cut: names tell rows apart
    for header in ("acc %", "@thr %", "OOS R %", "@thr %", "OOS P@thr %", "gap", "s"):
        table.add_column(header, justify="right")
    for row in report.rows:
        table.add_row(*_cells(row))
    stdout.print(table)
    stdout.print(
        "acc = in-scope accuracy by argmax; @thr = at the router threshold fit on validation "
        "(a top probability below it counts as out of scope); gap = share of the "
        "teacher-baseline gap closed; s = student seconds. All columns: sweep_report.md"
    )
    stdout.print(cost_sentence(report.cost))
    if report.not_run:
        stdout.print(f"not run yet: {', '.join(report.not_run)} (run them with --only)")
    stdout.print(f"report: {sweep.workdir / 'sweep_report.md'} and sweep_report.json")


def _cells(row: dict) -> list[str]:
    def pct(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.1f}"

    routed, argmax = row.get("router", {}), row.get("argmax", {})
    gap = row.get("gap_closed")
    return [
        row["name"],
        pct(in_scope(row)),
        pct(routed.get("in_scope_accuracy")),
        pct(argmax.get("oos_recall")),
        pct(routed.get("oos_recall")),
        pct(routed.get("oos_precision")),
        "—" if gap is None else f"{100 * gap:.0f}%",
        "—" if row["kind"] == "teacher" else f"{row['student_seconds']:.0f}",
    ]
