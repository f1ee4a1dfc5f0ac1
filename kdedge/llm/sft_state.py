"""What a LoRA SFT run leaves after each epoch, so a killed run resumes where it stopped.

``out_dir/.kdedge-work`` holds one adapter per finished epoch and a state file (optimizer,
scheduler, history, base scores) written after it, so the state never points at an adapter
that is not there. The state is read with ``weights_only=True``: a damaged or foreign file
is an error that names it, never unpickled code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from kdedge.atomic import atomic_write, atomic_write_text
from kdedge.errors import ModelError

WORK_DIR = ".kdedge-work"
STATE_FILE = "state.pt"


def save_epoch(
    work: Path,
    epoch: int,
    adapter: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    history: list[dict[str, Any]],
    baseline: dict[str, Any] | None,
) -> None:
    """Leave what a resumed run needs: this epoch's adapter, then the optimizer and history
    (written last, so a state file always points at adapters that exist)."""
    from safetensors.torch import save

    work.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in adapter.items()}
    with atomic_write(work / f"adapter-epoch{epoch}.safetensors", "wb") as handle:
        handle.write(save(tensors))
    state = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": history,
        "baseline": baseline,
    }
    with atomic_write(work / STATE_FILE, "wb") as handle:
        torch.save(state, handle)
    atomic_write_text(work / "history.json", json.dumps(history, indent=2) + "\n")


def read_state(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file: say which, never unpickle arbitrary objects
        raise ModelError(f"{path} cannot be read ({exc}); pass --overwrite to start again") from exc


def read_adapter(work: Path, epoch: int) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = work / f"adapter-epoch{epoch}.safetensors"
    if not path.is_file():
        raise ModelError(f"{path} is missing; the run cannot be resumed. Pass --overwrite")
    return load_file(str(path))
