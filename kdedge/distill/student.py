"""Build a student from its teacher by keeping a subset of the transformer layers.

This is DistilBERT-style initialisation: the student inherits the teacher's embeddings,
head and the layers named by a *layer map*, so it starts close to the teacher instead of
from scratch. It works for any encoder whose layers sit in one ``nn.ModuleList`` of
``config.num_hidden_layers`` blocks (BERT, RoBERTa, ELECTRA, DistilBERT, MiniLM, ...).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from torch import nn

from kdedge.distill.models import Classifier
from kdedge.errors import ConfigError, ModelError


def default_layer_map(teacher_layers: int, student_layers: int) -> list[int]:
    """Evenly spaced teacher layers, starting at the first: 6 -> 3 gives [0, 2, 4]."""
    if not 0 < student_layers <= teacher_layers:
        raise ConfigError(
            f"a student needs between 1 and {teacher_layers} layers (the teacher's count), "
            f"got {student_layers}"
        )
    return [i * teacher_layers // student_layers for i in range(student_layers)]


def find_layer_list(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """Return (parent, attribute, layers) for the encoder's block list."""
    n = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layers", None)
    for module in model.modules():
        for attr, child in module.named_children():
            if isinstance(child, nn.ModuleList) and len(child) == n:
                return module, attr, child
    raise ModelError(
        f"cannot find the {n} transformer layers of {type(model).__name__}; "
        "build the student from a pretrained checkpoint instead (--student-model)"
    )


def validate_layer_map(layer_map: Sequence[int], teacher_layers: int) -> list[int]:
    layer_map = [int(i) for i in layer_map]
    bad = [i for i in layer_map if not 0 <= i < teacher_layers]
    if not layer_map or bad:
        raise ConfigError(
            f"layer map {layer_map} must name teacher layers in 0..{teacher_layers - 1}"
            + (f"; out of range: {bad}" if bad else "")
        )
    if sorted(set(layer_map)) != layer_map:
        raise ConfigError(f"layer map {layer_map} must be strictly increasing")
    return layer_map


def student_from_teacher(teacher: Classifier, layer_map: Sequence[int]) -> Classifier:
    """Copy ``teacher`` and keep only the layers in ``layer_map``."""
    model = copy.deepcopy(teacher.model)
    parent, attr, layers = find_layer_list(model)
    layer_map = validate_layer_map(layer_map, len(layers))
    setattr(parent, attr, nn.ModuleList([layers[i] for i in layer_map]))
    for key in ("num_hidden_layers", "n_layers"):
        if hasattr(model.config, key):
            setattr(model.config, key, len(layer_map))
    _renumber_layers(model)
    meta: dict[str, Any] = {
        "role": "student",
        "layer_map": layer_map,
        "teacher_layers": len(layers),
        "max_length": teacher.max_length,
    }
    return Classifier(model, copy.deepcopy(teacher.tokenizer), teacher.labels, meta)


def _renumber_layers(model: nn.Module) -> None:
    """Some attention modules cache their layer index (for KV caches); keep it consistent."""
    _, _, layers = find_layer_list(model)
    for i, layer in enumerate(layers):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = i
