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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kdedge.distill.models import META_FILE
from kdedge.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from kdedge.distill.models import Classifier

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


def check_reranker_dir(model_dir: str | Path) -> Path:
    """Raise a one-line :class:`ModelError` unless ``model_dir`` is a local reranker."""
    path = Path(model_dir).expanduser()
    if not path.exists():
        raise ModelError(
            f"reranker directory {path} does not exist. Fix: pass a folder written by "
            "`kdedge rerank teach` / `kdedge rerank distill` (or a one-output cross-encoder "
            "saved with save_pretrained)"
        )
    if not path.is_dir():
        raise ModelError(f"{path} is a file; pass the model *directory* (it holds config.json)")
    config = _read_json(path / "config.json")
    if config is None:
        raise ModelError(f"{path} has no config.json: not a transformers model directory")
    meta = _read_json(path / META_FILE) or {}
    if meta.get("task", TASK) != TASK:
        raise ModelError(
            f"{path} is a {meta['task']!r} model, not a reranker (kdedge.json task); "
            "pass a model from `kdedge rerank teach` or `kdedge rerank distill`"
        )
    n = _num_labels(config)
    if n != 1:
        raise ModelError(
            f"{path} has {n} outputs; a reranker has one (a relevance score per "
            "(query, passage) pair). Fix: pass a cross-encoder, or build one with "
            "`kdedge rerank teach --base ENCODER`"
        )
    return path


def load_reranker(
    path: str | Path, *, max_length: int | None = None, eager_attention: bool = False
) -> Classifier:
    """Load a reranker (teacher or student) as a :class:`~kdedge.distill.models.Classifier`.

    ``max_length`` overrides the directory's; a checkpoint without ``kdedge.json`` gets
    ``max_length`` or :data:`DEFAULT_MAX_LENGTH` and the role ``teacher``.
    """
    from kdedge.data.labels import LabelSet
    from kdedge.distill.models import (
        model_source,
        quiet_transformers,
        read_meta,
        transformers_module,
    )

    path = check_reranker_dir(path)
    name, _ = model_source(path)  # checks the weights are there
    if max_length is not None and max_length < 8:
        raise ConfigError(f"max_length must be >= 8 tokens, got {max_length}")
    transformers = transformers_module()
    kwargs: dict[str, Any] = {"local_files_only": True}
    if eager_attention:
        kwargs["attn_implementation"] = "eager"
    with quiet_transformers():
        try:
            model = transformers.AutoModelForSequenceClassification.from_pretrained(name, **kwargs)
            tokenizer = transformers.AutoTokenizer.from_pretrained(name, local_files_only=True)
        except OSError as exc:
            raise ModelError(f"cannot load reranker from {name}: {exc}") from exc
    from kdedge.distill.models import Classifier

    meta = read_meta(path)
    if not meta:
        meta = {"task": TASK, "role": "teacher", "max_length": DEFAULT_MAX_LENGTH}
    meta.setdefault("task", TASK)
    meta.setdefault("max_length", DEFAULT_MAX_LENGTH)
    if max_length is not None:
        meta["max_length"] = int(max_length)
    return Classifier(model, tokenizer, LabelSet((RELEVANCE_LABEL,)), meta, path)


def reranker_from_encoder(
    base_dir: str | Path, *, max_length: int = DEFAULT_MAX_LENGTH, seed: int | None = None
) -> Classifier:
    """A base encoder (e.g. the bundled MiniLM) with a fresh one-logit head."""
    from kdedge.data.labels import LabelSet
    from kdedge.distill.models import load_encoder_for_classification

    if seed is not None:
        import torch

        torch.manual_seed(seed)  # the head is initialised on load
    clf = load_encoder_for_classification(base_dir, LabelSet((RELEVANCE_LABEL,)))
    clf.model.config.problem_type = None  # the losses are ours, not transformers' regression
    clf.meta.update(task=TASK, role="teacher", max_length=int(max_length))
    return clf


def save_reranker(clf: Classifier, out_dir: str | Path, **meta: Any) -> Path:
    """Write a reranker directory atomically (``task: rerank`` is always set)."""
    from kdedge.distill.models import save_classifier

    if clf.model.config.num_labels != 1:
        raise ModelError(f"a reranker has one output; this model has {clf.model.config.num_labels}")
    meta.setdefault("role", clf.meta.get("role", "student"))
    return save_classifier(clf, out_dir, **meta, task=TASK)


