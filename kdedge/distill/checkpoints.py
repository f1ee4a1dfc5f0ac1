"""Checkpoints of a training run: weights as safetensors, and the resumable last state.

A run directory holds ``checkpoints/best`` (the selected epoch's weights) and
``checkpoints/last`` (weights, optimizer, scheduler, history), each written to a temp
directory and renamed, so a kill never leaves half a checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from kdedge.atomic import atomic_dir

CHECKPOINTS = "checkpoints"


def save_weights(directory: Path, state: dict[str, torch.Tensor]) -> None:
    """Write ``state`` as ``directory/model.safetensors`` (``directory`` is a temp dir)."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(directory / "model.safetensors"))


def write_weights(directory: Path, state: dict[str, torch.Tensor]) -> None:
    """:func:`save_weights` into ``directory``, atomically (a temp dir, then a rename)."""
    with atomic_dir(directory) as tmp:
        save_weights(tmp, state)


def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """The ``model.safetensors`` of a checkpoint directory."""
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


def read_weights_or_none(directory: Path) -> dict[str, torch.Tensor] | None:
    """:func:`read_weights`, or None where the directory holds no weights."""
    return read_weights(directory) if (directory / "model.safetensors").is_file() else None


def save_state(
    ckpt_dir, model, optimizer, scheduler, epoch, history, best_epoch, best_score
) -> None:
    """Write ``ckpt_dir/last``: the weights, optimizer, scheduler and the selection so far,
    so a killed run resumes after its last finished epoch."""
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    with atomic_dir(ckpt_dir / "last") as tmp:
        save_weights(tmp, state)
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "history": history,
                "best_epoch": best_epoch,
                "best_score": best_score,
            },
            tmp / "state.pt",
        )


def load_state(ckpt_dir, model, optimizer, scheduler) -> dict[str, Any]:
    """Restore the last finished epoch into model, optimizer and scheduler; its record."""
    last = ckpt_dir / "last"
    model.load_state_dict(read_weights(last))
    state = torch.load(last / "state.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return state
