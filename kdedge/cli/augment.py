"""``kdedge augment``."""

from __future__ import annotations

from pathlib import Path

import click

from kdedge.cli.console import emit_json, stdout
from kdedge.cli.options import json_option


@click.command("augment")
@click.option(
    "--data",
    "sources",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Text to edit: a JSONL/CSV file (repeat for several). Labels, if any, pick splice "
    "partners from other labels.",
)
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Transfer-set JSONL to write."
)
@click.option(
    "--exclude",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Never write a text found in this file (pass validation and test files).",
)
@click.option("--per-text", default=2, show_default=True, help="Edited copies per source text.")
@click.option(
    "--ops",
    default="drop,swap,splice,shuffle",
    show_default=True,
    help="Edits to draw from: drop, swap, splice, shuffle.",
)
@click.option("--seed", default=0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@json_option
def command(sources, out, exclude, per_text, ops, seed, overwrite, as_json):
    """Make an offline transfer set: edited, unlabeled copies of your text for the teacher
    to label and the student to learn from.

    \b
    Example:
      kdedge augment --data data/train.jsonl --exclude data/validation.jsonl \\
          --exclude data/test.jsonl --out transfer.jsonl --per-text 2
      kdedge distill --teacher teacher/ --data data/ --out student/ --transfer transfer.jsonl
    Needs no network and no model: words are dropped, swapped, shuffled, or two texts of
    different labels are spliced. The teacher labels the copies through the logit cache.
    """
    from kdedge.data.augment import augment
    from kdedge.data.io import load_examples, load_unlabeled, write_examples
    from kdedge.errors import ConfigError

    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists. Fix: pass --overwrite or choose another --out")
    rows = [e for path in sources for e in load_examples(path, require_labels=False)]
    held_out = [e.text for e in load_unlabeled(exclude)]
    made, report = augment(
        rows,
        per_text=per_text,
        ops=[op.strip() for op in ops.split(",") if op.strip()],
        seed=seed,
        exclude=held_out,
    )
    write_examples(out, made)
    if as_json:
        emit_json({"out": str(out), **report.to_dict()})
        return
    per_op = ", ".join(f"{op} {n}" for op, n in report.per_op.items())
    stdout.print(
        f"wrote {report.written} texts from {report.sources} to {out} ({per_op}; "
        f"{report.skipped} edits skipped: too short, or already a known text)"
    )
