"""Run the benchmark matrix: every artifact of a bundle on every target, plus torch
reference rows measured in the same run with the same inputs and thread limits.

Each measurement is a fresh ``kdedge.bench.worker`` process (cold start and peak RSS mean
nothing otherwise). Figures from one run are comparable with each other; across runs of a
shared machine, compare the ratios against the reference rows, not the milliseconds.

The bundle's task picks the measuring function (:data:`kdedge.tasks.TASKS`): classifiers in
:mod:`kdedge.bench.classifier`, generators in :mod:`kdedge.bench.generation`.

A ``generate`` bundle gets llama-bench style rows instead: per GGUF artifact and target,
prompt processing (``pp``) and generation (``tg``) tokens/s through the kdedge runtime, and
the same through raw llama-cpp-python on the same file with the same threads (reference rows
``llamacpp:<artifact>``); ``ratios`` then hold runtime/raw for both. JSON schema v1 grows,
compatibly: rows gain ``pp`` and ``tg`` (``{"tokens", "tokens_per_s" (median), "min", "max",
"n"}``, ``tg`` also ``context``, the prompt length it ran after; null for classifiers),
ratios of generators carry ``pp_ratio`` / ``tg_ratio`` instead of ``p50_speedup``, and
settings ``task``, ``pp``, ``tg`` and ``gen_repeats``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kdedge.bench.paired import METRICS, noise_band, paired_speedup
from kdedge.bench.targets import Target, get_target
from kdedge.errors import ConfigError
from kdedge.progress import Tracker, silent
from kdedge.runtimes.bundle import read_manifest, verify_files
from kdedge.tasks import get_task

SCHEMA_VERSION = 1
KIND = "kdedge-bench"
# Used when no --data is given: varied lengths and topics, not one repeated string.
DEFAULT_TEXTS = (
    "where is my order",
    "I want to return the shoes I bought last week because they are too small",
    "what's the weather going to be like in paris tomorrow morning",
    "freeze my card",
    "can you tell me how many calories are in a banana and an apple together",
    "hi",
    "book a table for two at an italian restaurant near the station at eight tonight",
    "how do I change my pin",
    "set a timer for ten minutes",
    "my package arrived damaged and the box was open, what should I do now?",
    "thanks",
    "what is the exchange rate between the euro and the dollar today",
)


@dataclass(frozen=True)
class BenchSettings:
    """What :func:`bench` was asked to measure; each task's bench reads the fields it uses."""

    data: str | Path | None = None
    compare_torch: tuple[str | Path, ...] = ()
    batch: int = 8
    repeats: int = 200
    cold_runs: int = 3
    max_texts: int = 200
    compare_optimum: bool = True
    pp: int = 512
    tg: int = 128
    gen_repeats: int = 5
    paired: bool = True


@dataclass
class Row:
    """One model on one target."""

    target: str
    name: str  # artifact name, or "torch:<dir>"
    kind: str  # artifact | torch
    backend: str
    precision: str
    size_bytes: int | None = None
    accuracy: float | None = None
    ece: float | None = None
    batch_1: dict[str, float] | None = None
    batch_n: dict[str, float] | None = None
    batch_1_max_length: dict[str, float] | None = None  # inputs truncated to max length
    cold_start_ms: dict[str, float] | None = None
    peak_rss_mb: float | None = None
    load_ms: float | None = None
    error: str | None = None
    pp: dict[str, Any] | None = None  # generators: prompt processing tokens/s
    tg: dict[str, Any] | None = None  # generators: generation tokens/s
    rerank: dict[str, Any] | None = None  # rerankers: {candidates: {p50, p95, docs_per_s}}


@dataclass
class BenchReport:
    host: dict[str, Any]
    bundle: str
    settings: dict[str, Any]
    targets: dict[str, dict[str, Any]]
    rows: list[Row] = field(default_factory=list)
    # speed-ups measured in interleaved rounds (kdedge.bench.paired), one per comparison
    paired: list[dict[str, Any]] = field(default_factory=list)

    def ratios(self) -> list[dict[str, Any]]:
        """Speed-ups of rows over the reference rows of their target from the sequential
        rows: batch-1 p50 of every row over each torch row and of each ONNX artifact over
        optimum on the same file; for generators, runtime/raw llama-cpp-python tokens/s on
        the same file. ``paired`` holds the same comparisons measured interleaved."""
        out = []
        for row, ref, kind in comparisons(self.rows):
            if kind != "reference":
                continue
            entry = {"target": row.target, "row": row.name, "reference": ref.name}
            if row.kind == "generate":
                entry.update(pp_ratio=_ratio(row.pp, ref.pp), tg_ratio=_ratio(row.tg, ref.tg))
            elif row.batch_1 and ref.batch_1:
                entry["p50_speedup"] = round(ref.batch_1["p50"] / row.batch_1["p50"], 2)
            elif row.rerank and ref.rerank:
                entry["p50_speedup"] = {
                    n: round(ref.rerank[n]["p50"] / row.rerank[n]["p50"], 2)
                    for n in row.rerank
                    if n in ref.rerank
                }
            else:
                continue
            out.append(entry)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "schema_version": SCHEMA_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": self.host,
            "bundle": self.bundle,
            "settings": self.settings,
            "targets": self.targets,
            "rows": [asdict(r) for r in self.rows],
            "ratios": self.ratios(),
            "paired": self.paired,
        }


