"""Tiered request logging on real traffic: bytes per event per tier, and at scale.

    python benchmarks/request_log.py --bundle runs/clinc150_bundle \
        --data runs/clinc150_cpu/data/test.jsonl --policy docs/results/clinc150_route_fit.json \
        --out docs/results/request_log_clinc150.json

Runs every message of ``--data`` through the runtime twice, logging in ``tiered`` mode and in
``incident`` mode (everything, texts included), and reports the average payload per tier,
the overall average, and the daily volume each would write at ``--events-per-day``
(the seed's 50M). Sizes are of the JSON lines as written, in bytes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kdedge.data.io import load_examples
from kdedge.runtimes import TieredLog, load


def run(bundle: str, texts: list[str], policy: str | None, mode: str) -> dict:
    lines: list[str] = []
    log = TieredLog(lines.append, mode=mode)
    with load(bundle, artifact="onnx-int8", policy=policy, log=log) as rt:
        for text in texts:
            rt.predict(text)
        return log.stats()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--policy")
    parser.add_argument("--events-per-day", type=float, default=50e6)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    texts = [e.text for e in load_examples(args.data, require_labels=False)]
    report: dict = {"messages": len(texts), "events_per_day": args.events_per_day}
    for mode in ("tiered", "incident"):
        stats = run(args.bundle, texts, args.policy, mode)
        stats["gb_per_day"] = round(stats["avg_bytes"] * args.events_per_day / 1e9, 2)
        report[mode] = stats
    report["tiered_vs_incident"] = round(
        report["tiered"]["avg_bytes"] / report["incident"]["avg_bytes"], 4
    )
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