class PairTable:
    """Token ids of (query, passage) pairs kept on one device, batched like ``TokenTable``.

    ``token_type_ids`` travel with the ids when the tokenizer makes them (segment 0 =
    query, 1 = passage).
    """

    def __init__(
        self,
        tokenizer: Any,
        pairs: Sequence[tuple[str, str]],
        max_length: int,
        device: Any = "cpu",
    ) -> None:
        from kdedge.distill.batching import TokenTable

        if not pairs:
            raise ValueError("no pairs to tokenize")
        enc = tokenizer(
            [q for q, _ in pairs],
            [p for _, p in pairs],
            truncation=True,
            max_length=max_length,
            padding=False,
        )
        self.ids = TokenTable(enc["input_ids"], tokenizer.pad_token_id, device)
        types = enc.get("token_type_ids")
        self.types = TokenTable(types, 0, device) if types is not None else None
        self.lengths = self.ids.lengths

    def batch(self, rows: Sequence[int], index: Any = None) -> dict[str, Any]:
        """Model keyword inputs for ``rows``: input_ids, attention_mask[, token_type_ids]."""
        input_ids, mask = self.ids.batch(rows, index)
        inputs = {"input_ids": input_ids, "attention_mask": mask}
        if self.types is not None:
            inputs["token_type_ids"] = self.types.batch(rows, index)[0]
        return inputs


def _device(device: Any) -> Any:
    import torch

    if hasattr(device, "device") and hasattr(device, "autocast"):  # a Placement
        return device.device
    return torch.device(device)


def score_pairs(
    model: Any,
    tokenizer: Any,
    query_passage_pairs: Sequence[tuple[str, str]],
    max_length: int,
    batch_size: int = 64,
    device: Any = "cpu",
    *,
    autocast: Any = None,
) -> np.ndarray:
    """Raw relevance logits [N] (float32) for (query, passage) pairs, in input order.

    Pairs are batched by token length (little padding) under ``torch.inference_mode``.
    ``device`` is a torch device, its name, or a :class:`~kdedge.distill.device.Placement`
    (whose autocast is then used).
    """
    if model.config.num_labels != 1:
        raise ModelError(f"a reranker has one output; this model has {model.config.num_labels}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if not query_passage_pairs:
        return np.zeros(0, dtype=np.float32)
    torch_device = _device(device)
    table = PairTable(tokenizer, query_passage_pairs, max_length, torch_device)
    return score_table(model, table, batch_size, device, autocast=autocast)


def score_table(
    model: Any,
    table: PairTable,
    batch_size: int,
    device: Any = "cpu",
    *,
    autocast: Any = None,
    rows: Sequence[int] | None = None,
) -> np.ndarray:
    """Raw logits [N] for ``rows`` of a :class:`PairTable` (default: every row), in order.

    Batches are cut from the rows sorted by length (a stable sort), so the same rows in the
    same order always meet the model in the same batches, whoever calls.
    """
    import contextlib

    import torch

    from kdedge.distill.batching import device_batches, sorted_batches

    if autocast is None:
        autocast = device.autocast if hasattr(device, "autocast") else contextlib.nullcontext
    torch_device = _device(device)
    wanted = range(len(table.lengths)) if rows is None else [int(i) for i in rows]
    was_training = model.training
    model.eval().to(torch_device)
    with torch.inference_mode():
        order = sorted_batches([table.lengths[i] for i in wanted], batch_size)
        batches = [[wanted[j] for j in positions] for positions in order]
        out = torch.zeros(len(table.lengths), dtype=torch.float32, device=torch_device)
        for batch, index in zip(batches, device_batches(batches, torch_device), strict=True):
            with autocast():
                logits = model(**table.batch(batch, index)).logits
            out.index_copy_(0, index, logits[:, 0].float())
    model.train(was_training)
    scores = out.cpu().numpy()
    return scores if rows is None else scores[np.asarray(wanted, dtype=np.int64)]


def score_groups(
    clf: Classifier, groups: Sequence[Any], *, batch_size: int = 64, device: Any = "cpu"
) -> list[np.ndarray]:
    """Scores per query group (one array per group, candidates in file order)."""
    pairs = [(g.query, c.text) for g in groups for c in g.candidates]
    flat = score_pairs(clf.model, clf.tokenizer, pairs, clf.max_length, batch_size, device)
    return split_by_groups(flat, groups)


def split_by_groups(flat: np.ndarray, groups: Sequence[Any]) -> list[np.ndarray]:
    """Cut a flat score vector into one array per group."""
    sizes = [len(g.candidates) for g in groups]
    if not sizes:
        return []
    if sum(sizes) != len(flat):
        raise ConfigError(f"{len(flat)} scores for {sum(sizes)} candidates")
    return list(np.split(np.asarray(flat, dtype=np.float32), np.cumsum(sizes)[:-1]))
