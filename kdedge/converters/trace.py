"""The graph every classifier artifact exports: (input_ids, attention_mask) -> logits, or,
for a cross-encoder reading (query, passage) pairs, (input_ids, attention_mask,
token_type_ids) -> scores."""

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
PAIR_INPUTS = (*INPUTS, "token_type_ids")
"""A cross-encoder's inputs: segment ids tell the query (0) from the passage (1)."""

Text = str | tuple[str, str]
"""One input: a text, or a (query, passage) pair for a cross-encoder."""


class LogitsOnly(torch.nn.Module):
    """Wraps a transformers classifier so the traced graph has two int64 inputs and one
    float output; token_type_ids are all zero for single-text classification."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits  # [B, C]


class PairLogits(torch.nn.Module):
    """:class:`LogitsOnly` for a cross-encoder: three int64 inputs, one score column."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        return out.logits  # [B, 1]


def graph_of(model: Any, inputs: Sequence[str]) -> torch.nn.Module:
    """The module to trace for ``inputs`` (:data:`INPUTS` or :data:`PAIR_INPUTS`)."""
    return PairLogits(model) if tuple(inputs) == PAIR_INPUTS else LogitsOnly(model)


def encode(
    clf: Classifier, texts: Sequence[Text], *, return_tensors: str, **kwargs: Any
) -> dict[str, Any]:
    """Tokenize texts, or (query, passage) pairs, as the model was trained to read them."""
    if texts and isinstance(texts[0], tuple):
        first = [t[0] for t in texts]
        second = [t[1] for t in texts]
        return clf.tokenizer(first, second, return_tensors=return_tensors, **kwargs)
    return clf.tokenizer(list(texts), return_tensors=return_tensors, **kwargs)


def example_batch(clf: Classifier, inputs: Sequence[str] = INPUTS) -> tuple[torch.Tensor, ...]:
    """Two inputs of different lengths (batch 2 and length 9 are distinct, so neither axis is
    mistaken for a constant by the tracer)."""
    pairs = tuple(inputs) == PAIR_INPUTS
    texts: list[Text] = (
        [("where is my order", "track it"), ("cancel", "it now")]
        if pairs
        else ["where is my order", "cancel it"]
    )
    enc = encode(
        clf, texts, padding="max_length", max_length=9, truncation=True, return_tensors="pt"
    )
    return tuple(enc[name] for name in inputs)


def numpy_batches(
    clf: Classifier, texts: Sequence[Text], batch_size: int = 1, inputs: Sequence[str] = INPUTS
) -> Iterator[dict[str, np.ndarray]]:
    """Padded int64 feeds for calibration."""
    for start in range(0, len(texts), batch_size):
        enc = encode(
            clf,
            list(texts[start : start + batch_size]),
            truncation=True,
            max_length=clf.max_length,
            padding=True,
            return_tensors="np",
        )
        yield {name: enc[name].astype(np.int64) for name in inputs}


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
