"""``kdedge label``."""

from __future__ import annotations

from pathlib import Path

import click

from kdedge.cli.console import emit_json, rich_tracker, stdout
from kdedge.cli.options import compute_options


@click.command("label")
@click.option(
    "--teacher",
    "teachers",
    multiple=True,
    required=True,
    help="Teacher model directory (repeat for an ensemble).",
)
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path),
    help="A folder written by `kdedge prepare`.",
)
@click.option(
    "--cache", type=click.Path(path_type=Path), help="Cache folder  [default: DATA/cache]"
)
@click.option("--batch-size", default=256, show_default=True)
@click.option("--refresh", is_flag=True, help="Drop these teachers' cached logits and recompute.")
@compute_options
def command(teachers, data, cache, batch_size, refresh, device, precision, quiet, as_json):
    """Run teacher(s) once over every text of a prepared dataset into the logit cache.

    \b
    Example:
      kdedge label --teacher teacher/ --data data/
      torchrun --nproc_per_node 2 -m kdedge label --teacher teacher/ --data data/
    Logits are stored by (teacher fingerprint, tokenizer, max length, text); a second run,
    and every later `kdedge distill`, reads them instead of running the teacher. Safe to
    kill: finished chunks are committed and the next run resumes. Under a launcher the
    processes share each chunk and rank 0 writes it: the cache is the same as one process's.
    """
    from kdedge.data.prepare import load_prepared
    from kdedge.distill.device import resolve
    from kdedge.distill.labeling import label_texts

    prepared = load_prepared(data)
    texts = prepared.all_texts()
    result = label_texts(
        list(teachers),
        texts,
        cache or Path(data) / "cache",
        resolve(device, precision),
        batch_size=batch_size,
        refresh=refresh,
        track=rich_tracker(quiet),
    )
    report = result.report.to_dict()
    if as_json:
        emit_json(report)
        return
    stdout.print(
        f"{report['texts']} texts · {len(teachers)} teacher(s) · cache hits {report['cache_hits']}"
        f" · misses {report['cache_misses']} · {report['samples_per_sec']:.0f} samples/s labeling"
        f" · teacher entropy {report['teacher_entropy_mean']:.3f}"
        f" · low-confidence {100 * report['low_confidence_fraction']:.1f}%"
    )
