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
sends the gradients in fp16 (``KDEDGE_DDP_COMPRESS=fp16``, torch's DDP compression hook).

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


def arm_command(processes: int, base: Path, data: Path, out: Path, args) -> list[str]:
    teach = [
        *("-m", "kdedge", "teach", "--base", str(base), "--data", str(data), "--out", str(out)),
        *("--epochs", "1", "--batch-size", str(args.batch_size), "--lr", "1e-4"),
        *("--max-length", str(args.max_length), "--device", "cpu", "--json", "-q"),
        "--overwrite",
    ]
    if processes == 1:
        return ["taskset", "-c", "0", sys.executable, *teach]
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    return [
        *("taskset", "-c", ",".join(str(c) for c in range(processes))),
        sys.executable,
        *launcher,
        *("--master_port", str(_free_port())),
        *teach,
    ]


def run_arm(command: list[str], compress: str = "none") -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KDEDGE_DDP_COMPRESS": compress}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"arm failed ({' '.join(command[:6])} ...):\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    return {"samples_per_sec": result["train_samples_per_sec"], "wall_s": round(wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4000, help="CLINC150 training texts")
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch")
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="keep the data and base model here")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs at least 2 CPU cores")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kdedge-dist-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    data, base = setup(workdir, args.rows, [0, 2, 4])
    arms = {  # name: (processes, gradient compression)
        "one_process_one_core": (1, "none"),
        "two_processes_two_cores": (2, "none"),
        "two_processes_fp16_gradients": (2, "fp16"),
    }
    samples: dict[str, list[dict]] = {name: [] for name in arms}
    for r in range(args.rounds):
        names = list(arms) if r % 2 == 0 else list(reversed(arms))
        for name in names:
            n, compress = arms[name]
            command = arm_command(n, base, data, workdir / f"out_{name}", args)
            samples[name].append(run_arm(command, compress))
            print(f"round {r + 1}: {name} {samples[name][-1]}", file=sys.stderr)
    rate = {k: [s["samples_per_sec"] for s in v] for k, v in samples.items()}
    report = {
        "host": describe(),
        "settings": {
            "rows": args.rows,
            "global_batch": args.batch_size,
            "max_length": args.max_length,
            "student": "all-MiniLM-L6-v2 layers 0,2,4",
            "command": "kdedge teach --epochs 1",
            "rounds": args.rounds,
        },
        "samples": samples,
        "median_samples_per_sec": {k: statistics.median(v) for k, v in rate.items()},
        "speedup_vs_one_core": {
            name: paired_speedup(rate[name], rate["one_process_one_core"], higher_is_better=True)
            for name in arms
            if name != "one_process_one_core"
        },
        "median_wall_s": {k: statistics.median(s["wall_s"] for s in v) for k, v in samples.items()},
        "goal": 1.6,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
