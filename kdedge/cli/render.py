"""Rich tables shared by several commands."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from kdedge.cli.console import megabytes, percent, stdout


def render_training(result: Any, title: str) -> None:
    """Epoch table of a :class:`kdedge.distill.trainer.TrainResult`."""
    table = Table(title=f"{title} → {result.out_dir}")
    for col in (
        "epoch",
        "train loss",
        "val acc",
        "rare recall",
        "OOS prec",
        "ECE",
        "samples/s",
        "gates",
    ):
        table.add_column(col, justify="right" if col != "gates" else "left")
    for h in result.history:
        mark = "★ " if h["epoch"] == result.best_epoch else ""
        table.add_row(
            f"{mark}{h['epoch']}",
            f"{h['loss_train']:.4f}" if h["loss_train"] is not None else "—",
            percent(h["val_accuracy"]),
            percent(h["rare_class_recall"]),
            percent(h["oos_precision"]),
            f"{h['val_ece']:.4f}",
            f"{h['samples_per_sec']:.0f}",
            "pass" if h["gates_passed"] else "fail: " + "; ".join(h["gate_failures"]),
        )
    stdout.print(table)
    verdict = "[green]promotable[/]" if result.promotable else "[red]no epoch passed the gates[/]"
    stop = f" · stopped early at {result.stopped_early}" if result.stopped_early else ""
    stdout.print(f"selected epoch {result.best_epoch} ({verdict}){stop}")


def render_evaluations(reports: list[tuple[str, dict[str, Any]]]) -> None:
    """Side-by-side metrics of evaluation reports (``EvaluationReport.to_dict()``)."""
    table = Table(title="Evaluation")
    table.add_column("metric")
    for name, _ in reports:
        table.add_column(name, justify="right")
    rows = [
        ("accuracy", lambda r: percent(r["metrics"]["accuracy"])),
        ("in-scope accuracy", lambda r: percent(r["metrics"]["in_scope_accuracy"])),
        ("macro-F1", lambda r: percent(r["metrics"]["macro_f1"])),
        ("rare-class recall", lambda r: percent(r["metrics"]["rare_class_recall"])),
        ("out-of-scope precision", lambda r: percent(r["metrics"]["oos_precision"])),
        ("out-of-scope recall", lambda r: percent(r["metrics"]["oos_recall"])),
        ("ECE (15 bins)", lambda r: f"{r['metrics']['ece']:.4f}"),
        ("temperature", lambda r: f"{r['temperature']:.2f}"),
        ("parameters", lambda r: f"{r['parameters'] / 1e6:.1f} M"),
        ("size on disk", lambda r: megabytes(r["size_bytes"])),
        ("CPU latency p50 (batch 1)", lambda r: _ms(r["latency"], "p50")),
        ("CPU latency p95 (batch 1)", lambda r: _ms(r["latency"], "p95")),
        ("gates", lambda r: "pass" if r["passed"] else "FAIL"),
    ]
    for label, get in rows:
        table.add_row(label, *[get(r) for _, r in reports])
    stdout.print(table)
    for name, r in reports:
        for failure in r["gates"]["failures"]:
            stdout.print(f"[red]{name}: gate failed: {failure}[/]")


def render_confusions(report: dict[str, Any], top: int = 5) -> None:
    pairs = report["metrics"].get("most_confused") or []
    if not pairs:
        return
    table = Table(title="Most confused (gold → predicted)")
    table.add_column("gold")
    table.add_column("predicted")
    table.add_column("count", justify="right")
    for p in pairs[:top]:
        table.add_row(p["gold"], p["predicted"], str(p["count"]))
    stdout.print(table)


def _ms(latency: dict[str, Any] | None, key: str) -> str:
    return "—" if not latency else f"{latency[key]:.2f} ms"
