"""Hardware targets as data (DESIGN.md): where an artifact is meant to run, and how we
reproduce that here.

AWS Lambda allocates CPU in proportion to memory: 1,769 MB buys the equivalent of one
vCPU, and smaller sizes a proportional share of one (AWS Lambda developer guide, "Memory and
computing power"). A share of a core cannot be reproduced with thread counts alone, so the
``lambda-*`` targets run on one pinned core with one thread and say so: their measured
latency is that of a full vCPU, and ``cpu_share`` gives the factor by which CPU-bound work
slows down at that memory size.

The ``intel-cpu-avx2`` and ``intel-cpu-avx512`` targets stand for x86 CPUs without VNNI on a
CPU that has it: they cap oneDNN's instruction set with its ``ONEDNN_MAX_CPU_ISA`` variable,
which OpenVINO's CPU plugin honours (onnxruntime's MLAS and llama.cpp do not, so only
OpenVINO rows run there). Capping only goes down: the host must have the capped-to set.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Any

from kdedge.errors import ConfigError

LAMBDA_FULL_VCPU_MB = 1769


@dataclass(frozen=True)
class Target:
    name: str
    summary: str
    backends: tuple[str, ...]  # backends that make sense on this target
    threads: int | None = None  # inference threads; None = the engine's default (all cores)
    cores: int | None = None  # pin the measuring process to this many cores
    memory_mb: int | None = None
    requires: str | None = None  # "darwin-arm64" | "cuda"
    emulation: str = ""  # said in every report that uses the target
    env: tuple[tuple[str, str], ...] = ()  # set in the measuring process before any engine
    isa: tuple[str, ...] | None = None  # CPU flags the target's kernels may use (None: all)

    @property
    def cpu_share(self) -> float:
        """Share of one vCPU that Lambda gives at this memory size (1.0 off Lambda)."""
        if self.memory_mb is None:
            return 1.0
        return min(1.0, self.memory_mb / LAMBDA_FULL_VCPU_MB)

    def limits(self) -> dict[str, Any]:
        """What every measuring job on this target carries: threads, pinned cores, env."""
        return {"threads": self.threads, "cores": self.cores, "env": dict(self.env)}

    def unavailable(self) -> str | None:
        """Why this target cannot be measured on this machine, or None."""
        if self.requires == "darwin-arm64" and not (
            platform.system() == "Darwin" and platform.machine() == "arm64"
        ):
            return "needs an Apple silicon Mac (CoreML provider / llama.cpp Metal); skipped here"
        if self.requires == "cuda":
            from kdedge.runtimes.selection import engine_installed

            if not engine_installed("onnxruntime"):
                return "needs onnxruntime"
            import onnxruntime

            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                return "needs a CUDA GPU and onnxruntime-gpu; skipped here"
        if self.isa:
            from kdedge.bench.host import cpu_flags

            missing = [f for f in self.isa if f not in cpu_flags()]
            if missing:
                return f"caps the instruction set at {'/'.join(self.isa)}; this CPU lacks " + (
                    ", ".join(missing)
                )
        if self.cores is not None and len(os.sched_getaffinity(0)) < self.cores:
            return f"needs {self.cores} free core(s)"
        return None


def _isa_capped(name: str, cap: str, isa: tuple[str, ...], parts: str) -> Target:
    return Target(
        name=name,
        summary=f"x86 CPU with {'/'.join(isa)} but no VNNI ({parts}), OpenVINO, all cores",
        backends=("openvino",),
        env=(("ONEDNN_MAX_CPU_ISA", cap),),
        isa=isa,
        emulation=(
            f"emulated: OpenVINO with oneDNN capped at {cap} (ONEDNN_MAX_CPU_ISA) on this CPU, "
            "all cores; only OpenVINO honours the cap, and INT8 outputs may differ slightly "
            "from an uncapped run"
        ),
    )


def _lambda(memory_mb: int) -> Target:
    share = min(1.0, memory_mb / LAMBDA_FULL_VCPU_MB)
    return Target(
        name=f"lambda-{memory_mb}",
        summary=f"AWS Lambda at {memory_mb} MB (~{share:.2f} vCPU)",
        backends=("onnxruntime", "llamacpp"),
        threads=1,
        cores=1,
        memory_mb=memory_mb,
        emulation=(
            f"emulated: one pinned core, one thread. Lambda gives {memory_mb} MB about "
            f"{share:.2f} of a vCPU, so CPU-bound latency there is about {1 / share:.1f}x "
            "the measured figure"
            if share < 1
            else "emulated: one pinned core, one thread (Lambda's one full vCPU at 1,769 MB)"
        ),
    )


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        _lambda(512),
        _lambda(1024),
        _lambda(LAMBDA_FULL_VCPU_MB),
        Target("intel-cpu", "Intel/x86 CPU with OpenVINO, all cores", ("openvino",)),
        _isa_capped(
            "intel-cpu-avx2", "AVX2", ("avx2",), "Haswell to Comet Lake client, AMD Zen 1-3"
        ),
        _isa_capped("intel-cpu-avx512", "AVX512_CORE", ("avx2", "avx512f"), "Skylake-SP Xeon"),
        Target(
            "apple-m",
            "Apple M2/M3 (CoreML provider or llama.cpp Metal)",
            ("onnxruntime", "llamacpp"),
            requires="darwin-arm64",
        ),
        Target(
            "cpu", "generic CPU, all cores, every backend", ("onnxruntime", "openvino", "llamacpp")
        ),
        Target(
            "cuda",
            "NVIDIA GPU through onnxruntime's CUDA provider",
            ("onnxruntime",),
            requires="cuda",
        ),
    )
}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigError(f"unknown target '{name}'; known: {', '.join(TARGETS)}") from None
