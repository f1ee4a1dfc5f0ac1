"""StackFAQ reranking proof: a MiniLM-L6 cross-encoder teacher vs half-depth students.

The goal measured: a 3-layer student (the teacher's layers 0, 2, 4) keeps >= 97% of the
teacher's NDCG@10 on StackFAQ *test* queries and beats the same-size student trained on
relevance labels only. Every model reranks the same BM25 candidate lists (defaults: train
top 10, validation/test top 50; relevant documents BM25 missed are appended so the metrics
measure the reranker alone); BM25's own order is reported as the floor.

Steps (each reused from --work on a rerun with --reuse):
  1. BM25 candidate groups from ../shared/data/stackfaq (``kdedge.rerank.retrieval``);
  2. teacher = all-MiniLM-L6-v2 + a 1-logit head fine-tuned on the train groups;
  3. students, initialised from the teacher's layers 0, 2, 4: ``labels_only`` (alpha = 1),
     ``pointwise`` (alpha * BCE + (1 - alpha) * MSE to the teacher's scores), ``margin_mse``
     and ``listwise`` (KL at temperature T) as asked with --students; teacher scores come
     from one cached pass over the training lists;
  4. every model scores the test lists: NDCG@3/5/10, MRR@10, recall@k; share of the
     teacher's NDCG@10 kept; top-3 agreement with the teacher; wall times.

Validation lists are cut to their BM25 top ``--val-candidates`` (+ positives) so the
per-epoch checkpoint choice stays cheap on a CPU; the test lists are never cut. The defaults
(48 tokens per pair, 4 candidates per query per step, 2 teacher and 2 student epochs) are
sized for two shared CPU cores; raise them on a bigger machine:

    PYTHONPATH=. nice -n 5 python benchmarks/stackfaq_rerank.py
    PYTHONPATH=. python benchmarks/stackfaq_rerank.py --max-length 128 --teacher-epochs 3 \
        --student-epochs 4 --candidates-per-query 8 --students labels_only,pointwise,listwise

Writes ``docs/results/rerank_stackfaq_cpu.json`` (atomically) and a Markdown table beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# A "_base" student starts from the base encoder's own layers instead of the fine-tuned
# teacher's: labels_only_base never sees the teacher, listwise_base learns from its scores.
STUDENT_KINDS = (
    "labels_only",
    "labels_only_base",
    "pointwise",
    "margin_mse",
    "listwise",
    "listwise_base",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "stackfaq")
    p.add_argument("--work", type=Path, default=Path("/tmp/kdedge_stackfaq_rerank"))
    p.add_argument("--base", default="minilm", help="base encoder dir, or 'minilm'")
    p.add_argument("--out", type=Path, default=ROOT / "docs/results/rerank_stackfaq_cpu.json")
    p.add_argument("--max-length", type=int, default=48)
    p.add_argument("--train-k", type=int, default=10)
    p.add_argument("--eval-k", type=int, default=50)
    p.add_argument("--val-candidates", type=int, default=10)
    p.add_argument("--train-queries", type=int, help="use only the first N training queries")
    p.add_argument("--test-queries", type=int, help="use only the first N test queries")
    p.add_argument("--teacher-epochs", type=int, default=2)
    p.add_argument("--teacher-lr", type=float, default=1e-4)
    p.add_argument("--student-epochs", type=int, default=2)
    p.add_argument("--student-lr", type=float, default=1e-4)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--queries-per-batch", type=int, default=8)
    p.add_argument("--candidates-per-query", type=int, default=4)
    p.add_argument(
        "--student-candidates-per-query",
        type=int,
        help="candidates per query per step for the students (default: --candidates-per-query)",
    )
    p.add_argument("--alpha", type=float, default=0.5, help="label weight of distilled students")
    p.add_argument("--temperature", type=float, default=1.0, help="listwise KL temperature")
    p.add_argument(
        "--students",
        default="labels_only,pointwise,margin_mse",
        help=f"comma-separated, from {', '.join(STUDENT_KINDS)}",
    )
    p.add_argument("--stage1-epochs", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--reuse", action="store_true", help="reuse finished models in --work")
    p.add_argument(
        "--render", action="store_true", help="only rewrite the Markdown table from --out"
    )
    args = p.parse_args(argv)
    if args.student_candidates_per_query is None:
        args.student_candidates_per_query = args.candidates_per_query
    return args


def host() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# the settings that shape each model: a reused model must have been trained with them
COMMON_SETTINGS = ("max_length", "train_k", "val_candidates", "train_queries", "queries_per_batch")
TEACHER_SETTINGS = (
    *COMMON_SETTINGS,
    "base",
    "teacher_epochs",
    "teacher_lr",
    "candidates_per_query",
)
STUDENT_SETTINGS = (
    *COMMON_SETTINGS,
    "student_epochs",
    "student_lr",
    "layers",
    "alpha",
    "temperature",
    "stage1_epochs",
    "student_candidates_per_query",
    "seed",
)
STAMP = "bench_settings.json"


def settings_of(args: argparse.Namespace, keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: getattr(args, k) for k in keys}


def student_dir(args: argparse.Namespace, name: str) -> Path:
    """One directory per student and settings: runs with other settings never reuse (or
    overwrite) it. The original seed-only names are kept for the default settings."""
    import hashlib

    tag = f"_seed{args.seed}" if args.seed else ""
    settings = settings_of(args, STUDENT_SETTINGS)
    defaults = settings_of(parse_args(["--max-length", str(args.max_length)]), STUDENT_SETTINGS)
    defaults["seed"] = args.seed
    if settings != defaults:
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
        tag += f"_{digest[:8]}"
    return args.work / f"student_{name}{tag}"


def reusable(args: argparse.Namespace, model_dir: Path, keys: tuple[str, ...]) -> bool:
    """--reuse and a finished model trained with these settings (a model without a stamp,
    from before stamps, is reused as it is)."""
    if not (args.reuse and (model_dir / "kdedge.json").is_file()):
        return False
    stamp = model_dir / STAMP
    if not stamp.is_file():
        print(f"{model_dir.name}: no {STAMP}; reused as it is", flush=True)
        return True
    wanted = json.loads(json.dumps(settings_of(args, keys)))
    if json.loads(stamp.read_text()) != wanted:
        raise SystemExit(
            f"{model_dir} was trained with other settings (see {stamp}); "
            "use another --work or drop --reuse"
        )
    return True


def stamp(args: argparse.Namespace, model_dir: Path, keys: tuple[str, ...]) -> None:
    from kdedge.atomic import atomic_write_text

    atomic_write_text(model_dir / STAMP, json.dumps(settings_of(args, keys), indent=2) + "\n")


def cut(group: Any, k: int) -> Any:
    """BM25 top ``k`` candidates plus the relevant ones found further down the list."""
    kept = [c for i, c in enumerate(group.candidates) if i < k or c.relevance > 0]
    return replace(group, candidates=tuple(kept))


def groups_for(args: argparse.Namespace) -> dict[str, list[Any]]:
    from kdedge.rerank.data import read_groups, write_groups
    from kdedge.rerank.retrieval import stackfaq_groups

    out: dict[str, list[Any]] = {}
    for split, k in (("train", args.train_k), ("validation", args.eval_k), ("test", args.eval_k)):
        path = args.work / f"{split}_groups_k{k}.jsonl"
        if not path.is_file():
            groups, report = stackfaq_groups(
                args.data / f"{split}.jsonl", args.data / "corpus.jsonl", k=k
            )
            write_groups(path, groups)
            print(f"{split}: {report.summary()}", flush=True)
        out[split] = read_groups(path)
    if args.train_queries:
        out["train"] = out["train"][: args.train_queries]
    if args.test_queries:
        out["test"] = out["test"][: args.test_queries]
    out["validation"] = [cut(g, args.val_candidates) for g in out["validation"]]
    return out


def test_metrics(groups: list[Any], scores: list[np.ndarray]) -> dict[str, float]:
    from kdedge.rerank.metrics import ranking_report

    return {k: round(float(v), 4) for k, v in ranking_report(groups, scores).items()}


def agreement(a: list[np.ndarray], b: list[np.ndarray], k: int = 3) -> float:
    from kdedge.rerank.metrics import top_k_agreement

    return round(float(np.mean([top_k_agreement(x, y, k) for x, y in zip(a, b, strict=True)])), 4)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train what is missing, score the test lists, write the table after every model.

    Results are rewritten after each model, so a run cut short still leaves a valid (partial)
    table; ``"complete"`` says whether every asked-for student is in it. Test scores go
    through the content-addressed cache too, so a rerun with --reuse costs nothing for the
    models it already scored.
    """
    import torch

    from kdedge.pipeline import resolve_model
    from kdedge.rerank.config import RerankTrainConfig
    from kdedge.rerank.distill import distill_reranker
    from kdedge.rerank.losses import RerankLossConfig
    from kdedge.rerank.teacher import teach_reranker

    args = parse_args(argv)
    if args.render:
        from kdedge.atomic import atomic_write_text

        result = json.loads(args.out.read_text())
        atomic_write_text(args.out.with_suffix(".md"), markdown(result))
        return result
    students = [s.strip() for s in args.students.split(",") if s.strip()]
    unknown = sorted(set(students) - set(STUDENT_KINDS))
    if unknown:
        raise SystemExit(f"unknown students {unknown}; choose from {STUDENT_KINDS}")
    args.work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    t_start = time.perf_counter()
    data = groups_for(args)
    cache = args.work / "cache"
    walls_file = args.work / "wall_seconds.json"
    walls: dict[str, float] = (
        json.loads(walls_file.read_text()) if args.reuse and walls_file.is_file() else {}
    )
    sizes = {
        s: {"queries": len(g), "pairs": sum(len(x.candidates) for x in g)} for s, g in data.items()
    }
    print(f"data: {sizes}", flush=True)
    scored: dict[str, dict[str, Any]] = {}

    def record(name: str, model_dir: Path) -> None:
        from kdedge.rerank.scoring import score_groups_cached

        t0 = time.perf_counter()
        scores, report = score_groups_cached(model_dir, data["test"], cache, device=args.device)
        scored[name] = {"dir": model_dir, "scores": scores, "scoring": report.to_dict(),
                        "seconds": time.perf_counter() - t0}  # fmt: skip
        from kdedge.atomic import atomic_write_text

        atomic_write_text(walls_file, json.dumps(walls, indent=2) + "\n")
        result = build_result(args, students, sizes, walls, scored, data["test"], t_start)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(result, indent=2, default=str) + "\n")
        atomic_write_text(args.out.with_suffix(".md"), markdown(result))
        t = result["models"][name]["test"]
        print(f"{name}: test NDCG@10 {t['ndcg@10']:.4f}, MRR@10 {t['mrr@10']:.4f}", flush=True)

    teacher_dir = args.work / "teacher"
    train_config = RerankTrainConfig(
        epochs=args.teacher_epochs,
        lr=args.teacher_lr,
        queries_per_batch=args.queries_per_batch,
        candidates_per_query=args.candidates_per_query,
        seed=args.seed,
        min_epochs=min(2, args.teacher_epochs),
    )
    if not reusable(args, teacher_dir, TEACHER_SETTINGS):
        t0 = time.perf_counter()
        teach_reranker(
            resolve_model(args.base),
            data["train"],
            data["validation"],
            teacher_dir,
            max_length=args.max_length,
            config=train_config,
            device=args.device,
            overwrite=True,
        )
        walls["teacher_train_s"] = round(time.perf_counter() - t0, 1)
        stamp(args, teacher_dir, TEACHER_SETTINGS)
        print(f"teacher trained in {walls['teacher_train_s']} s", flush=True)
    record("teacher", teacher_dir)

    student_config = replace(
        train_config,
        epochs=args.student_epochs,
        lr=args.student_lr,
        min_epochs=min(2, args.student_epochs),
        candidates_per_query=args.student_candidates_per_query,
    )
    losses = {
        "labels_only": RerankLossConfig(alpha=1.0),
        "labels_only_base": RerankLossConfig(alpha=1.0),
        "pointwise": RerankLossConfig(kind="pointwise", alpha=args.alpha),
        "margin_mse": RerankLossConfig(kind="margin_mse", alpha=args.alpha),
        "listwise": RerankLossConfig(
            kind="listwise", alpha=args.alpha, temperature=args.temperature
        ),
    }
    losses["listwise_base"] = losses["listwise"]
    for name in students:
        out = student_dir(args, name)
        if not reusable(args, out, STUDENT_SETTINGS):
            t0 = time.perf_counter()
            result = distill_reranker(
                teacher_dir,
                data["train"],
                data["validation"],
                out,
                layers=args.layers,
                student_dir=resolve_model(args.base) if name.endswith("_base") else None,
                loss=losses[name],
                config=student_config,
                stage1_epochs=args.stage1_epochs if losses[name].needs_teacher else 0,
                cache_dir=cache,
                device=args.device,
                overwrite=True,
            )
            walls[f"{name}_train_s"] = round(time.perf_counter() - t0, 1)
            stamp(args, out, STUDENT_SETTINGS)
            print(
                f"{name}: trained in {walls[f'{name}_train_s']} s "
                f"(best epoch {result.train.best_epoch})",
                flush=True,
            )
        record(name, out)
    final = build_result(args, students, sizes, walls, scored, data["test"], t_start)
    print(markdown(final), flush=True)
    return final


