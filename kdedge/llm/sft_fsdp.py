"""LoRA under FSDP: the checks, whole-weight views and adapter gathering it needs.

With DDP or one process every helper here is a no-op or a plain peft call; under
``accelerate launch`` with FSDP the trained parameters are shards, so generation needs the
whole weights gathered and the adapter state is collected on rank 0.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from kdedge.distill import distributed
from kdedge.errors import ConfigError


def fsdp_active() -> bool:
    """True when ``accelerate launch`` asked for FSDP (its config or ``--use_fsdp``)."""
    from accelerate.utils import DistributedType

    acc = distributed.accelerator()
    return acc is not None and acc.distributed_type == DistributedType.FSDP


def check_fsdp(resume: bool) -> None:
    acc = distributed.accelerator()
    if acc.is_fsdp2:
        raise ConfigError(
            "kdedge llm distill supports FSDP version 1 (accelerate's prepare_model); launch "
            "with --fsdp_version 1, or without FSDP (DDP replicates the frozen base)"
        )
    if not acc.state.fsdp_plugin.use_orig_params:
        raise ConfigError(
            "LoRA under FSDP trains a few parameters among frozen ones, which needs "
            "use_orig_params: launch with accelerate launch --fsdp_use_orig_params true"
        )
    if resume:  # the saved optimizer state would be rank 0's shard only
        raise ConfigError(
            "--resume is not supported under FSDP yet; resume the run with DDP (accelerate "
            "launch without FSDP) or start it again with --overwrite"
        )


def full_weights(trained: torch.nn.Module) -> Any:
    """A context in which the wrapped model's own modules hold whole weights (FSDP
    gathers them on every rank, read-only); a no-op with DDP or one process."""
    if not fsdp_active():
        return contextlib.nullcontext()
    from torch.distributed.fsdp import FullyShardedDataParallel

    return FullyShardedDataParallel.summon_full_params(trained, writeback=False)


def adapter_state(trained: torch.nn.Module, model: Any) -> dict[str, torch.Tensor]:
    """The whole LoRA adapter (rank 0 gets all of it under FSDP; call on every rank)."""
    from peft import get_peft_model_state_dict

    if not fsdp_active():
        return get_peft_model_state_dict(model)
    whole = distributed.accelerator().get_state_dict(trained)  # a collective; full on rank 0
    prefix = "model."  # AnswerLoss holds the peft model as .model
    whole = {k.removeprefix(prefix): v for k, v in whole.items()}
    return get_peft_model_state_dict(model, state_dict=whole) if whole else {}
