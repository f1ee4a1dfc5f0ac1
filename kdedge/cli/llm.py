"""``kdedge llm``: response distillation from teacher answers to a GGUF student."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kdedge.cli.console import emit_json, info, percent, rich_tracker, stdout
from kdedge.cli.options import (
    compute_options,
    json_option,
    overwrite_option,
    quiet_option,
    resume_option,
)

data_path = click.Path(exists=False, path_type=Path)


@click.group("llm")
def command():
    """Distill a teacher's grounded answers into a small causal LM shipped as GGUF.

    \b
    Example, the whole flow (each step is cached or resumable; every file is readable JSONL):
      kdedge llm import-gguf SmolLM2-135M-Instruct.Q4_1.gguf --out smollm2/
      kdedge llm collect --teacher-url http://127.0.0.1:8000/v1 --teacher-model T \\
          --prompts prompts.jsonl --catalog catalog.jsonl --out answers/
      kdedge llm gate answers/ --catalog catalog.jsonl --out gated/
      kdedge llm build gated/ --out train/                      # optional data mix
      kdedge llm distill --student smollm2/ --data gated/ --eval-data val_answers/ \\
          --catalog catalog.jsonl --out student/
      kdedge export student/ --format gguf-q8_0 --format gguf-q4_k_m --out llm-bundle/
      kdedge llm eval llm-bundle/ --data test_answers/ --catalog catalog.jsonl
    """


@command.command("import-gguf")
@click.argument("gguf_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@json_option
def import_gguf_cmd(gguf_file: Path, out: Path, as_json: bool) -> None:
    """Turn a Llama-family GGUF into a local Hugging Face model folder to fine-tune.

    The weights are dequantized by transformers; the tokenizer is rebuilt as a GPT-2
    byte-level BPE from the GGUF's own vocabulary, so it tokenizes exactly like llama.cpp.

    \b
    Example:
      kdedge llm import-gguf SmolLM2-135M-Instruct.Q4_1.gguf --out smollm2/
    """
    from kdedge.llm.models import import_gguf

    info(f"dequantizing {gguf_file.name} (about 30 s for a 135M model) …")
    path = import_gguf(gguf_file, out)
    if as_json:
        emit_json({"out_dir": str(path)})
    else:
        stdout.print(f"✓ {path}")


@command.command("collect")
@click.option("--prompts", required=True, type=data_path, help="JSONL: id, question, kind, group.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--teacher-url", required=True, help="OpenAI-compatible base URL (…/v1).")
@click.option("--teacher-model", required=True, help="The teacher's model name.")
@click.option(
    "--teacher-key-env",
    default="OPENAI_API_KEY",
    show_default=True,
    help="Environment variable holding the API key (never logged or saved).",
)
@click.option("--catalog", type=data_path, help="Retrieve catalog evidence into each prompt.")
@click.option("--max-tokens", type=click.IntRange(1), default=256, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--timeout", type=click.FloatRange(0.1), default=60.0, show_default=True)
@click.option("--price-prompt-per-1k", type=click.FloatRange(0), default=0.0, show_default=True)
@click.option("--price-completion-per-1k", type=click.FloatRange(0), default=0.0, show_default=True)
@click.option("--limit", type=click.IntRange(1), help="Only the first N prompts.")
@json_option
@quiet_option
def collect_cmd(**kw) -> None:
    """Ask the teacher once per prompt; cache answers with provenance (resumable).

    Answers land in OUT/answers.jsonl as they arrive; run the same command again to
    finish an interrupted run, paying only for what is missing.

    \b
    Example:
      kdedge llm collect --teacher-url http://127.0.0.1:8000/v1 --teacher-model demo \\
          --prompts prompts_train.jsonl --catalog catalog.jsonl --out answers/
    """
    from kdedge.llm.collect import collect
    from kdedge.runtimes.teachers import OpenAIClient

    client = OpenAIClient(
        kw["teacher_url"],
        kw["teacher_model"],
        api_key_env=kw["teacher_key_env"] or None,
        timeout=kw["timeout"],
        max_tokens=kw["max_tokens"],
        max_concurrency=kw["workers"],
        structured=False,
        price_prompt_per_1k=kw["price_prompt_per_1k"],
        price_completion_per_1k=kw["price_completion_per_1k"],
    )
    try:
        report = collect(
            kw["prompts"],
            kw["out"],
            client,
            catalog_path=kw["catalog"],
            max_tokens=kw["max_tokens"],
            workers=kw["workers"],
            limit=kw["limit"],
            track=rich_tracker(kw["quiet"]),
        )
    finally:
        client.close()
    if kw["as_json"]:
        emit_json(report.to_dict())
    else:
        s = report.summary
        stdout.print(
            f"{'✓' if report.complete else '!'} {report.rows} answers in {kw['out']} "
            f"(new {report.answered}, cached {report.cache_hits}, failed "
            f"{sum(report.failed.values())}) in {report.elapsed_s:.1f} s"
        )
        stdout.print(
            f"  avg prompt {s['avg_prompt_tokens']} tokens, answer {s['avg_response_tokens']}; "
            f"refusals {percent(s['teacher_refusal_rate'])}, hedged "
            f"{percent(s['low_confidence_fraction'])}; cost ${s['estimated_cost_usd']:.4f}"
        )
    if not report.complete:
        raise SystemExit(1)


@command.command("gate")
@click.argument("answers", type=data_path)
@click.option("--catalog", required=True, type=data_path)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--min-support", type=click.FloatRange(0, 1), default=0.78, show_default=True)
@click.option("--max-contradiction", type=click.FloatRange(0, 1), default=0.10, show_default=True)
@json_option
@quiet_option
def gate_cmd(answers, catalog, out, min_support, max_contradiction, as_json, quiet) -> None:
    """Keep only teacher answers the catalog supports; keep the rest, with reasons, for review.

    A row passes when evidence exists, support >= --min-support, contradiction <=
    --max-contradiction, and it is not a confident answer with low support.

    \b
    Example:
      kdedge llm gate answers/ --catalog catalog.jsonl --out gated/
    """
    from kdedge.llm.gate import GateRule
    from kdedge.llm.gate_batch import gate_dir

    rule = GateRule(min_support=min_support, max_contradiction=max_contradiction)
    source = answers / "answers.jsonl" if answers.is_dir() else answers
    report = gate_dir(source, catalog, out, rule, track=rich_tracker(quiet))
    data = report.to_dict()
    if as_json:
        emit_json(data)
        return
    stdout.print(
        f"✓ accepted {data['accepted']} of {data['teacher_rows']} teacher answers "
        f"({percent(data['acceptance_rate'])}), plus {data['human_rows']} human rows "
        f"→ {out}/accepted.jsonl; rejected rows with reasons → {out}/rejected.jsonl"
    )
    for reason, n in sorted(data.get("rejected_by_reason", {}).items(), key=lambda x: -x[1]):
        stdout.print(f"  {n:5d}  {reason}")


@command.command("build")
@click.argument("sources", nargs=-1, required=True, type=data_path)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--total",
    type=click.IntRange(1),
    help="Rows to draw  [default: as many as given; short groups are repeated, and said so]",
)
@click.option("--seed", type=int, default=0, show_default=True)
@json_option
def build_cmd(sources, out, total, seed, as_json) -> None:
    """Mix gated rows by group (recent 50%, gold 25%, rare 15%, policy 10%) and weight them.

    Prints the effective-row arithmetic: how much each group and weight class counts.

    \b
    Example:
      kdedge llm build gated/ --out train/
    """
    from kdedge.llm.mix import build_dir

    report = build_dir(list(sources), out, total=total, seed=seed)
    data = report.to_dict()
    if as_json:
        emit_json(data)
        return
    stdout.print(f"✓ {out}/train.jsonl")
    for line in data.get("arithmetic", []):
        stdout.print(f"  {line}")


@command.command("distill")
@click.option("--student", required=True, type=data_path, help="Local HF causal LM folder.")
@click.option("--data", required=True, type=data_path, help="Gated or built training rows.")
@click.option("--eval-data", required=True, type=data_path, help="Validation answers.")
@click.option("--catalog", required=True, type=data_path)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--epochs", type=click.IntRange(1), default=3, show_default=True)
@click.option("--min-epochs", type=click.IntRange(1), default=1, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=2e-4, show_default=True)
@click.option("--lora-r", type=click.IntRange(1), default=16, show_default=True)
@click.option(
    "--lora-dropout", type=click.FloatRange(0, 1, max_open=True), default=0.05, show_default=True
)
@click.option("--max-length", type=click.IntRange(16), default=512, show_default=True)
@click.option("--eval-limit", type=click.IntRange(1), help="Score only N validation prompts.")
@click.option("--eval-max-new-tokens", type=click.IntRange(1), default=96, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@resume_option
@overwrite_option
@compute_options
def distill_cmd(**kw) -> None:
    """LoRA SFT on gated teacher answers; keep the epoch the gates choose; merge the adapter.

    After each epoch the student answers the validation prompts and is scored for catalog
    hallucinations, refusal precision and agreement with the teacher; the seeds' stop rules
    end training when those get worse. Exit status 1 when no epoch passes the gates.

    \b
    Example:
      kdedge llm distill --student smollm2/ --data gated/ --eval-data val_answers/ \\
          --catalog catalog.jsonl --out student/ --device auto
    """
    from kdedge.distill.events import EventLog
    from kdedge.llm.sft import SftConfig, distill

    config = SftConfig(
        epochs=kw["epochs"],
        min_epochs=min(kw["min_epochs"], kw["epochs"]),
        batch_size=kw["batch_size"],
        lr=kw["lr"],
        lora_r=kw["lora_r"],
        lora_alpha=2 * kw["lora_r"],
        lora_dropout=kw["lora_dropout"],
        max_length=kw["max_length"],
        eval_limit=kw["eval_limit"],
        eval_max_new_tokens=kw["eval_max_new_tokens"],
        seed=kw["seed"],
        device=kw["device"],
        precision=kw["precision"],
    )
    out: Path = kw["out"]
    log = EventLog(out.parent / f"{out.name}.events.jsonl", f"llm_sft_{out.name}")
    report = distill(
        kw["student"],
        kw["data"],
        out,
        eval_data=kw["eval_data"],
        catalog=kw["catalog"],
        config=config,
        overwrite=kw["overwrite"],
        resume=kw["resume"],
        track=rich_tracker(kw["quiet"]),
        log=log,
    )
    if kw["as_json"]:
        emit_json(report.to_dict())
    else:
        _print_history(report)
    if not report.promotable:
        raise SystemExit(1)


def _print_history(report) -> None:
    from rich.table import Table

    table = Table(title=f"LoRA SFT on {report.placement}: {report.train_rows} rows")
    for name in ("epoch", "loss", "hallucination", "refusal prec.", "teacher agr.", "F1", "tok/s"):
        table.add_column(name, justify="right")
    rows = [{"epoch": 0, **(report.baseline or {})}, *report.history]
    for h in rows:
        mark = " ✓" if h.get("epoch") == report.best_epoch else ""
        table.add_row(
            f"{h['epoch']}{mark}" if h["epoch"] else "base",
            f"{h['train_loss']:.3f}" if "train_loss" in h else "—",
            percent(h.get("hallucination_rate")),
            percent(h.get("refusal_precision")),
            percent(h.get("teacher_agreement")),
            f"{h['content_f1']:.3f}" if h.get("content_f1") is not None else "—",
            f"{h['train_tokens_per_s']:.0f}" if "train_tokens_per_s" in h else "—",
        )
    stdout.print(table)
    if report.stopped_early:
        stdout.print(f"stopped early: {report.stopped_early}")
    best = next(h for h in report.history if h["epoch"] == report.best_epoch)
    verdict = (
        "passes the gates" if report.promotable else "fails: " + "; ".join(best["gate_failures"])
    )
    stdout.print(f"kept epoch {report.best_epoch} ({verdict}) → {report.out_dir}")


@command.command("eval")
@click.argument("target", type=data_path)
@click.option("--data", required=True, type=data_path, help="Prompts or teacher answers.")
@click.option("--catalog", required=True, type=data_path)
@click.option("--artifact", help="Bundle artifact to run  [default: best for this host]")
@click.option("--threads", type=click.IntRange(1), help="llama.cpp threads  [default: all]")
@click.option("--limit", type=click.IntRange(1), help="Only the first N prompts.")
@click.option("--max-new-tokens", type=click.IntRange(1), default=128, show_default=True)
@click.option(
    "--price-per-hour",
    type=click.FloatRange(0),
    default=0.0384,
    show_default=True,
    help="USD per hour of the machine serving the student (default: a 2-vCPU x86 "
    "instance), for the cost per 1K responses.",
)
@click.option(
    "--teacher-cost-per-1k",
    type=click.FloatRange(0),
    help="Teacher USD per 1K responses  [default: from the answers' recorded cost]",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the report.")
@json_option
@quiet_option
def eval_cmd(**kw) -> None:
    """Score a GGUF bundle (or a HF model folder) on prompts: hallucinations, refusals,
    agreement with the teacher, tokens/s, cost per 1K responses, and the seeds' gates.

    Exit status 1 when a gate fails.

    \b
    Example:
      kdedge llm eval llm-bundle/ --data test_answers/ --catalog catalog.jsonl
    """
    from kdedge.llm.evaluate import evaluate_target

    report = evaluate_target(
        kw["target"],
        kw["data"],
        kw["catalog"],
        artifact=kw["artifact"],
        threads=kw["threads"],
        limit=kw["limit"],
        max_new_tokens=kw["max_new_tokens"],
        price_per_hour=kw["price_per_hour"],
        teacher_cost_per_1k=kw["teacher_cost_per_1k"],
        track=rich_tracker(kw["quiet"]),
    )
    if kw["out"]:
        from kdedge.atomic import atomic_write_text

        atomic_write_text(kw["out"], json.dumps(report, indent=2, default=str) + "\n")
    if kw["as_json"]:
        emit_json(report)
    else:
        _print_eval(report)
    if report["gate_failures"]:
        raise SystemExit(1)


def _print_eval(report: dict) -> None:
    from rich.table import Table

    m = report["metrics"]
    table = Table(title=f"{report['target']} on {m['answers']} prompts")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = (
        ("catalog hallucination rate", percent(m.get("hallucination_rate"))),
        (
            "refusal precision / recall",
            f"{percent(m.get('refusal_precision'))} / {percent(m.get('refusal_recall'))}",
        ),
        (
            "escalation precision / recall",
            f"{percent(m.get('escalation_precision'))} / {percent(m.get('escalation_recall'))}",
        ),
        ("teacher agreement (action)", percent(m.get("teacher_agreement"))),
        ("content F1 vs teacher", "—" if m.get("content_f1") is None else f"{m['content_f1']:.3f}"),
        ("answer tokens/s (wall, prompt included)", str(m.get("tokens_per_s") or "—")),
        ("cost per 1K responses", _usd(m.get("cost_per_1k"))),
        ("teacher cost per 1K", _usd(m.get("teacher_cost_per_1k"))),
        ("cost reduction", percent(m.get("cost_reduction"))),
    )
    for name, value in rows:
        table.add_row(name, value)
    stdout.print(table)
    failures = report["gate_failures"]
    stdout.print("gates: pass" if not failures else "gates: FAIL — " + "; ".join(failures))


def _usd(value: float | None) -> str:
    return "—" if value is None else f"${value:.4f}"
