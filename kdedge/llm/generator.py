"""Greedy answers from a Hugging Face causal LM run by torch, for scoring against the gates."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from kdedge.distill import distributed
from kdedge.distill.device import Placement
from kdedge.llm.prompts import messages
from kdedge.progress import Tracker


class TorchGenerator:
    """Greedy batched generation with a Hugging Face causal LM (left padding)."""

    def __init__(self, model: Any, tokenizer: Any, placement: Placement, system: str) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.placement, self.system = placement, system

    @torch.inference_mode()
    def __call__(self, rows: list[dict[str, Any]], max_new_tokens: int) -> list[tuple[str, int]]:
        tok = self.tokenizer
        prompts = [
            tok.apply_chat_template(
                messages(r["question"], r.get("evidence") or (), self.system),
                add_generation_prompt=True,
                tokenize=True,
            )
            for r in rows
        ]
        width = max(map(len, prompts))
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        self.model.eval()
        with self.placement.autocast():
            out = self.model.generate(
                input_ids=ids.to(self.placement.device),
                attention_mask=mask.to(self.placement.device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=tok.eos_token_id,
            )
        results = []
        for row in out[:, width:].tolist():
            if tok.eos_token_id in row:
                row = row[: row.index(tok.eos_token_id) + 1]
            text = tok.decode(row, skip_special_tokens=True).strip()
            results.append((text, len(row)))
        return results


def generate_all(
    generator: Callable, rows: list[dict[str, Any]], batch: int, max_new: int, track: Tracker
) -> tuple[list[str], int, float]:
    """Answers to every row, with completion tokens (all processes) and wall seconds.

    Under ``torchrun`` / ``accelerate launch`` the batches are dealt out in turn: each rank
    answers its share and every rank gets all answers back in order. A prompt meets the
    model in the same batch with one process or eight, so the answers are the same.
    """
    procs = distributed.joined()
    start = time.perf_counter()
    chunks = [rows[i : i + batch] for i in range(0, len(rows), batch)]
    mine = distributed.shard_rows(range(len(chunks)), procs)
    answers, tokens = [], []
    for k in track(mine, "answering validation prompts", len(mine)):
        for text, n in generator(chunks[k], max_new):
            answers.append(text)
            tokens.append(n)
    if procs.distributed:
        texts = distributed.gather_rows(np.array(answers, dtype=object), "answering prompts")
        counts = distributed.gather_rows(np.array(tokens, dtype=np.int64), "answering prompts")
        every = [k for r in range(procs.world) for k in range(r, len(chunks), procs.world)]
        position = [i for k in every for i in range(k * batch, min(len(rows), (k + 1) * batch))]
        ordered: list[str] = [""] * len(rows)
        for i, text in zip(position, texts.tolist(), strict=True):
            ordered[i] = text
        answers, tokens = ordered, counts.tolist()
    return answers, int(sum(tokens)), time.perf_counter() - start
