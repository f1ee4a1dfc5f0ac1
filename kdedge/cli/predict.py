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
@click.option(
    "--evidence",
    multiple=True,
    metavar="LINE",
    help="Generate bundles: a catalog record the answer may use (repeat).",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(1),
    help="Generate bundles: longest answer in tokens  [default: the manifest's]",
)
@click.option(
    "--query",
    help="Rerank bundles: the query to rank the passages (TEXTS / --file) against.",
)
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
    evidence,
    max_tokens,
    query,
    as_json,
    **runtime,
):
    """Predict intents with a bundle, torch-free: label, calibrated confidence and route.
    With a generate bundle, answer questions instead (from --evidence lines); with a
    rerank bundle, rank the passages against --query (best first, --top-k of them).

    The route says what an app should do: `answer` (trust the student), `clarify` (ask the
    question shown) or `fallback` (ask the teacher; with --teacher it is asked here).

    \b
    Examples:
      kdedge predict bundle/ "where is my order?"
      kdedge predict bundle/ "cancel my card" "hi there" --json
      kdedge predict bundle/ --file holdout.jsonl --artifact openvino-int8
      kdedge predict bundle/ "freeze my account" --teacher http://127.0.0.1:8000/v1 \\
          --teacher-model gpt-4o-mini
      kdedge predict llm-bundle/ "Is Nana vol. 1 in stock?" \\
          --evidence "Nana vol. 1 | paperback | in stock | $9.99"
      kdedge predict rerank-bundle/ --query "how do I cross out text?" \
          "Use ~~two tildes~~ around the words." "Orders ship in two days." --top-k 1
    """
    from kdedge.errors import ConfigError
    from kdedge.runtimes.generate import GenerationRuntime
    from kdedge.runtimes.rerank import RerankRuntime

    texts = list(texts) + (_read_texts(text_file) if text_file else [])
    if not texts:
        if query is not None:
            raise ConfigError(
                "the query has no candidates: pass its passages as arguments or --file FILE"
            )
        raise ConfigError("nothing to predict: pass texts as arguments or --file FILE")
    with open_runtime(bundle, **runtime) as rt:
        if isinstance(rt, RerankRuntime):
            if query is None:
                raise ConfigError(f"{bundle} is a reranker: pass --query and the passages")
            if probs or evidence or max_tokens:
                raise ConfigError("--probs, --evidence and --max-tokens do not apply to rerank")
            ranking = rt.rerank(query, texts, top_k, route=not no_route)
            if as_json:
                emit_json(ranking.to_dict(texts))
                return
            info(f"{rt.artifact.name} on {rt.artifact.backend} · {rt.why}")
            _ranking(texts, ranking)
            return
        if query is not None:
            raise ConfigError(f"--query applies to rerank bundles; {bundle} is not one")
        if isinstance(rt, GenerationRuntime):
            if probs:
                raise ConfigError(f"--probs applies to classifier bundles; {bundle} generates")
            results = [
                rt.generate(q, list(evidence), route=not no_route, max_tokens=max_tokens)
                for q in texts
            ]
            if as_json:
                rows = [g.to_dict() for g in results]
                emit_json(rows[0] if len(rows) == 1 else rows)
                return
            info(f"{rt.artifact.name} on {rt.backend.name} · {rt.why}")
            _answers(texts, results)
            return
        if evidence or max_tokens:
            raise ConfigError(
                f"--evidence and --max-tokens apply to generate bundles; {bundle} is a classifier"
            )
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


def _answers(questions, generations) -> None:
    """Each question, its answer, and a line of route, confidence and speed."""
    from rich.markup import escape

    colours = {"answer": "green", "clarify": "yellow", "fallback": "magenta"}
    for question, g in zip(questions, generations, strict=True):
        if g.text is not None:
            answer = escape(g.text.strip())
        else:
            answer = "[dim](no answer: the route is fallback and no --teacher was given)[/]"
        conf = "—" if g.confidence is None else f"{g.confidence:.3f}"
        speed = "—" if g.tokens_per_s is None else f"{g.tokens_per_s:.1f}"
        teacher = f" · teacher {g.fallback.source}" if g.fallback is not None else ""
        stdout.print(f"[bold]Q:[/] {escape(question)}")
        stdout.print(answer)
        stdout.print(
            f"[{colours[g.route]}]{g.route}[/] ({g.reason}) · confidence {conf} · "
            f"{g.tokens} tokens · {speed} tokens/s · {g.latency_ms:.0f} ms{teacher}\n",
            style="dim",
        )


def _ranking(passages, ranking) -> None:
    from rich.table import Table

    colour = {"answer": "green", "clarify": "yellow", "fallback": "magenta"}[ranking.route]
    table = Table(
        title=f"[{colour}]{ranking.route}[/] ({ranking.reason}) · {ranking.latency_ms:.1f} ms"
    )
    table.add_column("rank", justify="right")
    table.add_column("score", justify="right")
    table.add_column("#", justify="right")
    table.add_column("passage", overflow="fold", max_width=72)
    for n, r in enumerate(ranking.results, 1):
        table.add_row(str(n), f"{r.score:.3f}", str(r.index), passages[r.index])
    stdout.print(table)


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
