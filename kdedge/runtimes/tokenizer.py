"""Tokenization for the runtime with the ``tokenizers`` library alone (no transformers).

The bundle's ``tokenizer.json`` is the one transformers saved with the model, so ids match
training exactly; export checks that on its probe set.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kdedge.errors import DataError, ModelError


def _unencodable(texts: Sequence[object], exc: Exception) -> Exception:
    """The one-line DataError for the text that ``tokenizers`` refused with a TypeError (a
    non-string, or a lone surrogate, which is not valid Unicode); else ``exc`` itself."""
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            return DataError(f"text {i} is a {type(text).__name__}, not a string")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as bad:
            return DataError(
                f"text {i} holds a lone surrogate (\\u{ord(text[bad.start]):04x} at character "
                f"{bad.start}), which is not valid Unicode. Fix: send UTF-8 text"
            )
    return exc


def pad_ids(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad to the longest row: input_ids [B, L] and attention_mask [B, L], int64."""
    width = max(len(row) for row in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return input_ids, mask


def pad_pairs(
    ids: Sequence[Sequence[int]], types: Sequence[Sequence[int]], pad_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`pad_ids` plus token_type_ids [B, L] (0 in the padding) for pair encodings."""
    input_ids, mask = pad_ids(ids, pad_id)
    type_ids = np.zeros_like(input_ids)
    for i, row in enumerate(types):
        type_ids[i, : len(row)] = row
    return input_ids, mask, type_ids


class Tokenizer:
    """Encode texts into padded ``input_ids`` / ``attention_mask`` arrays (int64)."""

    def __init__(self, path: str | Path, max_length: int) -> None:
        from tokenizers import Tokenizer as _Tokenizer

        try:
            self._tok = _Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed files
            raise ModelError(f"cannot read tokenizer {path}: {exc}") from exc
        self._tok.no_padding()
        self._tok.enable_truncation(max_length)
        self.max_length = max_length
        pad = self._tok.token_to_id("[PAD]")
        self.pad_id = 0 if pad is None else pad

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, with special tokens, truncated to ``max_length``."""
        try:
            return [e.ids for e in self._tok.encode_batch(list(texts))]
        except TypeError as exc:
            raise _unencodable(texts, exc) from None

    def pad(self, ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        return pad_ids(ids, self.pad_id)

    def pair_ids(
        self, query: str, passages: Sequence[str]
    ) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids and segment ids of ``(query, passage)`` per passage, as a cross-encoder
        reads them: ``[CLS] query [SEP] passage [SEP]``, the longer side truncated first to
        ``max_length`` (transformers' ``truncation=True``)."""
        try:
            encodings = self._tok.encode_batch([(query, p) for p in passages])
        except TypeError as exc:
            raise _unencodable([query, *passages], exc) from None
        return [e.ids for e in encodings], [e.type_ids for e in encodings]

    def pairs(
        self, query: str, passages: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Padded input_ids, attention_mask and token_type_ids [B, L] for one query."""
        ids, types = self.pair_ids(query, passages)
        return pad_pairs(ids, types, self.pad_id)

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        if len(texts) == 1:  # the serving hot path: no batch encoder, no padding
            try:
                ids = np.array([self._tok.encode(texts[0]).ids], dtype=np.int64)
            except TypeError as exc:
                raise _unencodable(texts, exc) from None
            return ids, np.ones_like(ids)
        return self.pad(self.ids(texts))
