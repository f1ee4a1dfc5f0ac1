"""How close a training or labeling loop gets to the hardware: FLOPs per step against a
matrix-multiply ceiling measured on the same device.

FLOPs are counted by torch's own ``FlopCounterMode`` (matrix multiplies and attention, the
work a matrix unit does) on real batches, so padding counts as the work it costs. The
ceiling is the best of a few large square matmuls in the dtype the loop computes in
(bf16 on CUDA, fp32 on CPU): the fraction is achieved FLOP/s over that.
"""

from __future__ import annotations

import time
from typing import Any

import torch


def step_flops(
    model: Any, input_ids: torch.Tensor, mask: torch.Tensor, *, backward: bool = True
) -> int:
    """Matrix FLOPs of one forward (and backward) pass on this batch."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        if backward:
            model(input_ids=input_ids, attention_mask=mask).logits.float().sum().backward()
        else:
            with torch.no_grad():
                model(input_ids=input_ids, attention_mask=mask)
    if backward:
        model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":  # pragma: no cover - Apple only
        torch.mps.synchronize()


def matmul_ceiling(
    device: torch.device | str, dtype: torch.dtype, *, size: int | None = None, repeats: int = 10
) -> float:
    """Best measured FLOP/s of ``size``-square matmuls (8192 on CUDA, 1024 elsewhere)."""
    device = torch.device(device)
    n = size or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best
