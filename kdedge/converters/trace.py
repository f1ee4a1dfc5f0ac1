"""The graph every classifier artifact exports: (input_ids, attention_mask) -> logits."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from kdedge.distill.models import Classifier, quiet_transformers

INPUTS = ("input_ids", "attention_mask")


class LogitsOnly(torch.nn.Module):
    """Wraps a transformers classifier so the traced graph has two int64 inputs and one
    float output; token_type_ids are all zero for single-text classification."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits  # [B, C]


def example_batch(clf: Classifier) -> tuple[torch.Tensor, torch.Tensor]:
    """Two texts of different lengths (batch 2 and length 9 are distinct, so neither axis is
    mistaken for a constant by the tracer)."""
    enc = clf.tokenizer(
        ["where is my order", "cancel it"],
        padding="max_length",
        max_length=9,
        truncation=True,
        return_tensors="pt",
    )
    return enc["input_ids"], enc["attention_mask"]


def numpy_batches(
    clf: Classifier, texts: Sequence[str], batch_size: int = 1
) -> Iterator[dict[str, np.ndarray]]:
    """Padded int64 feeds for calibration."""
    for start in range(0, len(texts), batch_size):
        enc = clf.tokenizer(
            list(texts[start : start + batch_size]),
            truncation=True,
            max_length=clf.max_length,
            padding=True,
            return_tensors="np",
        )
        yield {name: enc[name].astype(np.int64) for name in INPUTS}


@contextlib.contextmanager
def quiet_tracing() -> Iterator[None]:
    """Tracers, exporters and quantizers warn about internals a user cannot act on
    (deprecated tracer APIs, constant folding, optional torchvision ops) and some print
    progress on stdout, which the CLI owns (``--json``); keep all of that out."""
    # root: onnxruntime's quantizer logs advice there ("consider pre-processing")
    names = ("torch.onnx", "torch.export", "torch._dynamo", None)
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            quiet_transformers(),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
