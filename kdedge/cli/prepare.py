"""``kdedge prepare``."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from kdedge.cli.console import emit_json, stdout
from kdedge.cli.options import json_option


@click.command("prepare")
@click.argument("train", type=click.Path(path_type=Path))
@click.option("--validation", type=click.Path(path_type=Path), help="Labeled validation file.")
@click.option("--test", type=click.Path(path_type=Path), help="Labeled test file (kept apart).")
@click.option(
    "--unlabeled",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Unlabeled text for teacher-only soft labels (repeatable).",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option(
    "--split",
    default="0.8,0.1,0.1",
    show_default=True,
    help="train,validation,test fractions for the splits not given as files.",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the stratified split.")
@click.option("--no-scrub", is_flag=True, help="Keep emails, phones, cards and order ids.")
@click.option("--no-dedupe", is_flag=True, help="Keep rows with duplicate normalised text.")
@json_option
def command(train, validation, test, unlabeled, out, split, seed, no_scrub, no_dedupe, as_json):
    """Validate, PII-scrub, dedupe and split TRAIN (JSONL or CSV with text,label[,weight,slice]).

    \b
    Example:
      kdedge prepare tickets.jsonl --unlabeled logs.jsonl --out data/
    writes data/{train,validation,test,unlabeled}.jsonl, labels.json and prepare_report.json.
    """
    from kdedge.data.prepare import prepare_dataset
    from kdedge.errors import ConfigError

    try:
        fractions = tuple(float(x) for x in split.split(","))
    except ValueError:
        raise ConfigError(
            f"--split {split!r} must be comma-separated numbers like 0.8,0.1,0.1"
        ) from None
    report = prepare_dataset(
        train,
        out_dir=out,
        validation_path=validation,
        test_path=test,
        unlabeled_paths=list(unlabeled),
        split=fractions,
        seed=seed,
        scrub=not no_scrub,
        dedupe=not no_dedupe,
    )
    data = report.to_dict()
    if as_json:
        emit_json(data)
        return
    render_prepare(data)


def render_prepare(data: dict) -> None:
    table = Table(title=f"Prepared dataset → {data['out_dir']}")
    table.add_column("split")
    table.add_column("rows", justify="right")
    for split, n in data["counts"].items():
        table.add_row(split, str(n))
    stdout.print(table)
    pii = ", ".join(f"{k} {v}" for k, v in data["pii"].items())
    stdout.print(
        f"{len(data['labels'])} labels · duplicates removed {data['duplicates']} "
        f"(label conflicts {data['conflicts']}) · leaked into eval splits {data['leaked']} · "
        f"PII scrubbed: {pii}"
    )
