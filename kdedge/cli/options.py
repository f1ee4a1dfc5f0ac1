"""Options shared by several commands, declared once."""

from __future__ import annotations

import click

device_option = click.option(
    "--device",
    type=click.Choice(["auto", "cuda", "mps", "cpu"]),
    default="auto",
    show_default=True,
    help="Where to run: auto picks CUDA, then Apple MPS, then CPU.",
)
precision_option = click.option(
    "--precision",
    type=click.Choice(["auto", "bf16", "fp32"]),
    default="auto",
    show_default=True,
    help="auto = bf16 autocast on CUDA, fp32 elsewhere.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
resume_option = click.option(
    "--resume", is_flag=True, help="Continue an interrupted run in --out from its last epoch."
)
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace an existing --out.")


def compute_options(command):
    """--device, --precision, --quiet and --json: the options of every command that computes."""
    for option in (json_option, quiet_option, precision_option, device_option):
        command = option(command)
    return command
