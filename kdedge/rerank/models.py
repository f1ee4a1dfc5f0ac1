"""Reranker model directories: a cross-encoder with one output, scored on (query, passage).

A rerank model directory is an ordinary Hugging Face ``AutoModelForSequenceClassification``
directory with **one output** (``num_labels = 1``), its tokenizer, ``labels.json`` holding
the single label ``"relevance"`` (so :func:`kdedge.distill.models.load_classifier` loads it
too) and ``kdedge.json`` with at least ``{"task": "rerank", "role": "teacher" | "student",
"max_length": N}``; trainers add provenance, ``best_epoch``, ``promotable`` and, when fitted,
``score_threshold`` (the top-1 score below which the top candidate is usually not relevant).

Inputs are pairs, ``tokenizer(query, passage, truncation=True, max_length=N)``: longest-first
truncation, ``token_type_ids`` 0 for the query segment and 1 for the passage where the model
has them. The score is the raw logit (no sigmoid).

Any local one-output sequence-classification checkpoint (e.g. a cross-encoder from the hub,
saved with ``save_pretrained``) can be a teacher: without ``kdedge.json`` it counts as a
reranker when ``config.json`` has one label, and its maximum length is asked for (default
:data:`DEFAULT_MAX_LENGTH`).

:func:`is_reranker` reads JSON only; everything else imports torch lazily.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kdedge.distill.models import META_FILE
from kdedge.errors import ModelError

TASK = "rerank"
RELEVANCE_LABEL = "relevance"
DEFAULT_MAX_LENGTH = 256


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path} is corrupted ({exc}); re-run the stage that wrote it") from exc
    return data if isinstance(data, dict) else None


def _num_labels(config: dict[str, Any]) -> int:
    """``num_labels`` as transformers derives it from a saved config.json."""
    if config.get("id2label"):
        return len(config["id2label"])
    return int(config.get("num_labels", 2))  # transformers' default is 2


def is_reranker(model_dir: str | Path) -> bool:
    """True when ``model_dir`` holds a reranker (cheap: reads JSON, imports no torch).

    ``kdedge.json``'s ``task`` decides when it is present; otherwise a checkpoint with one
    output (``config.json``) counts as a reranker.
    """
    path = Path(model_dir)
    meta = _read_json(path / META_FILE) or {}
    if "task" in meta:
        return meta["task"] == TASK
    config = _read_json(path / "config.json")
    return config is not None and _num_labels(config) == 1
