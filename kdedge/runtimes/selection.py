"""Which artifact of a bundle to run on this machine.

The rule, in order: only artifacts that passed their parity check (a failed one only when
named explicitly); only those whose engine is installed here; only those whose target
hints include a tag of this host (``cpu`` everywhere, plus ``intel-cpu``, ``apple-m``,
``lambda`` or ``cuda`` when detected); then the fastest by the batch-1 p50 measured at
export, then the smallest accuracy drop, then the smallest size. ``kdedge bench`` measures
the real per-target figures; the export p50 is the best evidence a bundle carries.
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
    best = min(fitting, key=_speed_key)
    p50, tps = best.parity.get("latency_ms_p50"), best.parity.get("tokens_per_s")
    speed = (
        f"export p50 {p50:.2f} ms"
        if p50 is not None
        else f"export decode {tps:.1f} tokens/s"
        if tps
        else "no latency evidence"
    )
    return Choice(best, f"fastest passing artifact for this host ({', '.join(tags)}); {speed}")


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
