"""Runtime benchmarks: import time, cold start, and overhead over a bare onnxruntime call.

    python benchmarks/runtime.py --bundle runs/clinc150_bundle --out docs/results/runtime_cpu.json

- **import**: wall time of a fresh ``python -c "import kdedge.runtimes"`` (and of
  ``from kdedge.runtimes import load``) minus a bare ``python -c pass``, median of N runs.
- **cold start**: from launching a fresh interpreter to the first prediction's result,
  with the bundle's sha256 verified, measured by the parent (exec time) and the child
  (time.time() after the first predict). The child also reports its own import / load /
  first-predict split. A hand-written minimal server of the same model (onnxruntime and
  ``tokenizers`` alone, no manifest or hash check) is timed in the same rounds.
- **overhead**: in one process, batch 1, interleaved rounds (the arms in a fresh random
  order each round) of (a) the runtime's own onnxruntime session ``session.run`` on
  pre-tokenized ids, (b) tokenizer + ``session.run``, (c) ``rt.predict(text, route=False)``
  and (d) ``rt.predict(text)`` with the router, and with ``--optimum-source`` (e) optimum's
  ORTModel on the same file; the overhead is the ratio of medians, so machine noise hits
  every arm alike. Then each piece of a routed call (tokenize, ``session.run``, softmax,
  router, result) is timed inside the call, where it pays the cache state a call leaves.

With ``--baseline TREE`` (another kdedge source tree, e.g. a git worktree of the commit to
compare with) every measurement is made for both trees, interleaved: import and cold-start
runs alternate between the two trees, and the overhead is measured ``--repeats`` times per
tree in alternating child processes (the median of each tree's runs is reported)::

    git worktree add ../kdedge-base <commit>
    python benchmarks/runtime.py --bundle runs/clinc150_bundle --baseline ../kdedge-base \
        --out docs/results/runtime_cpu.json

Each tree's kdedge is byte-compiled first, as ``pip install`` does, so cold starts do not
pay for compiling kdedge's modules (tens of ms on the CI VM, where
``PYTHONDONTWRITEBYTECODE`` is set); ``--bytecode source`` measures that path instead. The
machine is recorded in the output; compare figures only within one run.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_OVERHEAD = 0.10  # rt.predict (routed) over a bare session.run, batch 1 (issue #16)
GOAL_COLD_MS = 250.0  # fresh process to first prediction (issue #16)
ROOT = Path(__file__).resolve().parents[1]

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


def tree_env(tree: Path) -> dict[str, str]:
    """The environment of a child that imports kdedge from source tree ``tree``."""
    return {**os.environ, "PYTHONPATH": str(tree)}


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)


def _wall(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    _run(code, env)
    return (time.perf_counter() - start) * 1000.0


def import_times(runs: int, trees: dict[str, Path]) -> dict:
    arms = {
        "bare_python": "pass",
        "import_kdedge_runtimes": "import kdedge.runtimes",
        "from_kdedge_runtimes_import_load": "from kdedge.runtimes import load",
        # the floor of any ONNX serving code for this model, kdedge or not: the engine and
        # the tokenizer library (onnxruntime imports numpy itself)
        "engine_floor_imports": "import numpy, onnxruntime, tokenizers",
    }
    times = {(tree, name): [] for tree in trees for name in arms}
    for _ in range(runs):  # interleaved, so drift hits every arm and tree alike
        for tree, path in trees.items():
            for name, code in arms.items():
                times[tree, name].append(_wall(code, tree_env(path)))
    out = {}
    for tree in trees:
        med = {name: statistics.median(times[tree, name]) for name in arms}
        out[tree] = {
            "runs": runs,
            "median_ms": {k: round(v, 1) for k, v in med.items()},
            "net_ms": {
                k: round(v - med["bare_python"], 1) for k, v in med.items() if k != "bare_python"
            },
        }
    return out


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


# The least any Python server of this model does before its first answer, written by hand
# without kdedge: import the engine and the tokenizer library, read tokenizer.json, build
# the session, encode, run. No manifest, no sha256 check, no calibration, no router.
MINIMAL_COLD = """
import json, time
t0 = time.time()
import numpy as np, onnxruntime as ort
from tokenizers import Tokenizer
tok = Tokenizer.from_file({tokenizer!r})
session = ort.InferenceSession({model!r}, providers=["CPUExecutionProvider"])
names = [i.name for i in session.get_inputs()]
ids = np.array([tok.encode({text!r}).ids], dtype=np.int64)
feed = {{"input_ids": ids, "attention_mask": np.ones_like(ids)}}
if "token_type_ids" in names:
    feed["token_type_ids"] = np.zeros_like(ids)
