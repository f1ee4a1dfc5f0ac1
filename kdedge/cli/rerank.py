"""``kdedge rerank``: distill a cross-encoder reranker (teacher -> small student)."""

from __future__ import annotations

from pathlib import Path

import click

from kdedge.cli.console import emit_json, info, stdout
from kdedge.cli.options import json_option
from kdedge.cli.rerank_evaluate import evaluate_cmd
from kdedge.cli.rerank_train import COMMANDS as TRAINING_COMMANDS

data_path = click.Path(exists=False, dir_okay=False, path_type=Path)


@click.group("rerank")
def command():
    """Distill a cross-encoder reranker: a teacher scores (query, passage) pairs, a small
    student learns its scores and ranking, and ships like any other kdedge model.

    Data are query groups: one query per JSONL line with its candidate passages,
    {"query_id", "query", "candidates": [{"doc_id", "text", "relevance"}, ...]}. Build them
    with `candidates` from labeled queries and a corpus (BM25 top k, so the negatives are
    hard ones), or write them yourself.

    \b
    Example, the whole flow:
      kdedge rerank candidates --queries train.jsonl --corpus corpus.jsonl \\
          --out train_groups.jsonl --k 20
      kdedge rerank candidates --queries validation.jsonl --corpus corpus.jsonl \\
          --out val_groups.jsonl
      kdedge rerank teach --base minilm --train train_groups.jsonl \\
          --validation val_groups.jsonl --out teacher/
      kdedge rerank label --teacher teacher/ --data train_groups.jsonl --cache cache/
      kdedge rerank distill --teacher teacher/ --train train_groups.jsonl \\
          --validation val_groups.jsonl --cache cache/ --out student/ --layers 3
      kdedge rerank evaluate teacher/ student/ --data test_groups.jsonl
      kdedge export student/ --out bundle/
      kdedge predict bundle/ ...
    """


@command.command("candidates")
@click.option(
    "--queries",
    required=True,
    type=data_path,
    help='JSONL queries: {"text", "label"} (optional "query_id").',
)
@click.option(
    "--corpus",
    required=True,
    type=data_path,
    help='JSONL documents: "doc_id" plus "text" (or "question" + "answer") and the label field.',
)
@click.option("--out", required=True, type=data_path, help="Where to write the query groups.")
@click.option(
    "--k", type=click.IntRange(1), default=50, show_default=True, help="BM25 candidates per query."
)
@click.option(
    "--no-ensure-positives",
    is_flag=True,
    help="Do not append relevant documents BM25 missed (the list is then BM25's top k only).",
)
@click.option(
    "--doc-label-field",
    default="thread_id",
    show_default=True,
    help="Corpus field matched against the query's label: equal means relevant.",
)
@json_option
def candidates_cmd(queries, corpus, out, k, no_ensure_positives, doc_label_field, as_json):
    """Build query groups: BM25's top k documents for each labeled query, judged.

    A document is relevant (1) to a query iff its --doc-label-field equals the query's
    "label" (StackFAQ: the thread id). Only documents sharing a word with the query are BM25
    hits, so a list can be shorter than k. Relevant documents BM25 missed are appended after
    its top k (unless --no-ensure-positives), so ranking metrics on these lists measure the
    reranker alone; the printed BM25 recall@k is what the first stage found by itself. The
    output is written atomically.

    \b
    Example:
      kdedge rerank candidates --queries stackfaq/test.jsonl \\
          --corpus stackfaq/corpus.jsonl --out test_groups.jsonl --k 50
    """
    from kdedge.rerank.data import write_groups
    from kdedge.rerank.retrieval import stackfaq_groups

    if not as_json:
        info(f"BM25 over {corpus.name} for the queries in {queries.name} …")
    groups, report = stackfaq_groups(
        queries,
        corpus,
        k=k,
        ensure_positives=not no_ensure_positives,
        label_field=doc_label_field,
    )
    if not groups:
        from kdedge.errors import DataError

        raise DataError(
            "no query shares a word with any document and none has a relevant one: nothing "
            "to write. Fix: check that --queries and --corpus belong together",
            path=queries,
        )
    path = write_groups(out, groups)
    if as_json:
        emit_json({"out": str(path), **report.to_dict()})
    else:
        stdout.print(f"✓ {path}: {report.summary()}", soft_wrap=True)


for _training_command in (*TRAINING_COMMANDS, evaluate_cmd):  # teach, label, distill, evaluate
    command.add_command(_training_command)