BASELINE_PRECISIONS = ("fp32", "f16")


def comparisons(rows: list[Row]) -> list[tuple[Row, Row, str]]:
    """(row, reference, kind) for every comparison a report makes within one target.

    ``reference``: every row against each torch row; an ONNX artifact against optimum on
    the same file; a generator through the runtime against raw llama-cpp-python on the same
    file. ``precision``: a quantized artifact against the FP32 (else F16) artifact of its
    backend, the INT8-vs-FP32 question :mod:`kdedge.bench.explain` answers.
    """
    out = []
    for ref in rows:
        for row in rows:
            if row is ref or row.target != ref.target or row.error or ref.error:
                continue
            same_file = ref.name == f"{ref.kind}:{row.name}"  # optimum / raw llama.cpp
            torch = ref.kind == "torch" and row.kind != "generate"
            if torch or (ref.kind in ("optimum", "llamacpp") and same_file):
                out.append((row, ref, "reference"))
    for row in rows:
        if row.kind != "artifact" or row.precision in BASELINE_PRECISIONS or row.error:
            continue
        same = [r for r in rows if r.kind == "artifact" and r.target == row.target]
        same = [r for r in same if r.backend == row.backend and not r.error]
        for precision in BASELINE_PRECISIONS:
            base = next((r for r in same if r.precision == precision), None)
            if base is not None:
                out.append((row, base, "precision"))
                break
    return out


def _ratio(row: dict[str, Any] | None, ref: dict[str, Any] | None) -> float | None:
    mine, theirs = (row or {}).get("tokens_per_s"), (ref or {}).get("tokens_per_s")
    return round(mine / theirs, 3) if mine and theirs else None


def read_texts(path: str | Path | None, limit: int) -> list[str]:
    if path is None:
        return list(DEFAULT_TEXTS)
    from kdedge.data.io import load_examples

    texts = [e.text for e in load_examples(path, require_labels=False)]
    step = max(1, len(texts) // limit)  # spread over the file, keep its length distribution
    return texts[::step][:limit]


def _worker(job: dict[str, Any]) -> tuple[dict[str, Any], float]:
    launched = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "kdedge.bench.worker"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **job.get("env", {})},  # before any engine reads it
    )
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        result = {"error": f"worker exited with {proc.returncode}: {tail}"}
    return result, launched


def measure_paired(
    groups: list[list[tuple[dict[str, Any], Row]]], rounds: int, warmup: int, track: Tracker
) -> list[dict[str, Any]]:
    """Run each group's compared rows as arms of one interleaved worker (see
    :mod:`kdedge.bench.paired`) and return one speed-up entry per comparison and metric.

    A classifier group also runs a second copy of its first artifact: the A/A ``control``
    entry, whose band every verdict in the group must clear."""
    out: list[dict[str, Any]] = []
    for group in track(groups, "interleaved rounds", total=len(groups)):
        pairs = comparisons([row for _, row in group])
        involved = {id(r) for pair in pairs for r in pair[:2]}
        arms = [(job, row) for job, row in group if id(row) in involved]
        if not pairs:
            continue
        jobs = [job for job, _ in arms]
        control = next((job for job, row in arms if row.kind == "artifact"), None)
        metric0 = (
            "rerank_ms" if control is not None and control["kind"] == "rerank" else "batch_1_ms"
        )
        if control is not None:
            jobs.append(control)
        result, _ = _worker(
            {
                "kind": "paired",
                "arms": jobs,
                "repeats": rounds,
                "warmup": warmup,
                "cores": jobs[0].get("cores"),
                "env": jobs[0].get("env", {}),
            }
        )
        if "error" in result:
            result = {"arms": [{"error": result["error"], "samples": {}} for _ in jobs]}
        by_row = {id(row): arm for (_, row), arm in zip(arms, result["arms"], strict=False)}
        noise = 1.0
        if control is not None:
            first, copy = result["arms"][jobs.index(control)], result["arms"][-1]
            name = control["artifact"]
            entry = {"target": arms[0][1].target, "row": name, "reference": f"{name} (copy)"}
            speed = None
            if not (first["error"] or copy["error"]):
                speed = paired_speedup(first["samples"][metric0], copy["samples"][metric0])
            if speed:
                noise = noise_band(speed)
                speed["verdict"] = f"control: verdicts here need {noise:.3f}x"
                out.append({**entry, "comparison": "control", "metric": metric0, **speed})
        for row, ref, kind in pairs:
            mine, theirs = by_row[id(row)], by_row[id(ref)]
            entry = {"target": row.target, "row": row.name, "reference": ref.name}
            if mine["error"] or theirs["error"]:
                out.append({**entry, "comparison": kind, "error": mine["error"] or theirs["error"]})
                continue
            for metric, spec in METRICS.items():
                if metric in mine["samples"] and metric in theirs["samples"]:
                    speed = paired_speedup(
                        mine["samples"][metric],
                        theirs["samples"][metric],
                        higher_is_better=spec.higher_is_better,
                        noise=noise,
                    )
                    if speed:
                        out.append({**entry, "comparison": kind, "metric": metric, **speed})
    return out