def build_result(
    args: argparse.Namespace,
    students: list[str],
    sizes: dict[str, Any],
    walls: dict[str, float],
    scored: dict[str, dict[str, Any]],
    test: list[Any],
    t_start: float,
) -> dict[str, Any]:
    from kdedge.distill.models import parameter_count, size_on_disk
    from kdedge.rerank.models import load_reranker

    bm25 = [-np.arange(len(g.candidates), dtype=np.float32) for g in test]  # file order
    rows: dict[str, Any] = {"bm25": {"test": test_metrics(test, bm25), "layers": 0}}
    teacher_scores = scored["teacher"]["scores"]
    history_keys = ("epoch", "loss_train", "loss_supervised", "loss_distill", "ndcg@10",
                    "mrr@10", "epoch_seconds", "val_seconds", "pairs_per_sec")  # fmt: skip
    for name, m in scored.items():
        meta = json.loads((m["dir"] / "kdedge.json").read_text())
        report = json.loads((m["dir"] / "training_report.json").read_text())
        scoring = m["scoring"]
        rows[name] = {
            "test": test_metrics(test, m["scores"]),
            "layers": json.loads((m["dir"] / "config.json").read_text())["num_hidden_layers"],
            "parameters": parameter_count(load_reranker(m["dir"]).model),
            "size_bytes": size_on_disk(m["dir"]),
            "loss": meta.get("loss"),
            "best_epoch": meta.get("best_epoch"),
            "promotable": meta.get("promotable"),
            "score_threshold": meta.get("score_threshold"),
            "validation_history": [
                {k: h[k] for k in history_keys if k in h} for h in report["history"]
            ],
            "stopped_early": report.get("stopped_early"),
            "test_pairs_per_sec": scoring["pairs_per_sec"] if scoring["cache_misses"] else None,
            "top3_agreement_with_teacher": agreement(m["scores"], teacher_scores),
        }
    teacher_ndcg = rows["teacher"]["test"]["ndcg@10"]
    for row in rows.values():
        row["share_of_teacher_ndcg@10"] = (
            round(row["test"]["ndcg@10"] / teacher_ndcg, 4) if teacher_ndcg else None
        )
    baselines = [b for b in ("labels_only", "labels_only_base") if b in rows]
    goal = {}
    for name in students:
        if name.startswith("labels_only") or name not in rows:
            continue
        ndcg = rows[name]["test"]["ndcg@10"]
        goal[name] = {
            "keeps_97pct_of_teacher": bool(teacher_ndcg and ndcg >= 0.97 * teacher_ndcg),
            **{f"beats_{b}": bool(ndcg > rows[b]["test"]["ndcg@10"]) for b in baselines},
            **{f"gain_over_{b}": round(ndcg - rows[b]["test"]["ndcg@10"], 4) for b in baselines},
        }
    return {
        "benchmark": "stackfaq_rerank",
        "complete": all(s in rows for s in students),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "data": sizes,
        "host": host(),
        "wall_seconds": {**walls, "this_run_s": round(time.perf_counter() - t_start, 1)},
        "models": rows,
        "goal": goal,
    }


