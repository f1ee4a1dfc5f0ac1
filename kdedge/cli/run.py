"""``kdedge run``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kdedge.cli.console import emit_json, info, rich_tracker
from kdedge.cli.options import json_option, quiet_option


def stage_printer(quiet: bool):
    """Print a one-line summary as each stage finishes."""

    def on_stage(stage: str, report: dict) -> None:
        if quiet:
            return
        if stage == "prepare":
            counts = ", ".join(f"{k} {v}" for k, v in report["counts"].items())
            info(
                f"[green]✓ prepare[/]   {counts}; PII scrubbed {sum(report['pii'].values())}; "
                f"duplicates removed {report['duplicates']}"
            )
        elif stage == "teach" and "history" in report:
            best = next(h for h in report["history"] if h["epoch"] == report["best_epoch"])
            info(
                f"[green]✓ teach[/]     epoch {report['best_epoch']} kept, val accuracy "
                f"{100 * best['val_accuracy']:.2f}%"
            )
        elif stage == "label":
            info(
                f"[green]✓ label[/]     {report['texts']} texts, "
                f"cache hits {report['cache_hits']}, "
                f"misses {report['cache_misses']}"
            )
        elif stage == "distill":
            train = report["train"]
            best = next(h for h in train["history"] if h["epoch"] == train["best_epoch"])
            info(
                f"[green]✓ distill[/]   epoch {train['best_epoch']} kept "
                f"({'promotable' if train['promotable'] else 'NOT promotable'}), val accuracy "
                f"{100 * best['val_accuracy']:.2f}%, {train['train_samples_per_sec']:.0f} samples/s"
            )
        elif stage.startswith("calibrate"):
            info(
                f"[green]✓ {stage}[/] T={report['temperature']:.2f}, "
                f"ECE {report['ece_before']:.4f} → {report['ece_after']:.4f}"
            )
        elif stage.startswith("evaluate"):
            info(f"[green]✓ {stage}[/] test accuracy {100 * report['metrics']['accuracy']:.2f}%")

    return on_stage


@click.command("run")
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option(
    "--device",
    type=click.Choice(["auto", "cuda", "mps", "cpu"]),
    help="Override the recipe's device.",
)
@click.option("--workdir", type=click.Path(path_type=Path), help="Override the recipe's workdir.")
@click.option("--resume", is_flag=True, help="Skip finished stages and resume interrupted ones.")
@quiet_option
@json_option
def command(recipe, device, workdir, resume, quiet, as_json):
    """Run every stage from one TOML recipe: prepare, teach, label, distill, calibrate, evaluate.

    \b
    Example:
      kdedge run examples/recipes/mangaassist.toml --device cuda
    Reports go to WORKDIR/pipeline_report.json. Exit status 1 when the student fails a gate.
    """
    from kdedge.cli.render import render_evaluations
    from kdedge.pipeline import run_recipe
    from kdedge.recipe import load_recipe

    loaded = load_recipe(recipe, device=device, workdir=str(workdir) if workdir else None)
    result = run_recipe(
        loaded,
        resume=resume,
        track=rich_tracker(quiet or as_json),
        on_stage=stage_printer(quiet or as_json),
    )
    if as_json:
        emit_json(result.to_dict())
    else:
        render_evaluations(
            [(role, result.stages[f"evaluate_{role}"]) for role in ("teacher", "student")]
        )
    if not result.passed:
        sys.exit(1)
