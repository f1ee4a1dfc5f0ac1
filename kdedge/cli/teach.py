"""``kdedge teach``."""

from __future__ import annotations

from pathlib import Path

import click

from kdedge.cli.console import emit_json, rich_tracker
from kdedge.cli.options import compute_options, overwrite_option, resume_option
from kdedge.cli.render import render_training


@click.command("teach")
@click.option(
    "--base",
    required=True,
    help="Local base encoder directory, or 'minilm' for the bundled all-MiniLM-L6-v2.",
)
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path),
    help="A folder written by `kdedge prepare`.",
)
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Teacher output folder."
)
@click.option("--epochs", default=6, show_default=True)
@click.option("--lr", default=1e-4, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--max-length", default=64, show_default=True, help="Tokens per text (truncated).")
@click.option("--seed", default=0, show_default=True)
@compute_options
@resume_option
@overwrite_option
def command(
    base,
    data,
    out,
    epochs,
    lr,
    batch_size,
    max_length,
    seed,
    device,
    precision,
    resume,
    overwrite,
    quiet,
    as_json,
):
    """Fine-tune a teacher classifier from a local base encoder.

    \b
    Example:
      kdedge teach --base minilm --data data/ --out teacher/ --epochs 6
    The epoch with the best validation accuracy is kept; its labels travel in labels.json.
    """
    from kdedge.base_models import resolve_model
    from kdedge.distill.device import resolve
    from kdedge.distill.teacher import teach
    from kdedge.distill.trainer import TrainConfig

    result = teach(
        resolve_model(base),
        data,
        out,
        placement=resolve(device, precision),
        config=TrainConfig(
            epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, min_epochs=max(3, epochs // 2)
        ),
        max_length=max_length,
        resume=resume,
        overwrite=overwrite,
        track=rich_tracker(quiet),
    )
    if as_json:
        emit_json(result.to_dict())
    else:
        render_training(result, "Teacher")