def markdown(result: dict[str, Any]) -> str:
    s, h = result["settings"], result["host"]
    lines = [
        "# StackFAQ reranking: MiniLM-L6 cross-encoder teacher vs 3-layer students (CPU)",
        "",
        f"Test: {result['data']['test']['queries']} queries, "
        f"{result['data']['test']['pairs']} (query, passage) pairs (BM25 top {s['eval_k']} + "
        f"positives). Max length {s['max_length']} tokens. Host: {h['cpu']}, "
        f"{h['torch_threads']} torch threads, torch {h['torch']}.",
        "",
        f"Training: teacher {s['teacher_epochs']} epochs (lr {s['teacher_lr']}), students "
        f"{s['student_epochs']} epochs (lr {s['student_lr']}), {s['queries_per_batch']} queries "
        f"x {s['candidates_per_query']} candidates per step (students "
        f"{s.get('student_candidates_per_query') or s['candidates_per_query']}), "
        f"train lists BM25 top "
        f"{s['train_k']} + positives, validation lists top {s['val_candidates']} + positives, "
        f"distilled students alpha {s['alpha']} (label weight). Seed {s['seed']}.",
        "",
        "| model | layers | NDCG@3 | NDCG@5 | NDCG@10 | MRR@10 | share of teacher NDCG@10 "
        "| top-3 agreement | best epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in result["models"].items():
        t = row["test"]
        share = row.get("share_of_teacher_ndcg@10")
        agree = row.get("top3_agreement_with_teacher")
        lines.append(
            f"| {name} | {row['layers']} | {t['ndcg@3']:.4f} | {t['ndcg@5']:.4f} | "
            f"{t['ndcg@10']:.4f} | {t['mrr@10']:.4f} | "
            f"{'—' if share is None else f'{100 * share:.1f}%'} | "
            f"{'—' if agree is None else f'{agree:.3f}'} | {row.get('best_epoch') or '—'} |"
        )
    lines += [
        "",
        "Wall times (s): " + ", ".join(f"{k} {v}" for k, v in result["wall_seconds"].items()),
    ]
    for name, g in result["goal"].items():
        parts = [f"keeps >= 97% of teacher NDCG@10: {g['keeps_97pct_of_teacher']}"]
        for key, value in g.items():
            if key.startswith("gain_over_"):
                base = key.removeprefix("gain_over_")
                parts.append(f"beats {base}: {g[f'beats_{base}']} ({value:+.4f} NDCG@10)")
        lines.append(f"- {name}: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
