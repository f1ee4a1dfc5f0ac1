"""Mean and spread of reranker results over seeds, from ``stackfaq_rerank.py`` JSON files.

One seed cannot tell a 0.001 NDCG@10 gap from noise. Run the benchmark once per seed (the
teacher is trained once and reused; only the students' seeds change), then summarise:

    for s in 0 1 2; do PYTHONPATH=. python benchmarks/stackfaq_rerank.py --max-length 32 \\
        --students labels_only,listwise --seed $s --reuse \\
        --out docs/results/rerank_stackfaq_seeds/seed$s.json; done
    python benchmarks/seed_summary.py docs/results/rerank_stackfaq_seeds/seed*.json \\
        --baseline labels_only

Prints a Markdown table: per model, each metric's mean ± sample standard deviation, and per
distilled student the gain over ``--baseline`` paired by seed (same seed, same batches).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

METRICS = ("ndcg@3", "ndcg@5", "ndcg@10", "mrr@10")


def load(paths: list[Path]) -> list[dict[str, Any]]:
    runs = []
    for path in paths:
        try:
            run = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            sys.exit(f"error: {path}: not a readable benchmark JSON ({exc})")
        if not run.get("complete"):
            sys.exit(f"error: {path}: the run did not finish ('complete' is not true)")
        runs.append(run)
    seeds = [r["settings"]["seed"] for r in runs]
    if len(set(seeds)) != len(seeds):
        sys.exit(f"error: the same seed appears twice: {sorted(seeds)}")
    return runs


def spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {sd:.4f}"


def summary(runs: list[dict[str, Any]], baseline: str, metric: str = "ndcg@10") -> str:
    names = [m for m in runs[0]["models"] if all(m in r["models"] for r in runs)]
    seeds = ", ".join(str(r["settings"]["seed"]) for r in runs)
    lines = [
        f"Seeds {seeds} ({len(runs)} runs); mean ± sample standard deviation.",
        "",
        "| model | " + " | ".join(METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for name in names:
        values = [[r["models"][name]["test"][k] for r in runs] for k in METRICS]
        shared = all(len(set(v)) == 1 for v in values)  # trained once and reused (teacher)
        label = f"{name} (same model in every run)" if shared else name
        lines.append(f"| {label} | " + " | ".join(spread(v) for v in values) + " |")
    if baseline in names:
        lines += ["", f"Gain in {metric} over `{baseline}`, paired by seed:", ""]
        for name in names:
            if name in (baseline, "bm25", "teacher"):
                continue
            gains = [
                r["models"][name]["test"][metric] - r["models"][baseline]["test"][metric]
                for r in runs
            ]
            per_seed = ", ".join(f"{g:+.4f}" for g in gains)
            wins = sum(g > 0 for g in gains)
            lines.append(
                f"- {name}: {spread(gains)} (per seed {per_seed}; ahead in {wins}/{len(gains)})"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("runs", type=Path, nargs="+", help="stackfaq_rerank.py JSON files, one a seed")
    p.add_argument("--baseline", default="labels_only", help="model the gains are measured from")
    p.add_argument("--metric", default="ndcg@10", choices=METRICS)
    args = p.parse_args(argv)
    print(summary(load(args.runs), args.baseline, args.metric))


if __name__ == "__main__":
    main()
