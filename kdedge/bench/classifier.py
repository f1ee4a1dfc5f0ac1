"""Bench a classifier bundle (``intent``): latency per artifact and target, with torch and
optimum reference rows measured in the same run on the same texts and thread limits."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from kdedge.bench.harness import (
    BenchReport,
    BenchSettings,
    Row,
    measure,
    measure_paired,
    read_texts,
    target_record,
)
from kdedge.bench.host import describe
from kdedge.bench.targets import Target
from kdedge.progress import Tracker
from kdedge.runtimes.bundle import Artifact, Manifest
from kdedge.runtimes.selection import engine_installed


def bench_classifier(
    bundle: Path,
    manifest: Manifest,
    chosen: list[Artifact],
    resolved: dict[str, Target],
    settings: BenchSettings,
    track: Tracker,
) -> BenchReport:
    """Rows per passing artifact and target, plus optimum and torch reference rows."""
    s = settings
    data, batch, repeats, cold_runs = s.data, s.batch, s.repeats, s.cold_runs
    max_texts, compare_optimum, compare_torch, paired = (
        s.max_texts,
        s.compare_optimum,
        s.compare_torch,
        s.paired,
    )
    targets = list(resolved)
    texts = read_texts(data, max_texts)
    source = Path(manifest.provenance.get("source_model") or "")
    with contextlib.ExitStack() as cleanup:  # the optimum folder goes whatever happens
        optimum_dir = None
        if compare_optimum and _optimum_installed() and (source / "config.json").is_file():
            optimum_dir = optimum_folder(source)
            cleanup.callback(shutil.rmtree, optimum_dir, ignore_errors=True)
        report = BenchReport(
            host=describe(),
            bundle=str(bundle),
            settings={
                "batch": batch,
                "repeats": repeats,
                "cold_runs": cold_runs,
                "texts": len(texts),
                "data": str(data) if data else "built-in sentences",
                "paired": paired,
            },
            targets={},
        )
        plan: list[tuple[Target, dict[str, Any], Row]] = []
        for name in targets:
            target = resolved[name]
            why = target.unavailable()
            report.targets[name] = target_record(target, why)
            if why:
                continue
            limits = {
                **target.limits(),
                "texts": texts,
                "batch": batch,
                "repeats": repeats,
                "max_length": manifest.max_length,
            }
            for a in chosen:
                if a.backend not in target.backends or not engine_installed(a.backend):
                    continue
                row = Row(
                    name,
                    a.name,
                    "artifact",
                    a.backend,
                    a.precision,
                    a.size_bytes,
                    a.parity.get("accuracy"),
                    a.parity.get("ece"),
                )
                plan.append(
                    (
                        target,
                        {**limits, "kind": "artifact", "bundle": str(bundle), "artifact": a.name},
                        row,
                    )
                )
            if compare_optimum and optimum_dir is not None and "onnxruntime" in target.backends:
                for a in chosen:
                    if a.format == "onnx" and engine_installed(a.backend):
                        row = Row(
                            name,
                            f"optimum:{a.name}",
                            "optimum",
                            "onnxruntime",
                            a.precision,
                            a.size_bytes,
                            a.parity.get("accuracy"),
                            a.parity.get("ece"),
                        )
                        job = {
                            **limits,
                            "kind": "optimum",
                            "model_dir": str(optimum_dir),
                            "file_name": stage_onnx(optimum_dir, Path(bundle), a),
                        }
                        plan.append((target, job, row))
            for model_dir in compare_torch:
                size = sum(p.stat().st_size for p in Path(model_dir).glob("*.safetensors"))
                row = Row(
                    name, f"torch:{Path(model_dir).name}", "torch", "torch", "fp32", size or None
                )
                plan.append((target, {**limits, "kind": "torch", "model_dir": str(model_dir)}, row))
        for _target, job, row in track(plan, "benchmarking", total=len(plan)):
            measure(job, row, cold_runs)
            report.rows.append(row)
        if paired:
            groups = [[(job, row) for t, job, row in plan if t.name == name] for name in targets]
            report.paired = measure_paired(groups, repeats, 10, track)
    report.settings["optimum"] = (
        "measured"
        if optimum_dir is not None
        else "off"
        if not compare_optimum
        else "not installed"
        if not _optimum_installed()
        else f"no config.json at the bundle's source model {source}"
    )
    return report


def _optimum_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("optimum.onnxruntime") is not None
    except ModuleNotFoundError:
        return False


def optimum_folder(source: Path) -> Path:
    """A temp folder laid out as optimum's ORTModel expects: the source model's config and
    tokenizer files, linked; :func:`stage_onnx` adds the .onnx files. The caller removes it."""
    folder = Path(tempfile.mkdtemp(prefix="kdedge-bench-optimum-"))
    for f in source.iterdir():
        if f.name == "config.json" or f.name.startswith(("tokenizer", "vocab", "special_tokens")):
            (folder / f.name).symlink_to(f.resolve())
    return folder


def stage_onnx(folder: Path, bundle: Path, artifact: Any) -> str:
    """Link the artifact's .onnx file into optimum's model folder; return its file name."""
    name = f"{artifact.name}.onnx"
    link = folder / name
    if not link.exists():
        link.symlink_to((bundle / artifact.main_file).resolve())
    return name
