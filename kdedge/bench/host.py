"""The machine a benchmark ran on: every report records it, because figures from different
hosts (or from one noisy host at different times) are not comparable."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Any

# CPU features that decide how fast INT8 and BF16 kernels can be
FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
    "amx_bf16",
    "neon",
    "asimddp",  # Arm dot product (sdot/udot), the Arm counterpart of VNNI
)
PACKAGES = (
    "kdedge",
    "numpy",
    "onnxruntime",
    "openvino",
    "llama_cpp_python",
    "torch",
    "transformers",
    "optimum",
)


def describe() -> dict[str, Any]:
    cpu, flags = _cpuinfo()
    info: dict[str, Any] = {
        "system": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu": cpu or platform.processor() or "unknown",
        "cpu_flags": [f for f in FLAGS if f in flags],
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "packages": {},
        "lambda": bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")),
    }
    for name in PACKAGES:
        try:
            info["packages"][name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            continue
    return info


def cpu_flags() -> set[str]:
    """This CPU's feature flags as /proc/cpuinfo names them (empty where unreadable)."""
    return _cpuinfo()[1]


def _cpuinfo() -> tuple[str, set[str]]:
    cpu, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not cpu:
                    cpu = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        if platform.system() == "Darwin" and platform.machine() == "arm64":
            flags = {"neon"}
    return cpu, flags
