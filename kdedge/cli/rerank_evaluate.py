"""``kdedge rerank evaluate``: rank query groups with one or more rerankers and compare them.

Registered on the ``kdedge rerank`` group (:mod:`kdedge.cli.rerank`). Nothing heavy is
imported until the command runs.
"""

from __future__ import annotations

from typing import Any

import click

from kdedge.cli.console import emit_json, stdout
from kdedge.cli.options import compute_options
from kdedge.cli.rerank_train import groups_path, model_path, read_group_file


@click.command("evaluate")
@click.argument("models", nargs=-1, required=True, type=model_path)
@click.option("--data", required=True, type=groups_path, help="Query groups (JSONL) to rank.")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--max-length", type=int, help="Tokens per pair  [default: each model's]")
@click.option(
    "--first-stage",
    is_flag=True,
    help="Add a column for the candidates' order in the file (e.g. BM25's).",
)
@compute_options
def evaluate_cmd(models, data, batch_size, max_length, first_stage, device, precision, quiet,
                 as_json):  # fmt: skip
    """Rank query groups with one or more rerankers: NDCG@3/5/10, MRR@10, recall@k.

    \b
    Examples:
      kdedge rerank evaluate student/ --data test_groups.jsonl
      kdedge rerank evaluate teacher/ student/ --data test_groups.jsonl --first-stage
    With several models the first is the reference: the table adds each model's share of
    its NDCG@10 and their top-3 agreement.
    """
    import time

    import numpy as np

    from kdedge.distill.device import resolve
    from kdedge.rerank.metrics import ranking_report, top_k_agreement
    from kdedge.rerank.models import check_reranker_dir, load_reranker, score_groups

    for model in models:
        check_reranker_dir(model)
    groups = read_group_file(data, "--data")
    placement = resolve(device, precision)
    columns: list[tuple[str, dict[str, Any], list[np.ndarray] | None]] = []
    if first_stage:
        order = [-np.arange(len(g.candidates), dtype=np.float32) for g in groups]
        columns.append(("first stage", ranking_report(groups, order), None))
    reference = None
    reports = []
    for model in models:
        clf = load_reranker(model, max_length=max_length)
        t0 = time.perf_counter()
        scores = score_groups(clf, groups, batch_size=batch_size, device=placement)
        seconds = time.perf_counter() - t0
        metrics = ranking_report(groups, scores)
        if reference is None:
            reference = (metrics, scores)
        else:
            metrics["share_of_reference_ndcg@10"] = (
                metrics["ndcg@10"] / reference[0]["ndcg@10"] if reference[0]["ndcg@10"] else None
            )
            metrics["top3_agreement"] = float(
                np.mean(
                    [top_k_agreement(a, b, 3) for a, b in zip(scores, reference[1], strict=True)]
                )
            )
        metrics["seconds"] = round(seconds, 3)
        name = f"{model} ({clf.meta.get('role', '?')}, {clf.model.config.num_hidden_layers}L)"
        columns.append((name, metrics, scores))
        reports.append({"model": str(model), "role": clf.meta.get("role"), **metrics})
    if as_json:
        out = {"data": str(data), "queries": len(groups), "models": reports}
        if first_stage:
            out["first_stage"] = columns[0][1]
        emit_json(out)
        return
    from rich.table import Table

    table = Table(title=f"Ranking {len(groups)} queries of {data}")
    table.add_column("metric")
    for name, _, _ in columns:
        table.add_column(name, justify="right")
    keys = ["ndcg@3", "ndcg@5", "ndcg@10", "mrr@10", "recall@3", "recall@5", "recall@10"]
    for key in keys:
        table.add_row(key, *[f"{m[key]:.4f}" for _, m, _ in columns])
    if len(models) > 1:
        for key, label in (("share_of_reference_ndcg@10", "share of NDCG@10"),
                           ("top3_agreement", "top-3 agreement")):  # fmt: skip
            table.add_row(label, *[_pct(m.get(key)) for _, m, _ in columns])
    table.add_row("scoring seconds", *[f"{m['seconds']:.2f}" if "seconds" in m else "—"
                                       for _, m, _ in columns])  # fmt: skip
    stdout.print(table)
    skipped = int(columns[-1][1].get("queries_without_positive", 0))
    if skipped:
        stdout.print(f"{skipped} queries without a relevant candidate were left out of the means")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"
