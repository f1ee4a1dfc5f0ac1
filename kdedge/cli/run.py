"""``kdedge run``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kdedge.cli.console import RANK, emit_json, info, rich_tracker
from kdedge.cli.options import json_option, quiet_option


def _rerank_stage(stage: str, report: dict) -> bool:
    """The one-line summary of a reranker recipe's stage; False when it is not one."""
    if stage == "candidates":
        parts = [
            f"{s} {r['queries']} queries, BM25 recall@{r['k']} {100 * r['recall_at_k']:.1f}%"
            for s, r in report.items()
        ]
        info("[green]✓ candidates[/] " + "; ".join(parts))
    elif stage in ("teach", "distill") and ("history" in report or "train" in report):
        train = report.get("train", report)
        best = next(h for h in train["history"] if h["epoch"] == train["best_epoch"])
        info(
            f"[green]✓ {stage:<9}[/] epoch {train['best_epoch']} kept "
            f"({'promotable' if train['promotable'] else 'NOT promotable'}), "
            f"val NDCG@10 {best['ndcg@10']:.4f}"
        )
    elif stage == "evaluate" and "models" in report:
        parts = [f"{m['role']} {m['layers']}L NDCG@10 {m['ndcg@10']:.4f}" for m in report["models"]]
        info("[green]✓ evaluate[/]  " + " · ".join(parts))
    elif stage == "export":
        shipped = [a["name"] for a in report["artifacts"] if a["shipped"]]
        info(f"[green]✓ export[/]    {', '.join(shipped) or 'nothing'} → {report['out_dir']}")
    else:
        return stage == "teach"  # a skipped stage of either kind
    return True


def stage_printer(quiet: bool, task: str = "intent"):
    """Print a one-line summary as each stage finishes."""

    def on_stage(stage: str, report: dict) -> None:
        if quiet:
            return
        if "skipped" in report:
            info(f"[green]✓ {stage}[/] {report['skipped']}")
            return
        if task == "rerank":
            _rerank_stage(stage, report)
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

    A recipe with `task = "rerank"` runs a reranker instead: candidates (BM25, when the
    recipe gives a corpus), teach, distill (teacher scores cached), evaluate teacher and
    student by NDCG, and export the student when [export] lists formats.

    \b
    Example:
      kdedge run examples/recipes/mangaassist.toml --device cuda
      kdedge run examples/recipes/stackfaq_rerank.toml
    Reports go to WORKDIR/pipeline_report.json. Exit status 1 when the student fails a gate.
    """
    from kdedge.cli.render import render_evaluations
    from kdedge.pipeline import run_recipe
    from kdedge.recipe import load_recipe

    loaded = load_recipe(recipe, device=device, workdir=str(workdir) if workdir else None)
    task = getattr(loaded, "task", "intent")
    result = run_recipe(
        loaded,
        resume=resume,
        track=rich_tracker(quiet or as_json),
        on_stage=stage_printer(quiet or as_json, task),
    )
    if RANK:
        return  # under a launcher, rank 0 reports (and judges the gates)
    if as_json:
        emit_json(result.to_dict())
    elif task == "rerank":
        _render_rankings(result.stages["evaluate"])
    else:
        render_evaluations(
            [(role, result.stages[f"evaluate_{role}"]) for role in ("teacher", "student")]
        )
    if not result.passed:
        sys.exit(1)


def _render_rankings(report: dict) -> None:
    """Teacher and student side by side, with the first stage's own order for scale."""
    from rich.table import Table

    from kdedge.cli.console import stdout

    models = report["models"]
    table = Table(title=f"Ranking {int(models[0]['queries'])} queries of {report['data']}")
    table.add_column("metric")
    table.add_column("first stage", justify="right")
    for m in models:
        table.add_column(f"{m['role']} ({m['layers']}L)", justify="right")
    for key in ("ndcg@3", "ndcg@5", "ndcg@10", "mrr@10", "recall@10"):
        table.add_row(key, f"{report['first_stage'][key]:.4f}", *[f"{m[key]:.4f}" for m in models])
    share = models[-1].get("share_of_reference_ndcg@10")
    if share is not None:
        table.add_row("share of teacher NDCG@10", "", "", f"{100 * share:.1f}%")
    stdout.print(table)
