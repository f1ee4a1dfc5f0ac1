"""The answer-only, row-weighted SFT loss and the batches it is computed on.

A row is encoded as the chat prompt followed by the answer, with the prompt tokens masked
from the loss; batches group rows of similar length; each row's loss is its mean token
cross-entropy, weighted by the row's weight.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch

from kdedge.errors import ModelError
from kdedge.llm.prompts import messages
from kdedge.llm.rows import TrainRow


def encode(tokenizer: Any, row: TrainRow, system: str, max_length: int) -> tuple[list, list] | None:
    """(input_ids, labels) with the prompt masked; ``None`` when the row does not fit."""
    chat = messages(row.question, row.evidence, system)
    prompt = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
    full = tokenizer.apply_chat_template(
        [*chat, {"role": "assistant", "content": row.answer}], tokenize=True
    )
    if list(full[: len(prompt)]) != list(prompt):
        raise ModelError(
            "the tokenizer's chat template does not extend the prompt with the answer; "
            "kdedge cannot mask the prompt tokens for this template"
        )
    # Train up to and including the end-of-turn token; drop what a template adds after it.
    eos = tokenizer.eos_token_id
    end = len(full)
    if eos in full[len(prompt) :]:
        end = len(prompt) + list(full[len(prompt) :]).index(eos) + 1
    full = list(full[:end])
    if len(full) > max_length:
        return None
    return full, [-100] * len(prompt) + full[len(prompt) :]


def length_batches(
    lengths: Sequence[int], size: int, rng: random.Random, *, min_rows: int = 1
) -> list[list[int]]:
    """Shuffled batches of similar length (less padding than random batches).

    A chunk's last batch shorter than ``min_rows`` (the number of processes sharing each
    batch) joins the batch before it.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = size * 32
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lengths.__getitem__)
        cut = [part[i : i + size] for i in range(0, len(part), size)]
        if len(cut) > 1 and len(cut[-1]) < min_rows:
            cut[-2].extend(cut.pop())
        batches += cut
    rng.shuffle(batches)
    return batches


def collate(items: list[tuple[list, list]], pad_id: int, device: torch.device) -> dict:
    """A padded batch on ``device``: ``input_ids``, ``labels`` (-100 past a row) and ``mask``."""
    width = max(len(ids) for ids, _ in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for i, (x, y) in enumerate(items):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids.to(device), "labels": labels.to(device), "mask": mask.to(device)}


def _per_row(token_loss: torch.Tensor, rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """Mean token loss of each row from flat per-token losses and their row indices."""
    total = torch.zeros(n_rows, device=token_loss.device).index_add_(0, rows, token_loss)
    count = torch.zeros(n_rows, device=token_loss.device).index_add_(
        0, rows, torch.ones_like(token_loss)
    )
    return total / count.clamp(min=1)


def weighted_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> tuple:
    """Per-row mean token cross-entropy, weighted; returns (sum of w * loss, mean loss)."""
    targets = labels[:, 1:]
    keep = targets != -100
    token = torch.nn.functional.cross_entropy(
        logits[:, :-1][keep].float(), targets[keep], reduction="none"
    )
    per_row = _per_row(token, keep.nonzero()[:, 0], labels.size(0))
    return (per_row * weights).sum(), per_row.mean()


def answer_loss(model: Any, batch: dict[str, torch.Tensor], weights: torch.Tensor) -> tuple:
    """:func:`weighted_loss` computing vocabulary logits only where an answer token is
    predicted. The output projection over a 49k vocabulary is a large share of a small
    model's work, and answer tokens are a fraction of each sequence."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = base.get_decoder()(
        input_ids=batch["input_ids"], attention_mask=batch["mask"]
    ).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != -100
    logits = base.get_output_embeddings()(hidden[:, :-1][keep]).float()
    token = torch.nn.functional.cross_entropy(logits, targets[keep], reduction="none")
    per_row = _per_row(token, keep.nonzero()[:, 0], targets.size(0))
    return (per_row * weights).sum(), per_row.mean()


class AnswerLoss(torch.nn.Module):
    """:func:`answer_loss` as a module, so DDP / FSDP see the forward pass they sync on.

    :func:`answer_loss` calls the decoder and the output projection directly rather than
    the model's ``forward``; wrapping it here lets ``accelerate.prepare_model`` wrap this
    module instead, so gradient sync (or FSDP's all-gathers) runs with it.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        # FSDP's transformer auto-wrap policy reads the model's block classes from here.
        self._no_split_modules = getattr(model, "_no_split_modules", None)

    def forward(self, batch: dict[str, torch.Tensor], weights: torch.Tensor) -> tuple:
        return answer_loss(self.model, batch, weights)
