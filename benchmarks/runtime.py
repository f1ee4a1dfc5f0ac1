"""Runtime benchmarks: import time, cold start, and overhead over a bare onnxruntime call.

    python benchmarks/runtime.py --bundle runs/clinc150_bundle --out docs/results/runtime_cpu.json

- **import**: wall time of a fresh ``python -c "import kdedge.runtimes"`` (and of
  ``from kdedge.runtimes import load``) minus a bare ``python -c pass``, median of N runs.
- **cold start**: from launching a fresh interpreter to the first prediction's result,
  with the bundle's sha256 verified, measured by the parent (exec time) and the child
  (time.time() after the first predict). The child also reports its own import / load /
  first-predict split.
- **overhead**: in one process, batch 1, interleaved rounds of (a) the runtime's own
  onnxruntime session ``session.run`` on pre-tokenized ids, (b) tokenizer + ``session.run``,
  (c) ``rt.predict(text, route=False)`` and (d) ``rt.predict(text)`` with the router, and
  with ``--optimum-source`` (e) optimum's ORTModel on the same file; the overhead is the
  ratio of medians, so machine noise hits every arm alike.

The machine is recorded in the output; compare figures only within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

TEXTS = [
    "I want to return volume 1, but where is my order right now?",
    "what's the weather going to be like in paris tomorrow",
    "someone stole my card, please freeze my account",
    "how many calories are in a banana",
    "set a timer for ten minutes",
    "can you tell me my credit score",
    "book a table for two at an italian place tonight",
    "uh",
]


def host() -> dict:
    from kdedge.bench.host import describe

    return describe()


def _wall(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return (time.perf_counter() - start) * 1000.0


def import_times(runs: int) -> dict:
    arms = {
        "bare_python": "pass",
        "import_kdedge_runtimes": "import kdedge.runtimes",
        "from_kdedge_runtimes_import_load": "from kdedge.runtimes import load",
    }
    times = {name: [] for name in arms}
    for _ in range(runs):  # interleaved, so drift hits every arm alike
        for name, code in arms.items():
            times[name].append(_wall(code))
    med = {name: statistics.median(t) for name, t in times.items()}
    return {
        "runs": runs,
        "median_ms": {k: round(v, 1) for k, v in med.items()},
        "net_ms": {
            k: round(v - med["bare_python"], 1) for k, v in med.items() if k != "bare_python"
        },
    }


COLD = """
import json, time
t0 = time.time()
from kdedge.runtimes import load
t1 = time.time()
rt = load({bundle!r}, artifact={artifact!r})
t2 = time.time()
p = rt.predict({text!r})
t3 = time.time()
print(json.dumps({{"t0": t0, "t1": t1, "t2": t2, "t3": t3, "label": p.label}}))
"""


def cold_starts(bundle: str, artifact: str, runs: int) -> dict:
    code = COLD.format(bundle=bundle, artifact=artifact, text=TEXTS[0])
    total, bare, parts = [], [], {"import": [], "load": [], "first_predict": []}
    for _ in range(runs):
        bare.append(_wall("pass"))
        launched = time.time()
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        t = json.loads(out.stdout)
        total.append((t["t3"] - launched) * 1000.0)
        parts["import"].append((t["t1"] - t["t0"]) * 1000.0)
        parts["load"].append((t["t2"] - t["t1"]) * 1000.0)
        parts["first_predict"].append((t["t3"] - t["t2"]) * 1000.0)
    med = statistics.median(total)
    return {
        "artifact": artifact,
        "runs": runs,
        "exec_to_first_prediction_ms": {
            "median": round(med, 1),
            "p90": round(sorted(total)[int(0.9 * (runs - 1))], 1),
            "min": round(min(total), 1),
        },
        "bare_python_ms": round(statistics.median(bare), 1),
        "in_process_median_ms": {k: round(statistics.median(v), 1) for k, v in parts.items()},
        "goal_ms": 300,
        "meets_goal": med < 300,
    }


def _optimum_arm(bundle: str, rt, source: str, threads: int | None):
    """optimum's ORTModelForSequenceClassification on the same .onnx file, as its users
    call it (transformers tokenizer, model(**inputs), softmax): the `kdedge bench` worker's
    optimum reference, in this process so that it interleaves with the other arms."""
    import atexit
    import shutil

    from kdedge.bench.classifier import optimum_folder, stage_onnx
    from kdedge.bench.worker import PREDICTORS

    folder = optimum_folder(Path(source))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    predict = PREDICTORS["optimum"](
        {
            "model_dir": str(folder),
            "file_name": stage_onnx(folder, Path(bundle), rt.artifact),
            "threads": threads,
            "max_length": rt.tokenizer.max_length,
        }
    )
    return lambda i: predict([TEXTS[i]])


def overhead(
    bundle: str, artifact: str, threads: int | None, rounds: int, optimum_source: str | None
) -> dict:
    from kdedge.runtimes import load

    rt = load(bundle, artifact=artifact, threads=threads)
    session = rt.backend.session
    names = [i.name for i in session.get_inputs()]
    pre = []
    for text in TEXTS:
        ids, mask = rt.tokenizer([text])
        feed = {"input_ids": ids, "attention_mask": mask}
        pre.append({n: feed[n] for n in names})

    def bare(i):
        session.run(None, pre[i])

    def tokenized(i):
        ids, mask = rt.tokenizer([TEXTS[i]])
        feed = {"input_ids": ids, "attention_mask": mask}
        session.run(None, {n: feed[n] for n in names})

    arms = {
        "session_run": bare,
        "tokenize_and_session_run": tokenized,
        "runtime_predict_unrouted": lambda i: rt.predict(TEXTS[i], route=False),
        "runtime_predict_routed": lambda i: rt.predict(TEXTS[i]),
    }
    if optimum_source:
        arms["optimum_ortmodel"] = _optimum_arm(bundle, rt, optimum_source, threads)
    for fn in arms.values():  # warm up every arm
        for i in range(len(TEXTS)):
            fn(i)
    samples: dict[str, list[float]] = {name: [] for name in arms}
    for r in range(rounds):
        i = r % len(TEXTS)
        for name, fn in arms.items():
            start = time.perf_counter()
            fn(i)
            samples[name].append((time.perf_counter() - start) * 1e6)
    med = {name: statistics.median(s) for name, s in samples.items()}
    base = med["session_run"]
    extra = {}
    if "optimum_ortmodel" in med:
        extra["runtime_routed_vs_optimum"] = round(
            med["runtime_predict_routed"] / med["optimum_ortmodel"] - 1, 4
        )
    return {
        **extra,
        "artifact": artifact,
        "rounds": rounds,
        "threads": threads,
        "median_us": {k: round(v, 1) for k, v in med.items()},
        "overhead_vs_session_run": {k: round(v / base - 1, 4) for k, v in med.items()},
        "overhead_vs_tokenize_and_run": round(
            med["runtime_predict_routed"] / med["tokenize_and_session_run"] - 1, 4
        ),
        "goal": 0.15,
        "meets_goal": med["runtime_predict_routed"] / base - 1 < 0.15,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--artifact", default="onnx-int8")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--import-runs", type=int, default=15)
    parser.add_argument("--cold-runs", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument(
        "--optimum-source",
        help="Also time optimum's ORTModel on the same file (needs the source model's config)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = {
        "host": host(),
        "bundle": args.bundle,
        "import": import_times(args.import_runs),
        "cold_start": cold_starts(args.bundle, args.artifact, args.cold_runs),
        "overhead": overhead(
            args.bundle, args.artifact, args.threads, args.rounds, args.optimum_source
        ),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
