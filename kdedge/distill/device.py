"""Pick the compute device and numeric precision, with errors that say what to do."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from kdedge.distill import distributed
from kdedge.errors import ConfigError, DeviceError

DEVICES = ("auto", "cuda", "mps", "cpu")
PRECISIONS = ("auto", "bf16", "fp32")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


@dataclass(frozen=True)
class Placement:
    """Where and in which precision a job runs."""

    device: torch.device
    precision: str  # "bf16" (autocast) or "fp32"

    @property
    def name(self) -> str:
        return self.device.type

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA/CPU when asked for; a no-op context otherwise."""
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def resolve(device: str = "auto", precision: str = "auto") -> Placement:
    """Resolve ``auto`` to CUDA, then MPS, then CPU; check that an explicit choice exists.

    Under a multi-process launcher this joins the process group and picks this rank's
    device (see :mod:`kdedge.distill.distributed`). Precision ``auto`` is bf16 on CUDA
    GPUs that support it and fp32 elsewhere (MPS bf16 autocast is incomplete in many
    torch builds, and CPU bf16 is slow without AMX).
    """
    if device not in DEVICES:
        raise ConfigError(f"unknown device '{device}'; choose one of {', '.join(DEVICES)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}")
    launched = distributed.launched()
    if device == "auto":
        mps = _mps_available() and not launched  # torch.distributed has no MPS backend
        device = "cuda" if torch.cuda.is_available() else "mps" if mps else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            "--device cuda was requested but torch sees no CUDA GPU "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}). "
            "Fix: install a CUDA build of torch, or use --device auto / cpu"
        )
    if device == "mps" and not _mps_available():
        raise DeviceError(
            "--device mps was requested but Apple MPS is not available here "
            "(it needs Apple silicon and macOS 12.3+). Fix: use --device auto / cpu"
        )
    if precision == "auto":
        precision = "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "bf16" and device == "mps":
        raise DeviceError("bf16 autocast is not supported on MPS by kdedge; use --precision fp32")
    # Under torchrun / accelerate launch, each rank gets its own device (cuda:LOCAL_RANK).
    return Placement(distributed.start(device) if launched else torch.device(device), precision)


@contextlib.contextmanager
def explain_device_errors(placement: Placement) -> Iterator[None]:
    """Turn the opaque errors of unsupported MPS kernels into an actionable message."""
    try:
        yield
    except NotImplementedError as exc:
        if placement.name != "mps":
            raise
        raise DeviceError(
            f"an operation is not implemented on Apple MPS ({exc}). Fix: set "
            "PYTORCH_ENABLE_MPS_FALLBACK=1 to run it on the CPU, or use --device cpu"
        ) from exc
