"""Batched forward passes over texts: tokenization, length-sorted batches, logits out.

Tokens sit on the device (:class:`~kdedge.distill.batching.TokenTable`) and logits are
gathered there, so the host never waits on the device between batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from kdedge.distill.batching import TokenTable, device_batches, sorted_batches
from kdedge.distill.device import Placement, explain_device_errors
from kdedge.progress import Tracker, silent
from kdedge.runtimes.tokenizer import pad_ids


def encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated to ``max_length`` (no padding)."""
    if not texts:
        return []  # a fast tokenizer fails on an empty batch
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
    return enc["input_ids"]


def pad_batch(
    ids: Sequence[Sequence[int]], pad_id: int, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest row. Returns input_ids [B, L] and attention_mask [B, L]."""
    ids_np, mask_np = pad_ids(ids, pad_id)  # the runtime's padding, so both agree exactly
    input_ids, mask = torch.from_numpy(ids_np), torch.from_numpy(mask_np)
    if device is not None:
        input_ids, mask = (
            input_ids.to(device, non_blocking=True),
            mask.to(device, non_blocking=True),
        )
    return input_ids, mask


def predict_logits(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    placement: Placement,
    *,
    max_length: int,
    batch_size: int = 256,
    track: Tracker = silent,
    description: str = "predicting",
) -> np.ndarray:
    """Logits [N, C] as float32 numpy, rows in the order of ``texts``."""
    return logits_of_ids(
        model,
        encode(tokenizer, texts, max_length),
        tokenizer.pad_token_id,
        placement,
        batch_size=batch_size,
        track=track,
        description=description,
    )


@torch.inference_mode()
def logits_of_ids(
    model: Any,
    ids: Sequence[Sequence[int]],
    pad_id: int,
    placement: Placement,
    *,
    batch_size: int = 256,
    track: Tracker = silent,
    description: str = "predicting",
) -> np.ndarray:
    """Logits [N, C] of token-id rows, in length-sorted batches of ``batch_size``.

    Batches are cut from the rows sorted by length (a stable sort), so the same rows in
    the same order always meet the model in the same batches, whoever calls.
    """
    model.eval().to(placement.device)
    shape = (len(ids), model.config.num_labels)
    if not ids:
        return np.zeros(shape, dtype=np.float32)
    device = placement.device
    tokens = TokenTable(ids, pad_id, device)
    batches = sorted_batches(tokens.lengths, batch_size)
    logits_all = torch.empty(shape, dtype=torch.float32, device=device)
    with explain_device_errors(placement):
        indexes = device_batches(batches, device)
        for rows, index in track(
            zip(batches, indexes, strict=True), description, total=len(batches)
        ):
            input_ids, mask = tokens.batch(rows, index)
            with placement.autocast():
                logits = model(input_ids=input_ids, attention_mask=mask).logits
            logits_all.index_copy_(0, index, logits.float())  # no host sync per batch
    return logits_all.cpu().numpy()
