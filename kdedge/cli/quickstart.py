"""``kdedge quickstart``."""

from __future__ import annotations

from pathlib import Path

import click

from kdedge.cli.console import emit_json, info, rich_tracker, stdout
from kdedge.cli.options import json_option, quiet_option


@click.command("quickstart")
@click.option(
    "--workdir",
    default="kdedge-quickstart",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where data, teacher and student are written.",
)
@click.option(
    "--device", type=click.Choice(["auto", "cuda", "mps", "cpu"]), default="auto", show_default=True
)
@quiet_option
@json_option
def command(workdir, device, quiet, as_json):
    """Distill a real intent classifier on the bundled MangaAssist support data.

    \b
    Example:
      kdedge quickstart --workdir /tmp/qs
    Fine-tunes all-MiniLM-L6-v2 (6 layers) as the teacher, distills a 3-layer student with
    KD plus the rare-class term, calibrates both and evaluates them on the held-out test
    split. About 5-10 minutes on a 2-core CPU. The recipe it runs is
    kdedge/samples/mangaassist/recipe.toml: copy it to start your own.
    """
    from kdedge.cli.render import render_evaluations
    from kdedge.cli.run import stage_printer
    from kdedge.pipeline import run_recipe
    from kdedge.recipe import load_recipe
    from kdedge.samples import MANGAASSIST_RECIPE

    recipe = load_recipe(MANGAASSIST_RECIPE, device=device, workdir=str(Path(workdir).resolve()))
    if not (quiet or as_json):
        info(f"kdedge quickstart → {recipe.root}  (recipe: {MANGAASSIST_RECIPE})")
    result = run_recipe(
        recipe, track=rich_tracker(quiet or as_json), on_stage=stage_printer(quiet or as_json)
    )
    if as_json:
        emit_json(result.to_dict())
    else:
        render_evaluations(
            [(role, result.stages[f"evaluate_{role}"]) for role in ("teacher", "student")]
        )
        stdout.print(
            f"student model: {recipe.root / 'student'}  ·  full report: "
            f"{recipe.root / 'pipeline_report.json'}"
        )
    if not result.passed:  # a demo reports the verdict; `kdedge run` turns it into exit 1
        stdout.print("[yellow]the student did not pass every gate of the recipe (see above)[/]")