def measure(job: dict[str, Any], row: Row, cold_runs: int) -> None:
    result, launched = _worker(job)
    if "error" in result:
        row.error = result["error"]
        return
    colds = [(result["first_done_unix"] - launched) * 1000.0]
    rss = [result["peak_rss_mb"]]
    for _ in range(max(cold_runs - 1, 0)):
        cold, start = _worker({**job, "repeats": 0})
        if "error" not in cold:
            colds.append((cold["first_done_unix"] - start) * 1000.0)
            rss.append(cold["peak_rss_mb"])
    row.batch_1 = result.get("batch_1")
    row.batch_n = result.get(f"batch_{job.get('batch')}")
    row.batch_1_max_length = result.get("batch_1_max_length")
    row.cold_start_ms = {
        "median": round(statistics.median(colds), 1),
        "min": round(min(colds), 1),
        "runs": len(colds),
    }
    row.peak_rss_mb = max(rss)
    row.load_ms = result["load_ms"]
    row.pp, row.tg = result.get("pp"), result.get("tg")
    row.rerank = result.get("rerank")


def bench(
    bundle: str | Path,
    targets: list[str],
    *,
    data: str | Path | None = None,
    compare_torch: list[str | Path] = (),  # type: ignore[assignment]
    artifacts: list[str] | None = None,
    batch: int = 8,
    repeats: int = 200,
    cold_runs: int = 3,
    max_texts: int = 200,
    compare_optimum: bool = True,
    pp: int = 512,
    tg: int = 128,
    gen_repeats: int = 5,
    paired: bool = True,
    track: Tracker = silent,
) -> BenchReport:
    """Measure the bundle's passing artifacts on each target (see the module docstring).

    ``paired`` also measures every comparison (row vs reference, quantized vs FP32)
    interleaved in one process, ``repeats`` rounds (``gen_repeats`` for generators): the
    ratios to trust on a noisy host. ``pp``, ``tg`` and ``gen_repeats`` apply to generate
    bundles, which ignore ``data``, ``batch``, ``repeats`` and the optimum rows and refuse
    ``compare_torch``.
    """
    manifest = read_manifest(bundle)
    chosen = [a for a in manifest.artifacts if a.status == "passed"]
    if artifacts:
        unknown = set(artifacts) - {a.name for a in manifest.artifacts}
        if unknown:
            raise ConfigError(f"no artifact {', '.join(sorted(unknown))} in {bundle}")
        chosen = [a for a in manifest.artifacts if a.name in artifacts]
    resolved = {name: get_target(name) for name in targets}  # unknown targets fail here
    settings = BenchSettings(
        data=data,
        compare_torch=tuple(compare_torch),
        batch=batch,
        repeats=repeats,
        cold_runs=cold_runs,
        max_texts=max_texts,
        compare_optimum=compare_optimum,
        pp=pp,
        tg=tg,
        gen_repeats=gen_repeats,
        paired=paired,
    )
    measure_task = get_task(manifest.task, str(bundle)).entry("bench")
    # refuse a damaged bundle before any measuring, hashing only what will be measured
    verify_files(bundle, manifest, [a.name for a in chosen])
    return measure_task(Path(bundle), manifest, chosen, resolved, settings, track)


def target_record(target: Target, why: str | None) -> dict[str, Any]:
    return {
        "summary": target.summary,
        "emulation": target.emulation,
        "threads": target.threads,
        "cores": target.cores,
        "cpu_share": round(target.cpu_share, 3),
        "isa": list(target.isa) if target.isa else None,
        "skipped": why,
    }
