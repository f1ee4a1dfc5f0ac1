"""``kdedge rerank teach | label | distill``: the training side of reranking.

Registered on the ``kdedge rerank`` group (:mod:`kdedge.cli.rerank`). Nothing heavy is
imported until a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from kdedge.cli.console import emit_json, rich_tracker, stdout
from kdedge.cli.options import compute_options, overwrite_option, resume_option

groups_path = click.Path(dir_okay=False, path_type=Path)
model_path = click.Path(path_type=Path)


def _gates(gates_file: Path | None, min_ndcg: float | None):
    from kdedge.errors import ConfigError
    from kdedge.rerank.config import default_gates, gates_from_toml

    if gates_file and min_ndcg is not None:
        raise ConfigError("give --gates FILE or --min-ndcg, not both")
    if gates_file:
        return gates_from_toml(gates_file)
    return default_gates(min_ndcg or 0.0)


def _layer_map(value: str | None) -> list[int] | None:
    from kdedge.errors import ConfigError

    if not value:
        return None
    try:
        return [int(x) for x in value.split(",")]
    except ValueError:
        raise ConfigError(
            f"--layer-map {value!r} must be comma-separated integers like 0,2,4"
        ) from None


def read_group_file(path: Path, what: str) -> list[Any]:
    """The query groups of ``path``, given as option ``what``; a missing file is one line."""
    from kdedge.errors import DataError
    from kdedge.rerank.data import read_groups

    if not path.is_file():
        raise DataError(
            f"{what} file {path} does not exist. Fix: build query groups with "
            "`kdedge rerank candidates` or pass an existing JSONL file"
        )
    return read_groups(path)


def _train_config(**kwargs: Any):
    from kdedge.rerank.config import RerankTrainConfig

    epochs = kwargs["epochs"]
    return RerankTrainConfig(min_epochs=min(2, epochs), **kwargs)


def render_rerank_training(result: Any, title: str) -> None:
    """Epoch table of a :class:`kdedge.rerank.trainer.RerankTrainResult`."""
    from rich.table import Table

    table = Table(title=f"{title} → {result.out_dir}")
    for col in ("epoch", "train loss", "NDCG@3", "NDCG@10", "MRR@10", "recall@10", "pairs/s"):
        table.add_column(col, justify="right")
    table.add_column("gates")
    for h in result.history:
        mark = "★ " if h["epoch"] == result.best_epoch else ""
        table.add_row(
            f"{mark}{h['epoch']}",
            f"{h['loss_train']:.4f}",
            f"{h['ndcg@3']:.4f}",
            f"{h['ndcg@10']:.4f}",
            f"{h['mrr@10']:.4f}",
            f"{h['recall@10']:.4f}",
            f"{h['pairs_per_sec']:.0f}",
            "pass" if h["gates_passed"] else "fail: " + "; ".join(h["gate_failures"]),
        )
    stdout.print(table)
    verdict = "[green]promotable[/]" if result.promotable else "[red]no epoch passed the gates[/]"
    stop = f" · stopped early at {result.stopped_early}" if result.stopped_early else ""
    stdout.print(f"selected epoch {result.best_epoch} ({verdict}){stop}")
    if result.score_threshold:
        t = result.score_threshold
        stdout.print(
            f"score threshold {t['score_threshold']:.4f} (top-1 relevant F1 {t['f1']:.3f} on "
            f"validation; top-1 relevant for {100 * t['top1_relevant_rate']:.1f}% of queries)"
        )


def _common_training(command):
    options = (
        click.option("--seed", default=0, show_default=True),
        click.option(
            "--candidates-per-query",
            default=8,
            show_default=True,
            help="Candidates per query in a step: its positives (at most half) + hard negatives.",
        ),
        click.option("--queries-per-batch", default=8, show_default=True, help="Queries per step."),
        click.option(
            "--min-ndcg",
            type=float,
            help="Gate: a checkpoint ships only with validation NDCG@10 >= this.",
        ),
        click.option(
            "--gates",
            "gates_file",
            type=click.Path(dir_okay=False, path_type=Path),
            help='Gates TOML over ranking metrics, e.g. "ndcg@10" = { min = 0.8 }.',
        ),
        click.option(
            "--validation",
            required=True,
            type=groups_path,
            help="Validation query groups (JSONL): choose the checkpoint by NDCG@10.",
        ),
        click.option(
            "--train", required=True, type=groups_path, help="Training query groups (JSONL)."
        ),
    )
    for option in options:
        command = option(command)
    return command


@click.command("teach")
@click.option(
    "--base",
    required=True,
    help="Local base encoder directory, or 'minilm' for the bundled all-MiniLM-L6-v2.",
)
@click.option("--out", required=True, type=model_path, help="Teacher output folder.")
@click.option("--epochs", default=3, show_default=True)
@click.option("--lr", default=5e-5, show_default=True)
@click.option(
    "--max-length", default=256, show_default=True, help="Tokens per (query, passage) pair."
)
@click.option(
    "--supervised",
    type=click.Choice(["bce", "listwise"]),
    default="bce",
    show_default=True,
    help="bce: pointwise BCE on relevance (absolute scores); listwise: softmax CE per query.",
)
@_common_training
@compute_options
@resume_option
@overwrite_option
def teach_cmd(
    base, out, epochs, lr, max_length, supervised, train, validation, gates_file, min_ndcg,
    queries_per_batch, candidates_per_query, seed, device, precision, resume, overwrite,
    quiet, as_json,
):  # fmt: skip
    """Fine-tune a cross-encoder teacher (one relevance logit) from a local base encoder.

    \b
    Example:
      kdedge rerank teach --base minilm --train train_groups.jsonl \\
          --validation val_groups.jsonl --out teacher/ --max-length 256
    The epoch with the best validation NDCG@10 that passes the gates is kept.
    """
    from kdedge.base_models import resolve_model
    from kdedge.rerank.teacher import teach_reranker

    result = teach_reranker(
        resolve_model(base),
        read_group_file(train, "--train"),
        read_group_file(validation, "--validation"),
        out,
        max_length=max_length,
        supervised=supervised,
        config=_train_config(
            epochs=epochs,
            lr=lr,
            queries_per_batch=queries_per_batch,
            candidates_per_query=candidates_per_query,
            seed=seed,
        ),
        device=device,
        precision=precision,
        gates=_gates(gates_file, min_ndcg),
        resume=resume,
        overwrite=overwrite,
        track=rich_tracker(quiet),
    )
    if as_json:
        emit_json(result.to_dict())
    else:
        render_rerank_training(result, "Reranker teacher")


@click.command("label")
@click.option("--teacher", required=True, type=model_path, help="Teacher reranker directory.")
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    type=groups_path,
    help="Query groups (JSONL) to score; repeat for several files.",
)
@click.option("--cache", required=True, type=model_path, help="Teacher-score cache folder.")
@click.option(
    "--max-length", type=int, help="Tokens per pair  [default: the teacher's kdedge.json, or 256]"
)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--refresh", is_flag=True, help="Drop this teacher's cached scores first.")
@compute_options
def label_cmd(teacher, data, cache, max_length, batch_size, refresh, device, precision, quiet,
              as_json):  # fmt: skip
    """Score every (query, passage) pair with the teacher, once, into the cache.

    \b
    Example:
      kdedge rerank label --teacher teacher/ --data train_groups.jsonl \\
          --data val_groups.jsonl --cache cache/
    Scores are keyed by teacher weights, tokenizer, max length and the pair's text, and each
    batch is committed, so a killed run resumes; `rerank distill --cache` reads them back.
    """
    from kdedge.distill.device import resolve
    from kdedge.rerank.scoring import score_pairs_cached

    groups = [g for path in data for g in read_group_file(path, "--data")]
    pairs = [(g.query, c.text) for g in groups for c in g.candidates]
    _, report = score_pairs_cached(
        teacher,
        pairs,
        cache,
        device=resolve(device, precision),
        max_length=max_length,
        batch_size=batch_size,
        refresh=refresh,
        track=rich_tracker(quiet),
    )
    if as_json:
        emit_json(report.to_dict())
        return
    stdout.print(
        f"✓ {report.pairs} pairs ({report.unique_pairs} distinct) of {len(groups)} queries: "
        f"cache hits {report.cache_hits}, misses {report.cache_misses}"
        + (f" ({report.pairs_per_sec:.0f} pairs/s)" if report.cache_misses else "")
        + f" → {cache}"
    )


@click.command("distill")
@click.option("--teacher", required=True, type=model_path, help="Teacher reranker directory.")
@click.option("--out", required=True, type=model_path, help="Student output folder.")
@click.option("--layers", type=int, help="Keep this many teacher layers  [default: half]")
@click.option("--layer-map", help="Teacher layers to keep, e.g. 0,2,4.")
@click.option(
    "--student-model",
    type=model_path,
    help="Start from this checkpoint instead (with --layers/--layer-map: take its layers).",
)
@click.option(
    "--loss",
    type=click.Choice(["pointwise", "margin_mse", "listwise"]),
    default="pointwise",
    show_default=True,
    help="Teacher term: MSE on scores, MSE on (pos, neg) margins, or listwise KL.",
)
@click.option(
    "--alpha",
    default=0.5,
    show_default=True,
    help="Weight of the relevance labels; 1 - alpha goes to the teacher term.",
)
@click.option(
    "--temperature", "-T", default=1.0, show_default=True, help="Listwise KL temperature."
)
@click.option(
    "--supervised",
    type=click.Choice(["bce", "listwise"]),
    default="bce",
    show_default=True,
    help="Label term: pointwise BCE or listwise softmax CE.",
)
@click.option(
    "--labels-only",
    is_flag=True,
    help="Baseline: the same student on relevance labels alone (alpha = 1, no teacher scores).",
)
@click.option(
    "--stage1-epochs",
    default=0,
    show_default=True,
    help="Stage-1 hidden-state/attention distillation epochs on the pairs first.",
)
@click.option("--epochs", default=4, show_default=True)
@click.option("--lr", default=1e-4, show_default=True)
@click.option("--max-length", type=int, help="Tokens per pair  [default: the teacher's]")
@click.option(
    "--cache", type=model_path, help="Teacher-score cache  [default: OUT.cache beside --out]"
)
@_common_training
@compute_options
@resume_option
@overwrite_option
def distill_cmd(
    teacher, out, layers, layer_map, student_model, loss, alpha, temperature, supervised,
    labels_only, stage1_epochs, epochs, lr, max_length, cache, train, validation, gates_file,
    min_ndcg, queries_per_batch, candidates_per_query, seed, device, precision, resume,
    overwrite, quiet, as_json,
):  # fmt: skip
    """Distill a reranker teacher into a smaller cross-encoder student.

    \b
    Examples:
      kdedge rerank distill --teacher teacher/ --train train_groups.jsonl \\
          --validation val_groups.jsonl --out student/ --layers 3 --loss pointwise --alpha 0.5
      kdedge rerank distill --teacher teacher/ --train train_groups.jsonl \\
          --validation val_groups.jsonl --out base/ --layers 3 --labels-only
    loss = alpha * labels + (1 - alpha) * teacher term; checkpoints are chosen by gates, then
    validation NDCG@10; training stops when NDCG@10 gains < 0.002 in an epoch.
    """
    from kdedge.rerank.distill import distill_reranker
    from kdedge.rerank.losses import RerankLossConfig
    from kdedge.rerank.models import check_reranker_dir

    check_reranker_dir(teacher)  # a one-line error before any data is read
    result = distill_reranker(
        teacher,
        read_group_file(train, "--train"),
        read_group_file(validation, "--validation"),
        out,
        layers=layers,
        layer_map=_layer_map(layer_map),
        student_dir=student_model,
        loss=RerankLossConfig(
            kind=loss,
            alpha=1.0 if labels_only else alpha,
            temperature=temperature,
            supervised=supervised,
        ),
        config=_train_config(
            epochs=epochs,
            lr=lr,
            queries_per_batch=queries_per_batch,
            candidates_per_query=candidates_per_query,
            seed=seed,
        ),
        stage1_epochs=stage1_epochs,
        cache_dir=cache,
        max_length=max_length,
        device=device,
        precision=precision,
        gates=_gates(gates_file, min_ndcg),
        resume=resume,
        overwrite=overwrite,
        track=rich_tracker(quiet),
    )
    if as_json:
        emit_json(result.to_dict())
        return
    if result.scoring:
        s = result.scoring
        stdout.print(f"teacher scores: cache hits {s['cache_hits']}, misses {s['cache_misses']}")
    for h in result.feature_history:
        stdout.print(
            f"stage 1 epoch {h['epoch']}: feature MSE {h['loss_feature']:.4f}, "
            f"attention MSE {h['loss_attention']:.5f}"
        )
    render_rerank_training(result.train, "Reranker student")
    stdout.print(f"student: {result.parameters / 1e6:.1f} M parameters")


COMMANDS = (teach_cmd, label_cmd, distill_cmd)
