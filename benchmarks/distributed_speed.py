"""Issue #17: training samples/s of 2 gloo processes on 2 cores vs 1 process on 1 core.

Both arms run the real command, ``kdedge teach``, on the same work: a 3-layer
student-sized MiniLM (layers 0, 2, 4 of the packaged all-MiniLM-L6-v2) fine-tuned for one
epoch on ``--rows`` CLINC150 training texts (a seeded random sample), at
the same global batch. The single process is pinned to core 0 with one thread; the two
processes run under ``torchrun`` (one thread each, as torchrun sets) on cores 0 and 1.
Arms alternate round after round, so drift on a shared machine hits both alike; the
speed-up is the median of the per-round ratios with a bootstrap interval. The figure is
the loop's own ``train_samples_per_sec`` (the epoch's training steps, without start-up
and validation); each command's end-to-end wall time is reported too. A third arm
runs the one-core command twice at once, one per core, with no sync between them: the
most two processes can get out of this machine, so the report separates what the
machine gives from what gradient sync costs. ``--fp16-arm`` adds 2 processes that send
fp16 gradients (``KDEDGE_DDP_COMPRESS=fp16``, torch's DDP compression hook).

    python benchmarks/distributed_speed.py --rows 4000 --rounds 3 \
        --out docs/results/distributed_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kdedge.atomic import atomic_write_text
from kdedge.bench.host import describe
from kdedge.bench.paired import paired_speedup

CLINC = Path(__file__).resolve().parents[2] / "shared" / "data" / "clinc150"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup(workdir: Path, rows: int, layers: list[int]) -> tuple[Path, Path]:
    """A prepared CLINC150 subset and a student-sized base encoder, built once."""
    from transformers import AutoModel, AutoTokenizer

    from kdedge.base_models import resolve_model
    from kdedge.data.prepare import prepare_dataset

    data, base = workdir / "data", workdir / "base"
    if not (data / "train.jsonl").is_file():
        rng, labels = random.Random(0), None
        for split, count in (("train", rows), ("validation", max(rows // 8, 150)), ("test", 150)):
            lines = (CLINC / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
            if labels is not None:  # held-out rows of the intents the subset trains on
                lines = [line for line in lines if json.loads(line)["label"] in labels]
            picked = rng.sample(lines, min(count, len(lines)))
            labels = labels or {json.loads(line)["label"] for line in picked}
            (workdir / f"{split}.jsonl").write_text("\n".join(picked) + "\n", encoding="utf-8")
        prepare_dataset(
            workdir / "train.jsonl",
            out_dir=data,
            validation_path=workdir / "validation.jsonl",
            test_path=workdir / "test.jsonl",
            scrub=False,
            dedupe=False,
        )
    if not (base / "config.json").is_file():
        minilm = resolve_model("minilm")
        model = AutoModel.from_pretrained(minilm)
        model.encoder.layer = type(model.encoder.layer)(model.encoder.layer[i] for i in layers)
        model.config.num_hidden_layers = len(layers)
        model.save_pretrained(base)
        AutoTokenizer.from_pretrained(minilm).save_pretrained(base)
    return data, base


def work_command(work: str, base: Path | str, data: Path, out: Path, args) -> list[str]:
    """The kdedge command both arms run: ``teach`` a student-sized encoder, or ``distill``
    a 3-layer student with a trimmed vocabulary from the 6-layer teacher in ``base``."""
    common = [
        *("--data", str(data), "--out", str(out), "--epochs", "1"),
        *("--batch-size", str(args.batch_size), "--device", "cpu", "--json", "-q"),
        "--overwrite",
    ]
    if work == "teach":
        return [
            *("-m", "kdedge", "teach", "--base", str(base), "--lr", "1e-4"),
            *("--max-length", str(args.max_length), *common),
        ]
    return [
        *("-m", "kdedge", "distill", "--teacher", str(base), "--layers", "3", "--trim-vocab"),
        *("--cache", str(data / "cache"), *common),
    ]


def arm_command(
    processes: int, base: Path, data: Path, out: Path, args, core: int = 0
) -> list[str]:
    teach = work_command(args.work, base, data, out, args)
    if processes == 1:
        return ["taskset", "-c", str(core), sys.executable, *teach]
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    return [
        *("taskset", "-c", ",".join(str(c) for c in range(processes))),
        sys.executable,
        *launcher,
        *("--master_port", str(_free_port())),
        *teach,
    ]


def run_arm(commands: list[list[str]], compress: str = "none") -> dict:
    """Run ``commands`` at the same time; their training samples/s add up."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KDEDGE_DDP_COMPRESS": compress}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    outputs = [p.communicate() for p in procs]
    wall = time.perf_counter() - start
    rate = 0.0
    for proc, (out, err), command in zip(procs, outputs, commands, strict=True):
        if proc.returncode != 0:
            raise SystemExit(f"arm failed ({' '.join(command[:6])} ...):\n{err[-2000:]}")
        result = json.loads(out)
        rate += result.get("train", result)["train_samples_per_sec"]
    return {"samples_per_sec": round(rate, 1), "wall_s": round(wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4000, help="CLINC150 training texts")
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch")
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="keep the data and base model here")
    parser.add_argument(
        "--work",
        choices=("teach", "distill"),
        default="teach",
        help="teach: fine-tune the 3-layer encoder; distill: a 3-layer trimmed-vocabulary "
        "student of a fine-tuned MiniLM-L6 (teacher and labels made once, untimed)",
    )
    parser.add_argument(
        "--fp16-arm", action="store_true", help="also time 2 processes with fp16 gradients"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs at least 2 CPU cores")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kdedge-dist-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    data, base = setup(workdir, args.rows, [0, 2, 4])
    if args.work == "distill":  # the teacher: MiniLM-L6 fine-tuned, its labels cached
        teacher = workdir / "teacher"
        if not (teacher / "config.json").is_file():
            for command in (
                work_command("teach", "minilm", data, teacher, args),
                ["-m", "kdedge", "label", "--teacher", str(teacher), "--data", str(data)],
            ):
                subprocess.run([sys.executable, *command], check=True, capture_output=True)
        base = teacher

    def commands(name: str) -> list[list[str]]:
        out = workdir / f"out_{name}"
        if name == "two_independent_processes":  # the same work twice, no sync: the ceiling
            return [arm_command(1, base, data, out / str(c), args, core=c) for c in (0, 1)]
        return [arm_command(1 if name == "one_process_one_core" else 2, base, data, out, args)]

    arms = {  # name: gradient compression
        "one_process_one_core": "none",
        "two_processes_two_cores": "none",
        "two_independent_processes": "none",
    }
    if args.fp16_arm:
        arms["two_processes_fp16_gradients"] = "fp16"
    samples: dict[str, list[dict]] = {name: [] for name in arms}
    for r in range(args.rounds):
        names = list(arms) if r % 2 == 0 else list(reversed(arms))
        for name in names:
            samples[name].append(run_arm(commands(name), arms[name]))
            print(f"round {r + 1}: {name} {samples[name][-1]}", file=sys.stderr)
    rate = {k: [s["samples_per_sec"] for s in v] for k, v in samples.items()}
    report = {
        "host": describe(),
        "settings": {
            "rows": args.rows,
            "global_batch": args.batch_size,
            "max_length": args.max_length,
            "student": "all-MiniLM-L6-v2 layers 0,2,4"
            + (" (trimmed vocabulary)" if args.work == "distill" else ""),
            "command": f"kdedge {args.work} --epochs 1",
            "rounds": args.rounds,
        },
        "samples": samples,
        "median_samples_per_sec": {k: statistics.median(v) for k, v in rate.items()},
        "speedup_vs_one_core": {
            name: paired_speedup(rate[name], rate["one_process_one_core"], higher_is_better=True)
            for name in arms
            if name != "one_process_one_core"
        },
        "ddp_vs_ceiling": paired_speedup(
            rate["two_processes_two_cores"],
            rate["two_independent_processes"],
            higher_is_better=True,
        ),
        "median_wall_s": {k: statistics.median(s["wall_s"] for s in v) for k, v in samples.items()},
        "goal": 1.6,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
