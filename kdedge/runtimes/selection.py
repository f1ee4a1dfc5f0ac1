"""Which artifact of a bundle to run on this machine.

The rule, in order: only artifacts that passed their parity check (a failed one only when
named explicitly); only those whose engine is installed here; only those whose target
hints include a tag of this host (``cpu`` everywhere, plus ``intel-cpu``, ``apple-m``,
``lambda`` or ``cuda`` when detected); then the fastest, by the best evidence the bundle
carries: figures ``kdedge bench --apply`` recorded for the target in question (the one
named, else the first bench target matching this host's tags; on Lambda the measured size
nearest the function's memory) rank first, by their batch-1 p50 (a generator's decode
speed); artifacts not measured there follow by the batch-1 p50 measured at export; ties go
to the smallest accuracy drop, then the smallest size.
"""

from __future__ import annotations

import importlib.util
import os
import platform
from dataclasses import dataclass

from kdedge.errors import ModelError
from kdedge.runtimes.backends import BACKENDS
from kdedge.runtimes.bundle import Artifact, Manifest

# backend -> the module its engine is imported from
ENGINE_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "llamacpp": "llama_cpp"}


def host_tags() -> tuple[str, ...]:
    """Target tags this machine satisfies, most specific first."""
    tags: list[str] = []
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        tags.append("lambda")
    machine = platform.machine().lower()
    if platform.system() == "Darwin" and machine in ("arm64", "aarch64"):
        tags.append("apple-m")
    elif machine in ("x86_64", "amd64") and _cpu_vendor() == "GenuineIntel":
        tags.append("intel-cpu")
    tags.append("cpu")
    return tuple(tags)


def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def engine_installed(backend: str) -> bool:
    module = ENGINE_MODULES.get(backend)
    return module is not None and importlib.util.find_spec(module) is not None


@dataclass(frozen=True)
class Choice:
    artifact: Artifact
    why: str


def choose_artifact(
    manifest: Manifest,
    *,
    artifact: str | None = None,
    backend: str | None = None,
    tags: tuple[str, ...] | None = None,
    target: str | None = None,
) -> Choice:
    """Pick the artifact to run (see the module docstring for the rule)."""
    if artifact is not None:
        chosen = manifest.artifact(artifact)
        if backend is not None and chosen.backend != backend:
            raise ModelError(f"artifact '{artifact}' runs on {chosen.backend}, not on {backend}")
        if not engine_installed(chosen.backend):
            raise ModelError(_missing_engine(chosen.backend))
        status = "" if chosen.status == "passed" else f" (status {chosen.status}: parity failed)"
        return Choice(chosen, f"named explicitly{status}")
    tags = host_tags() if tags is None else tags
    passed = [a for a in manifest.artifacts if a.status == "passed"]
    if backend is not None:
        passed = [a for a in passed if a.backend == backend]
        if not passed:
            raise ModelError(f"the bundle has no passing artifact for backend '{backend}'")
    runnable = [a for a in passed if engine_installed(a.backend)]
    if not runnable:
        names = ", ".join(f"{a.name} ({a.backend})" for a in passed) or "none passed"
        engines = sorted({a.backend for a in passed})
        hint = "; ".join(_missing_engine(b) for b in engines)
        raise ModelError(f"no artifact of this bundle can run here: {names}. {hint}")
    fitting = [a for a in runnable if set(a.target_hints) & set(tags)] or runnable
    bench_target = measured_target(manifest, tags, target)
    figures = manifest.benchmarks.get(bench_target, {}).get("artifacts", {})
    best = min(fitting, key=lambda a: (_ms(figures.get(a.name, {})), *_speed_key(a)))
    where = f"this host ({', '.join(tags)})"
    if best.name in figures:
        run = manifest.benchmarks[bench_target]
        measured = f"{_describe(figures[best.name])} on {bench_target} by kdedge bench"
        return Choice(best, f"fastest measured for {where}: {measured} ({run.get('host')})")
    p50, tps = best.parity.get("latency_ms_p50"), best.parity.get("tokens_per_s")
    speed = (
        f"export p50 {p50:.2f} ms"
        if p50 is not None
        else f"export decode {tps:.1f} tokens/s"
        if tps
        else "no latency evidence"
    )
    return Choice(best, f"fastest passing artifact for {where}; {speed}")


def measured_target(
    manifest: Manifest, tags: tuple[str, ...], target: str | None = None
) -> str | None:
    """The bench target whose recorded figures apply: ``target`` when given (it must have
    figures), else the first recorded one matching the host's tags, most specific first."""
    recorded = manifest.benchmarks
    if target is not None:
        if target not in recorded:
            known = ", ".join(recorded) or "none; run `kdedge bench BUNDLE --target T --apply`"
            raise ModelError(f"the bundle has no benchmark figures for '{target}'; it has: {known}")
        return target
    for tag in tags:
        matching = [name for name in recorded if _tag_of(name) == tag]
        if tag == "lambda" and matching:  # the measured size nearest the function's memory
            memory = float(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 1769)
            return min(matching, key=lambda name: abs(float(name.split("-")[1]) - memory))
        if matching:
            return matching[0]
    return None


def _tag_of(target: str) -> str | None:
    """The host tag a bench target stands for; ISA-capped emulations match no host."""
    if target.startswith("lambda-"):
        return "lambda"
    return target if target in ("cpu", "intel-cpu", "apple-m", "cuda") else None


def _ms(figures: dict[str, float]) -> float:
    """Measured milliseconds per answer (a generator's: per decoded token); inf if none."""
    if figures.get("p50_ms"):
        return float(figures["p50_ms"])
    if figures.get("tg_tokens_per_s"):
        return 1000.0 / float(figures["tg_tokens_per_s"])
    return float("inf")


def _describe(figures: dict[str, float]) -> str:
    if figures.get("p50_ms"):
        return f"p50 {figures['p50_ms']:.2f} ms"
    if figures.get("tg_tokens_per_s"):
        return f"decode {figures['tg_tokens_per_s']:.1f} tokens/s"
    return "no figures"


def _speed_key(a: Artifact) -> tuple[float, float, int]:
    """Export-time latency (a generator's: milliseconds per decoded token), accuracy drop,
    size."""
    p50 = a.parity.get("latency_ms_p50")
    if p50 is None and a.parity.get("tokens_per_s"):
        p50 = 1000.0 / float(a.parity["tokens_per_s"])
    drop = a.parity.get("accuracy_drop_points")
    return (
        float("inf") if p50 is None else float(p50),
        float("inf") if drop is None else float(drop),
        a.size_bytes,
    )


def _missing_engine(backend: str) -> str:
    extra = BACKENDS[backend][1] if backend in BACKENDS else backend
    return f"{backend} is not installed (pip install 'kdedge[{extra}]')"
