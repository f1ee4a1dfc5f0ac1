"""The optimizer and learning-rate schedule every kdedge trainer uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from kdedge.distill.trainer import TrainConfig


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay off for biases and norms (fused where the device has it)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return adamw(groups, config.lr)


def adamw(params: Any, lr: float) -> torch.optim.AdamW:
    """AdamW with the fused kernel where the device has one.

    The fused kernel updates every parameter in one pass instead of one tensor at a time;
    a small student updates its whole embedding matrix every step, so this shows on CPU
    too (the "+fused" rung of ``benchmarks/train_speed.py``).
    """
    try:
        return torch.optim.AdamW(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):  # pragma: no cover - a device without the kernel
        return torch.optim.AdamW(params, lr=lr)


def lr_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float):
    """Linear warmup over ``warmup_ratio`` of the steps, then linear decay to zero."""
    warmup = max(1, int(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
