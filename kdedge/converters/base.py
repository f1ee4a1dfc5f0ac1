"""What a converter is: the :class:`Converter` protocol, its inputs and its tolerance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kdedge.distill.models import Classifier


@dataclass(frozen=True)
class Tolerance:
    """How far an artifact may drift from the torch model and still ship.

    ``max_abs_logit`` bounds the largest raw-logit difference on the probe set,
    ``min_agreement`` the share of probe texts with the same argmax, and
    ``max_accuracy_drop`` the accuracy lost on the eval data, in percentage points.
    """

    max_abs_logit: float
    min_agreement: float
    max_accuracy_drop: float

    def to_dict(self) -> dict[str, float]:
        return {
            "max_abs_logit": self.max_abs_logit,
            "min_agreement": self.min_agreement,
            "max_accuracy_drop_points": self.max_accuracy_drop,
        }


@dataclass(frozen=True)
class ExportOptions:
    """Knobs shared by the converters that use them."""

    per_channel: bool = True  # ONNX INT8: one weight scale per output channel
    # dynamic ONNX INT8: quantize the embedding table (Gather) as well as the MatMuls;
    # None lets the task decide (classifiers yes; rerankers no, see export_rerank)
    int8_embeddings: bool | None = None
    calibration_size: int = 300  # texts used to collect activation ranges
    opset: int = 18


@dataclass
class ConvertInput:
    """What every converter receives: the torch model in fp32 on the CPU, and data."""

    classifier: Classifier
    calibration_texts: Sequence[str | tuple[str, str]]  # (query, passage) for a cross-encoder
    options: ExportOptions = field(default_factory=ExportOptions)
    workdir: Path | None = None  # scratch space shared by the converters of one export
    inputs: tuple[str, ...] = ("input_ids", "attention_mask")  # the graph's, in order

    def scratch(self, name: str) -> Path:
        assert self.workdir is not None
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class Converted:
    """Files a converter wrote (the file a backend opens first) and what it wants recorded."""

    files: list[Path]
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class Converter(Protocol):
    """Turns a torch classifier into one artifact format.

    ``convert`` is called once per export with an empty ``out_dir`` that becomes the
    artifact's folder in the bundle; it must write only there (or in ``inp.scratch``) and
    return the written files, the file a backend opens first. It must not judge its own
    output: the exporter checks every artifact against the torch model with ``tolerance``.
    """

    name: str
    format: str
    precision: str
    backend: str
    tolerance: Tolerance
    needs_calibration: bool
    target_hints: tuple[str, ...]

    def convert(self, inp: ConvertInput, out_dir: Path) -> Converted: ...
