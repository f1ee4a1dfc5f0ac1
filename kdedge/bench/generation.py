"""Bench a ``generate`` bundle, llama-bench style: prompt processing (pp) and generation
(tg) tokens/s per GGUF artifact and target, each beside raw llama-cpp-python on the same
file with the same threads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdedge.bench.harness import (
    BenchReport,
    BenchSettings,
    Row,
    measure,
    measure_paired,
    target_record,
)
from kdedge.bench.host import describe
from kdedge.bench.targets import Target
from kdedge.errors import ConfigError
from kdedge.progress import Tracker
from kdedge.runtimes.bundle import Artifact, Manifest
from kdedge.runtimes.selection import engine_installed


def bench_generation(
    bundle: Path,
    manifest: Manifest,
    chosen: list[Artifact],
    targets: dict[str, Target],
    settings: BenchSettings,
    track: Tracker,
) -> BenchReport:
    """pp / tg rows per GGUF artifact and target, each followed by its raw llama-cpp-python
    reference row, which processes exactly as many prompt tokens as the runtime row did."""
    from kdedge.runtimes.generation_prompt import GenerationConfig

    pp, tg, repeats = settings.pp, settings.tg, settings.gen_repeats
    cold_runs, paired = settings.cold_runs, settings.paired
    if settings.compare_torch:
        raise ConfigError(
            "--compare-torch measures classifiers; a generate bundle is compared with raw "
            "llama-cpp-python on its own GGUF files. Fix: drop --compare-torch"
        )
    if pp < 1 or tg < 1 or repeats < 1:
        raise ConfigError(f"pp, tg and gen_repeats must be >= 1, got {pp}, {tg}, {repeats}")
    context = GenerationConfig.of(Path(bundle), manifest).context_length
    pp = min(pp, context - 1)
    tg = min(tg, context - 1)
    report = BenchReport(
        host=describe(),
        bundle=str(bundle),
        settings={
            "task": "generate",
            "pp": pp,
            "tg": tg,
            "gen_repeats": repeats,
            "cold_runs": cold_runs,
            "paired": paired,
            "context_length": context,
        },
        targets={},
    )
    plan: list[tuple[dict[str, Any], Row, dict[str, Any], Row]] = []
    for name, target in targets.items():
        why = target.unavailable()
        report.targets[name] = target_record(target, why)
        if why:
            continue
        limits = {**target.limits(), "tg": tg, "repeats": repeats}
        for a in chosen:
            if a.format != "gguf" or a.backend not in target.backends:
                continue
            if not engine_installed(a.backend):
                continue
            job = {
                **limits,
                "kind": "generate",
                "bundle": str(bundle),
                "artifact": a.name,
                "pp": pp,
            }
            raw_job = {
                **limits,
                "kind": "llamacpp",
                "model": str(Path(bundle, a.main_file).resolve()),
                "n_ctx": context,
            }
            plan.append(
                (
                    job,
                    Row(name, a.name, "generate", a.backend, a.precision, a.size_bytes),
                    raw_job,
                    Row(
                        name, f"llamacpp:{a.name}", "llamacpp", a.backend, a.precision, a.size_bytes
                    ),
                )
            )
    for job, mine, raw_job, raw in track(plan, "benchmarking", total=len(plan)):
        measure(job, mine, cold_runs)
        report.rows.append(mine)
        # the raw row processes as many prompt tokens as the runtime's prompt had, and
        # generates after a context as long as the runtime's chat prompt
        raw_job["pp"] = (mine.pp or {}).get("tokens") or pp
        raw_job["tg_context"] = (mine.tg or {}).get("context") or 1
        measure(raw_job, raw, cold_runs)
        report.rows.append(raw)
    if paired:  # one process per artifact: two copies of a model, not all of them
        groups = [[(job, mine), (raw_job, raw)] for job, mine, raw_job, raw in plan]
        report.paired = measure_paired(groups, repeats, 1, track)
    return report
