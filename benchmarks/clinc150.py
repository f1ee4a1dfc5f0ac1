"""CLINC150 proof: teacher vs. half-depth students (hard labels, KD, two-stage), one table.

Runs the same library stages as the CLI: prepare -> teach -> label -> distill (one student
per variant) -> calibrate -> evaluate on the official test split. Writes a JSON file with
every report and prints a Markdown table for docs/benchmarks.md.

    python benchmarks/clinc150.py --data ../shared/data/clinc150 --workdir runs/clinc150 \
        --device cuda --out docs/results/clinc150_h100.json

CLINC150's out-of-scope rows are label ``oos``; in-scope accuracy is accuracy over the
other rows, out-of-scope recall is recall of ``oos`` by argmax.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from kdedge.atomic import atomic_write_text
from kdedge.base_models import resolve_model
from kdedge.data.prepare import load_prepared, prepare_dataset
from kdedge.distill.device import resolve
from kdedge.distill.distillation import StudentSpec, distill
from kdedge.distill.evaluation import calibrate_model, evaluate_model
from kdedge.distill.labeling import label_texts
from kdedge.distill.losses import LossConfig
from kdedge.distill.teacher import teach
from kdedge.distill.trainer import TrainConfig

VARIANTS = {
    "hard": {"loss": LossConfig(alpha=0.0), "feature_epochs": 0},
    "kd_t2": {"loss": LossConfig(alpha=0.7, temperature=2.0), "feature_epochs": 0},
    "kd_t4": {"loss": LossConfig(alpha=0.7, temperature=4.0), "feature_epochs": 0},
    "two_stage": {"loss": LossConfig(alpha=0.7, temperature=2.0), "feature_epochs": 3},
    # The seeds' hybrid (0.45 hard + 0.35 KD + 0.20 class-weighted CE) protecting `oos`:
    "hybrid_oos": {
        "loss": LossConfig(alpha=0.35, temperature=2.0, rare_weight=0.2),
        "feature_epochs": 0,
        "rare_labels": ("oos",),
    },
    # Stronger protection of `oos`: more weight on the class-weighted term, boost 10.
    "two_stage_oos": {
        "loss": LossConfig(alpha=0.5, temperature=2.0, rare_weight=0.3),
        "feature_epochs": 3,
        "rare_labels": ("oos",),
        "rare_class_boost": 10.0,
    },
}


def host() -> dict:
    from kdedge.bench.host import describe

    info = describe()  # CPU model and flags, cores, package versions (torch, transformers)
    info["cpu_threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data", required=True, type=Path, help="folder with CLINC150 train/validation/test.jsonl"
    )
    p.add_argument("--base", default="minilm", help="base encoder directory or 'minilm'")
    p.add_argument("--workdir", default="runs/clinc150", type=Path)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, help="write all reports as JSON here")
    p.add_argument("--teacher-epochs", type=int, default=10)
    p.add_argument("--student-epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--teacher-batch-size", type=int, default=64)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument(
        "--limit", type=int, default=0, help="use only the first N training rows (smoke runs)"
    )
    p.add_argument("--latency-samples", type=int, default=200)
    args = p.parse_args()

    placement = resolve(args.device)

    def save() -> None:  # after every stage, so a run cut short still leaves its numbers
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(args.out, json.dumps(results, indent=2, default=str) + "\n")

    work = args.workdir
    results: dict = {
        "host": host(),
        "device": placement.name,
        "precision": placement.precision,
        "args": vars(args),
    }
    train = args.data / "train.jsonl"
    if args.limit:
        by_label: dict[str, list[str]] = {}
        for line in train.read_text(encoding="utf-8").splitlines():
            by_label.setdefault(json.loads(line)["label"], []).append(line)
        per_label = max(1, args.limit // len(by_label))  # the same few rows of every label
        rows = [line for lines in by_label.values() for line in lines[:per_label]]
        train = work / "train_subset.jsonl"
        train.parent.mkdir(parents=True, exist_ok=True)
        train.write_text("\n".join(rows) + "\n", encoding="utf-8")
    # Official splits as they are (no PII scrub, no dedupe): comparable with published numbers.
    prep = prepare_dataset(
        train,
        out_dir=work / "data",
        validation_path=args.data / "validation.jsonl",
        test_path=args.data / "test.jsonl",
        scrub=False,
        dedupe=False,
    )
    results["prepare"] = prep.to_dict()
    data_dir = work / "data"
    t0 = time.perf_counter()
    teacher_dir = work / "teacher"
    teacher = teach(
        resolve_model(args.base),
        data_dir,
        teacher_dir,
        placement=placement,
        config=TrainConfig(
            epochs=args.teacher_epochs,
            lr=1.5e-4,
            batch_size=args.teacher_batch_size,
            early_stop=False,
            log_every=100,
        ),
        max_length=64,
        overwrite=True,
    )
    results["teacher_train"] = {"seconds": round(time.perf_counter() - t0, 1), **teacher.to_dict()}
    data = load_prepared(data_dir)
    texts = [e.text for e in (*data.train, *data.validation, *data.test)]
    cache = work / "cache"
    labeled = label_texts([teacher_dir], texts, cache, placement, batch_size=512, refresh=True)
    results["labeling"] = labeled.report.to_dict()
    again = label_texts([teacher_dir], texts, cache, placement, batch_size=512)
    results["labeling_cached"] = again.report.to_dict()

    models = {"teacher": teacher_dir}
    for name in args.variants.split(","):
        spec = VARIANTS[name]
        t0 = time.perf_counter()
        out = distill(
            [teacher_dir],
            data_dir,
            work / f"student_{name}",
            placement=placement,
            student=StudentSpec(layers=args.layers),
            loss=spec["loss"],
            config=TrainConfig(
                epochs=args.student_epochs,
                lr=2e-4,
                batch_size=args.batch_size,
                min_epochs=4,
                rare_class_boost=spec.get("rare_class_boost", 5.0),
                log_every=100,
            ),
            cache_dir=cache,
            feature_epochs=spec["feature_epochs"],
            overwrite=True,
        )
        results[f"distill_{name}"] = {
            "seconds": round(time.perf_counter() - t0, 1),
            **out.to_dict(),
        }
        models[name] = work / f"student_{name}"
        save()

    table = []
    for name, model_dir in models.items():
        cal = calibrate_model(model_dir, data_dir / "validation.jsonl", placement, plot=False)
        ev = evaluate_model(
            model_dir, data_dir / "test.jsonl", placement, latency_samples=args.latency_samples
        )
        results[f"eval_{name}"] = {"calibration": cal.to_dict(), **ev.to_dict()}
        save()
        m = ev.metrics
        table.append((name, m, ev, cal))
    teacher_m = table[0][1]
    lines = [
        "| model | layers | params | size | in-scope acc | vs teacher | OOS recall "
        "| OOS precision | ECE (calibrated) | CPU p50 batch 1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m, ev, _ in table:
        layers = json.loads((Path(ev.model) / "config.json").read_text())["num_hidden_layers"]
        lines.append(
            f"| {name} | {layers} | {ev.parameters / 1e6:.1f} M | {ev.size_bytes / 1e6:.1f} MB "
            f"| {100 * m['in_scope_accuracy']:.2f}% "
            f"| {100 * m['in_scope_accuracy'] / teacher_m['in_scope_accuracy']:.1f}% "
            f"| {100 * m['oos_recall']:.1f}% | {100 * m['oos_precision']:.1f}% | {m['ece']:.4f} "
            f"| {ev.latency['p50']:.2f} ms |"
        )
    results["table"] = lines
    lines.append("")
    lines.append(
        f"teacher labeling: {results['labeling']['samples_per_sec']:.0f} samples/s "
        f"({results['labeling']['cache_misses']} texts); cached re-run: "
        f"{results['labeling_cached']['cache_hits']} hits in "
        f"{results['labeling_cached']['seconds']:.2f} s"
    )
    for name in args.variants.split(","):
        r = results[f"distill_{name}"]
        lines.append(
            f"{name}: student training {r['train']['train_samples_per_sec']:.0f} samples/s "
            f"(median epoch), best epoch {r['train']['best_epoch']}, {r['seconds']:.0f} s total"
        )
    lines.append(
        f"teacher training {results['teacher_train']['train_samples_per_sec']:.0f} samples/s"
    )
    save()
    print("\n".join(lines))
    print(json.dumps(results["host"]))


if __name__ == "__main__":
    main()
