"""``kdedge predict``."""

from __future__ import annotations

from pathlib import Path

import click

from kdedge.cli.console import emit_json, info, stdout
from kdedge.cli.options import open_runtime, runtime_options, teacher_options


@click.command("predict")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.argument("texts", nargs=-1)
@click.option(
    "--file",
    "text_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Predict every row of a .jsonl/.csv (field 'text') or .txt (one per line) file.",
)
@click.option("--no-route", is_flag=True, help="Skip the router: the student always answers.")
@click.option("--top-k", type=click.IntRange(1, 50), default=3, show_default=True)
@click.option("--probs", is_flag=True, help="Include every calibrated probability (JSON).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object, or a list).")
@runtime_options
@teacher_options
def command(
    bundle,
    texts,
    text_file,
    no_route,
    top_k,
    probs,
    as_json,
    **runtime,
):
    """Predict intents with a bundle, torch-free: label, calibrated confidence and route.

    The route says what an app should do: `answer` (trust the student), `clarify` (ask the
    question shown) or `fallback` (ask the teacher; with --teacher it is asked here).

    \b
    Examples:
      kdedge predict bundle/ "where is my order?"
      kdedge predict bundle/ "cancel my card" "hi there" --json
      kdedge predict bundle/ --file holdout.jsonl --artifact openvino-int8
      kdedge predict bundle/ "freeze my account" --teacher http://127.0.0.1:8000/v1 \\
          --teacher-model gpt-4o-mini
    """
    from kdedge.errors import ConfigError

    texts = list(texts) + (_read_texts(text_file) if text_file else [])
    if not texts:
        raise ConfigError("nothing to predict: pass texts as arguments or --file FILE")
    with open_runtime(bundle, **runtime) as rt:
        predictions = rt.predict_batch(texts, route=not no_route)
        if as_json:
            rows = [p.to_dict(top_k=top_k, probs=probs) for p in predictions]
            emit_json(rows[0] if len(rows) == 1 else rows)
            return
        info(f"{rt.artifact.name} on {rt.backend.name} · {rt.why}")
        _table(texts, predictions, top_k)


def _read_texts(path: Path) -> list[str]:
    if path.suffix.lower() == ".txt":
        from kdedge.errors import DataError

        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read texts: {exc}", path=path) from exc
        return [line for line in lines if line.strip()]
    from kdedge.data.io import load_examples

    return [e.text for e in load_examples(path, require_labels=False)]


def _table(texts, predictions, top_k: int) -> None:
    from rich.table import Table

    table = Table()
    table.add_column("text", overflow="fold", max_width=48)
    table.add_column("label", no_wrap=True)
    table.add_column("conf", justify="right")
    table.add_column("route")
    table.add_column(f"detail (top {top_k})", overflow="fold")
    for text, p in zip(texts, predictions, strict=True):
        colour = {"answer": "green", "clarify": "yellow", "fallback": "magenta"}[p.route]
        if p.route == "clarify":
            detail = f"{p.reason}: {p.clarify}"
        elif p.route == "fallback":
            teacher = f" → teacher said {p.label}" if p.source == "teacher" else ""
            detail = f"{p.reason}, risk {p.risk:.2f}{teacher}"
        else:
            detail = ", ".join(f"{label} {prob:.2f}" for label, prob in p.top_k(top_k))
        table.add_row(text, p.label, f"{p.confidence:.3f}", f"[{colour}]{p.route}[/]", detail)
    stdout.print(table)
