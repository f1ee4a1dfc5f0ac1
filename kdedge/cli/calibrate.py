"""``kdedge calibrate``."""

from __future__ import annotations

from pathlib import Path

import click

from kdedge.cli.console import emit_json, rich_tracker, stdout
from kdedge.cli.options import compute_options


@click.command("calibrate")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path),
    help="Labeled holdout (JSONL/CSV) not used for training, e.g. DATA/validation.jsonl.",
)
@click.option("--bins", default=15, show_default=True, help="ECE bins.")
@click.option("--no-plot", is_flag=True, help="Skip the reliability diagram PNG.")
@compute_options
def command(model_dir, data, bins, no_plot, device, precision, quiet, as_json):
    """Fit a softmax temperature on a holdout and save it with the model.

    \b
    Example:
      kdedge calibrate student/ --data data/validation.jsonl
    Writes the temperature into student/kdedge.json, plus calibration.json and
    reliability.png (accuracy against confidence, before and after).
    """
    from kdedge.distill.device import resolve
    from kdedge.distill.evaluation import calibrate_model

    result = calibrate_model(
        model_dir,
        data,
        resolve(device, precision),
        n_bins=bins,
        plot=not no_plot,
        track=rich_tracker(quiet),
    )
    if as_json:
        emit_json(result.to_dict())
        return
    stdout.print(
        f"temperature {result.temperature:.3f}"
        f" · ECE {result.ece_before:.4f} → {result.ece_after:.4f}"
        f" · NLL {result.nll_before:.4f} → {result.nll_after:.4f} · {result.n} holdout rows"
        + ("" if no_plot else f" · {Path(model_dir) / 'reliability.png'}")
    )
