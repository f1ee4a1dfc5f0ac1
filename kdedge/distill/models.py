"""Model directories: load and save classifiers with their labels and kdedge metadata.

A kdedge model directory is a transformers ``save_pretrained`` directory (safetensors
weights, config, tokenizer) plus ``labels.json`` and ``kdedge.json`` (role, max length,
calibration temperature, provenance). Directories are written atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdedge import __version__
from kdedge.atomic import atomic_dir
from kdedge.data.labels import LabelSet
from kdedge.errors import ModelError
from kdedge.extras import require

META_FILE = "kdedge.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class Classifier:
    """A sequence classifier with its tokenizer, labels and metadata."""

    model: Any  # transformers PreTrainedModel
    tokenizer: Any  # transformers PreTrainedTokenizerFast
    labels: LabelSet
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def max_length(self) -> int:
        return int(self.meta.get("max_length", 64))

    @property
    def temperature(self) -> float:
        return float(self.meta.get("temperature", 1.0))


def transformers_module() -> Any:
    """transformers, or a MissingDependencyError naming the ``train`` extra."""
    return require("transformers", "train", "Loading and training models")


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' expected notices (a fresh head is 'newly initialized', SDPA
    falling back to eager attention) while keeping real errors."""
    logging = transformers_module().logging
    previous = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(previous)


def model_source(path: str | Path) -> tuple[str, bool]:
    """Return (name, local_only). Local directories never touch the network."""
    p = Path(path).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ModelError(f"{p} is a file; pass the model *directory* (it holds config.json)")
        if not (p / "config.json").is_file():
            raise ModelError(
                f"{p} has no config.json: not a transformers model directory. "
                "Fix: pass a directory written by save_pretrained or by kdedge"
            )
        if not any((p / name).is_file() for name in WEIGHT_FILES):
            raise ModelError(f"{p} has no weights ({' or '.join(WEIGHT_FILES[:2])})")
        return str(p), True
    if _HUB_ID.match(str(path)) and not str(path).startswith((".", "/")):
        return str(path), False  # an explicit hub id: downloading is what the user asked for
    raise ModelError(
        f"model directory {p} does not exist. Fix: pass a local folder written by `kdedge teach`"
        " / `kdedge distill` or by save_pretrained (or 'minilm' for the bundled encoder)"
    )


def read_meta(path: str | Path) -> dict[str, Any]:
    meta_path = Path(path) / META_FILE
    if not meta_path.is_file():
        return {}
    try:
        return json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"{meta_path} is corrupted ({exc}); re-run the stage that wrote it"
        ) from exc


def _labels_from_config(config: Any) -> LabelSet | None:
    id2label = getattr(config, "id2label", None) or {}
    names = [id2label[i] for i in sorted(id2label)]
    if not names or all(re.fullmatch(r"LABEL_\d+", n) for n in names):
        return None
    return LabelSet(tuple(names))


@quiet_transformers()
def load_classifier(path: str | Path, *, eager_attention: bool = False) -> Classifier:
    """Load a sequence classifier (teacher or student) from a local directory.

    ``eager_attention`` selects the attention implementation that can return attention
    maps (needed by feature distillation).
    """
    transformers = transformers_module()
    name, local = model_source(path)
    kwargs: dict[str, Any] = {"local_files_only": local}
    if eager_attention:
        kwargs["attn_implementation"] = "eager"
    try:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(name, **kwargs)
        tokenizer = transformers.AutoTokenizer.from_pretrained(name, local_files_only=local)
    except OSError as exc:
        raise ModelError(f"cannot load model from {name}: {exc}") from exc
    labels_file = Path(name) / "labels.json"
    labels = LabelSet.load(name) if labels_file.is_file() else _labels_from_config(model.config)
    if labels is None:
        raise ModelError(
            f"{name} has no label names (no labels.json, generic id2label): it is not a "
            "fine-tuned classifier. Fix: train one with `kdedge teach` first"
        )
    if len(labels) != model.config.num_labels:
        raise ModelError(
            f"{name}: labels.json has {len(labels)} labels but the model has "
            f"{model.config.num_labels} outputs; the directory is inconsistent"
        )
    meta = read_meta(name) if local else {}
    return Classifier(model, tokenizer, labels, meta, Path(name) if local else None)


@quiet_transformers()
def load_encoder_for_classification(path: str | Path, labels: LabelSet) -> Classifier:
    """Load a base encoder (e.g. all-MiniLM-L6-v2) with a fresh head for ``labels``."""
    transformers = transformers_module()
    name, local = model_source(path)
    try:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            name,
            local_files_only=local,
            num_labels=len(labels),
            id2label=dict(enumerate(labels.names)),
            label2id={n: i for i, n in enumerate(labels.names)},
            ignore_mismatched_sizes=True,
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(name, local_files_only=local)
    except OSError as exc:
        raise ModelError(f"cannot load base model from {name}: {exc}") from exc
    return Classifier(model, tokenizer, labels, {"base_model": str(name)}, None)


def save_classifier(clf: Classifier, out_dir: str | Path, **meta: Any) -> Path:
    """Write model, tokenizer, labels.json and kdedge.json atomically; returns the directory."""
    out_dir = Path(out_dir)
    clf.model.config.id2label = dict(enumerate(clf.labels.names))
    clf.model.config.label2id = {n: i for i, n in enumerate(clf.labels.names)}
    clf.meta = {**clf.meta, **meta, "kdedge_version": __version__, "num_labels": len(clf.labels)}
    with atomic_dir(out_dir) as tmp:
        clf.model.save_pretrained(tmp, safe_serialization=True)
        clf.tokenizer.save_pretrained(tmp)
        clf.labels.save(tmp)
        (tmp / META_FILE).write_text(json.dumps(clf.meta, indent=2, default=str) + "\n")
    clf.path = out_dir
    return out_dir


def update_meta(path: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into a model directory's kdedge.json (atomic rewrite)."""
    from kdedge.atomic import atomic_write_text

    meta = {**read_meta(path), **fields}
    atomic_write_text(Path(path) / META_FILE, json.dumps(meta, indent=2, default=str) + "\n")
    return meta


def fingerprint(path: str | Path) -> str:
    """sha256 over config and weight files: identifies a teacher for the label cache."""
    p = Path(path)
    digest = hashlib.sha256()
    for name in ("config.json", *WEIGHT_FILES):
        f = p / name
        if f.is_file():
            digest.update(name.encode())
            with f.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of the tokenizer's serialized form (vocab, normalizer, special tokens)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = (
        backend.to_str()
        if backend is not None
        else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    )
    return hashlib.sha256(text.encode()).hexdigest()


def parameter_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def size_on_disk(path: str | Path) -> int:
    """Bytes of the weight files of a model directory."""
    p = Path(path)
    return sum((p / n).stat().st_size for n in WEIGHT_FILES if (p / n).is_file())
