"""A reranker recipe: ``task = "rerank"`` in a TOML file drives candidates -> teach -> distill
(teacher scores cached) -> evaluate teacher and student -> export, like the intent recipe.

::

    task = "rerank"
    workdir = "kdedge-rerank"

    [data]                        # query groups, or queries + a corpus (BM25 candidates)
    corpus = "stackfaq/corpus.jsonl"
    train = "stackfaq/train.jsonl"
    validation = "stackfaq/validation.jsonl"
    test = "stackfaq/test.jsonl"

    [teacher]
    base = "minilm"               # fine-tune this encoder, or: model = "cross-encoder/"

    [student]
    layers = 3

    [distill]
    loss = "pointwise"
    alpha = 0.5

    [export]
    formats = ["onnx", "onnx-int8"]

Unknown keys are errors naming the valid ones; paths are relative to the recipe file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdedge.errors import ConfigError
from kdedge.toml_sections import build_section, check_type


@dataclass(frozen=True)
class RerankDataSection:
    """Query-group files, or (with ``corpus``) query files whose candidates BM25 builds."""

    train: str
    validation: str
    test: str | None = None
    corpus: str | None = None
    train_candidates: int = 20
    eval_candidates: int = 50
    label_field: str = "thread_id"  # corpus field matched against a query's label


@dataclass(frozen=True)
class RerankTeacherSection:
    base: str | None = None  # fine-tune this encoder (``minilm`` = the bundled MiniLM)
    model: str | None = None  # or use this one-score cross-encoder as it is
    epochs: int = 3
    lr: float = 5e-5
    max_length: int = 128
    queries_per_batch: int = 8
    candidates_per_query: int = 8
    seed: int = 0


@dataclass(frozen=True)
class RerankStudentSection:
    layers: int | None = None
    layer_map: tuple[int, ...] | None = None
    model: str | None = None


@dataclass(frozen=True)
class RerankDistillSection:
    loss: str = "pointwise"  # pointwise | margin_mse | listwise
    alpha: float = 0.5  # 1.0 = relevance labels only
    temperature: float = 1.0
    supervised: str = "bce"
    epochs: int = 4
    lr: float = 1e-4
    stage1_epochs: int = 0
    queries_per_batch: int = 8
    candidates_per_query: int = 8
    min_epochs: int = 2
    early_stop: bool = True
    seed: int = 0
    min_ndcg: float = 0.0  # gate: checkpoints below this NDCG@10 are not promotable


@dataclass(frozen=True)
class RerankExportSection:
    formats: tuple[str, ...] = ()  # e.g. ("onnx", "onnx-int8"); empty: no bundle


@dataclass(frozen=True)
class RerankRecipe:
    """A whole reranker run; outputs go under ``workdir``."""

    data: RerankDataSection
    workdir: str = "kdedge-rerank"
    name: str = "rerank"
    device: str = "auto"
    precision: str = "auto"
    teacher: RerankTeacherSection = field(default_factory=RerankTeacherSection)
    student: RerankStudentSection = field(default_factory=RerankStudentSection)
    distill: RerankDistillSection = field(default_factory=RerankDistillSection)
    export: RerankExportSection = field(default_factory=RerankExportSection)
    base_dir: Path = Path(".")
    task: str = "rerank"

    def path(self, value: str) -> Path:
        """Resolve a recipe path relative to the recipe's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def root(self) -> Path:
        return Path(self.workdir).expanduser().resolve()


_SECTIONS = {
    "data": RerankDataSection,
    "teacher": RerankTeacherSection,
    "student": RerankStudentSection,
    "distill": RerankDistillSection,
    "export": RerankExportSection,
}


def rerank_recipe_from_dict(
    raw: dict[str, Any], *, base_dir: Path, source: str, **overrides: Any
) -> RerankRecipe:
    """Check a parsed ``task = "rerank"`` recipe and build it."""
    top = {"workdir", "name", "device", "precision", *_SECTIONS}
    unknown = sorted(set(raw) - top)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(top))}"
        )
    if "data" not in raw:
        raise ConfigError(
            f"{source}: a rerank recipe needs a [data] table with `train` and `validation`"
        )
    sections = {
        name: build_section(cls, raw[name], f"{source} [{name}]")
        for name, cls in _SECTIONS.items()
        if name in raw
    }
    kwargs = {
        k: check_type(raw[k], str, f"{source}: {k}")
        for k in ("workdir", "name", "device", "precision")
        if k in raw
    }
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    recipe = RerankRecipe(**sections, **kwargs, base_dir=base_dir)
    if bool(recipe.teacher.base) == bool(recipe.teacher.model):
        raise ConfigError(
            f"{source} [teacher]: set exactly one of `base` (fine-tune a cross-encoder from "
            "this encoder) or `model` (use this one-score cross-encoder)"
        )
    student = recipe.student
    if sum(x is not None for x in (student.layers, student.layer_map, student.model)) != 1:
        raise ConfigError(
            f"{source} [student]: set exactly one of `layers`, `layer_map` or `model`"
        )
    return recipe