label = int(session.run(None, {{n: feed[n] for n in names}})[0].argmax())
print(json.dumps({{"t0": t0, "t3": time.time(), "label": label}}))
"""


def minimal_cold_code(bundle: str, artifact: str) -> str:
    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["name"] == artifact)
    return MINIMAL_COLD.format(
        tokenizer=str(Path(bundle) / manifest["tokenizer"]["path"]),
        model=str(Path(bundle) / entry["files"][0]["path"]),
        text=TEXTS[0],
    )


def cold_starts(bundle: str, artifact: str, runs: int, trees: dict[str, Path]) -> dict:
    code = COLD.format(bundle=bundle, artifact=artifact, text=TEXTS[0])
    minimal_code = minimal_cold_code(bundle, artifact)
    total = {tree: [] for tree in trees}
    bare, minimal = [], []
    parts = {tree: {"import": [], "load": [], "first_predict": []} for tree in trees}
    for _ in range(runs):  # interleaved across trees
        bare.append(_wall("pass", tree_env(ROOT)))
        launched = time.time()
        t = json.loads(_run(minimal_code, tree_env(ROOT)).stdout)
        minimal.append((t["t3"] - launched) * 1000.0)
        for tree, path in trees.items():
            launched = time.time()
            t = json.loads(_run(code, tree_env(path)).stdout)
            total[tree].append((t["t3"] - launched) * 1000.0)
            parts[tree]["import"].append((t["t1"] - t["t0"]) * 1000.0)
            parts[tree]["load"].append((t["t2"] - t["t1"]) * 1000.0)
            parts[tree]["first_predict"].append((t["t3"] - t["t2"]) * 1000.0)
    out = {}
    for tree in trees:
        med = statistics.median(total[tree])
        out[tree] = {
            "artifact": artifact,
            "runs": runs,
            "exec_to_first_prediction_ms": {
                "median": round(med, 1),
                "p90": round(sorted(total[tree])[int(0.9 * (runs - 1))], 1),
                "min": round(min(total[tree]), 1),
            },
            "bare_python_ms": round(statistics.median(bare), 1),
            # MINIMAL_COLD: the same model answered by hand, no kdedge (and no hash check)
            "minimal_by_hand_ms": round(statistics.median(minimal), 1),
            "in_process_median_ms": {
                k: round(statistics.median(v), 1) for k, v in parts[tree].items()
            },
            "goal_ms": GOAL_COLD_MS,
            "meets_goal": med <= GOAL_COLD_MS,
        }
    return out


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


def in_call_parts(rt, rounds: int) -> dict:
    """Median µs of each piece of one routed ``predict``, timed inside the call in the
    order the runtime runs them, so each pays the cache state a real call leaves it
    (right after ``session.run``, not warm from a loop of its own)."""
    from kdedge.runtimes.runtime import softmax

    clock = time.perf_counter
    parts: dict[str, list[float]] = {
        k: [] for k in ("tokenize", "session_run", "softmax", "router", "result")
    }
    for r in range(rounds):
        text = TEXTS[r % len(TEXTS)]
        t0 = clock()
        ids, mask = rt.tokenizer([text])
        t1 = clock()
        logits = rt.backend.logits(ids, mask)
        t2 = clock()
        probs = softmax(logits, rt.temperature)
        t3 = clock()
        decision = rt.router.route([text], probs)[0]
        t4 = clock()
        rt._finish(text, probs[0], decision, None, None, t0)  # the Prediction
        t5 = clock()
        for name, a, b in zip(parts, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5), strict=True):
            parts[name].append((b - a) * 1e6)
    return {name: round(statistics.median(v), 1) for name, v in parts.items()}


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
    arm_names = list(arms)
    order = random.Random(0)
    for r in range(rounds):
        i = r % len(TEXTS)
        # a fresh order each round: an arm that always ran right after another on the same
        # text would find the model's weights and the text's activations already in cache
        order.shuffle(arm_names)
        for name in arm_names:
            start = time.perf_counter()
            arms[name](i)
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
        "in_call_median_us": in_call_parts(rt, rounds),
        "goal": GOAL_OVERHEAD,
        "meets_goal": med["runtime_predict_routed"] / base - 1 <= GOAL_OVERHEAD,
    }


def overhead_in_children(
    bundle: str, artifact: str, threads: int | None, rounds: int, repeats: int, trees: dict
) -> dict:
    """:func:`overhead` in one child process per tree and repeat, the trees alternating;
    each tree's figures are the medians over its repeats."""
    args = [sys.executable, __file__, "--bundle", bundle, "--artifact", artifact]
    args += ["--rounds", str(rounds), "--part", "overhead"]
    if threads:
        args += ["--threads", str(threads)]
    runs = {tree: [] for tree in trees}
    for _ in range(repeats):
        for tree, path in trees.items():
            out = subprocess.run(args, check=True, capture_output=True, env=tree_env(path))
            runs[tree].append(json.loads(out.stdout))
    result = {}
    for tree, reports in runs.items():
        med = {
            k: round(statistics.median(r["median_us"][k] for r in reports), 1)
            for k in reports[0]["median_us"]
        }
        ratios = [r["overhead_vs_session_run"]["runtime_predict_routed"] for r in reports]
        result[tree] = {
            "artifact": artifact,
            "rounds": rounds,
            "repeats": repeats,
            "threads": threads,
            "median_us": med,
            "overhead_vs_session_run": {
                k: round(v / med["session_run"] - 1, 4) for k, v in med.items()
            },
            "routed_overhead_per_repeat": ratios,
            "goal": GOAL_OVERHEAD,
            "meets_goal": med["runtime_predict_routed"] / med["session_run"] - 1 <= GOAL_OVERHEAD,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--artifact", default="onnx-int8")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--import-runs", type=int, default=15)
    parser.add_argument("--cold-runs", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument(
        "--baseline", type=Path, help="another kdedge source tree, measured interleaved with this"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="overhead runs per tree with --baseline"
    )
    parser.add_argument(
        "--optimum-source",
        help="Also time optimum's ORTModel on the same file (needs the source model's config)",
    )
    parser.add_argument(
        "--part", choices=("all", "overhead"), default="all", help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--bytecode",
        choices=("cached", "source"),
        default="cached",
        help="cached: byte-compile each tree's kdedge first (what pip install leaves); "
        "source: leave it as it is (children compile it unless bytecode is cached)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.part == "overhead":  # a child of overhead_in_children
        report = overhead(args.bundle, args.artifact, args.threads, args.rounds, None)
        print(json.dumps(report))
        return
    trees = {"current": ROOT}
    if args.baseline:
        trees["baseline"] = args.baseline.resolve()
    if args.bytecode == "cached":  # py_compile writes even under PYTHONDONTWRITEBYTECODE
        for path in trees.values():
            compileall.compile_dir(path / "kdedge", quiet=1)
    report = {
        "host": host(),
        "bundle": args.bundle,
        "trees": {k: str(v) for k, v in trees.items()},
        "bytecode_cached": args.bytecode == "cached" or not sys.flags.dont_write_bytecode,
    }
    imports = import_times(args.import_runs, trees)
    cold = cold_starts(args.bundle, args.artifact, args.cold_runs, trees)
    if args.baseline:
        over = overhead_in_children(
            args.bundle, args.artifact, args.threads, args.rounds, args.repeats, trees
        )
    else:
        over = {
            "current": overhead(
                args.bundle, args.artifact, args.threads, args.rounds, args.optimum_source
            )
        }
    for tree in trees:
        report[tree] = {"import": imports[tree], "cold_start": cold[tree], "overhead": over[tree]}
    if args.baseline:
        cur, base = report["current"], report["baseline"]
        report["current_vs_baseline"] = {
            "cold_start_median": round(
                cur["cold_start"]["exec_to_first_prediction_ms"]["median"]
                / base["cold_start"]["exec_to_first_prediction_ms"]["median"],
                4,
            ),
            "predict_routed_median": round(
                cur["overhead"]["median_us"]["runtime_predict_routed"]
                / base["overhead"]["median_us"]["runtime_predict_routed"],
                4,
            ),
            "predict_unrouted_median": round(
                cur["overhead"]["median_us"]["runtime_predict_unrouted"]
                / base["overhead"]["median_us"]["runtime_predict_unrouted"],
                4,
            ),
        }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
