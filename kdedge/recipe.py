"""One TOML recipe drives every stage, from data preparation to evaluation.

Recipes are data: loaded with ``tomllib``, checked against typed sections (unknown keys
are errors that list the valid ones), paths resolved relative to the recipe file. Nothing
in a recipe can execute code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdedge.errors import ConfigError
from kdedge.toml_sections import build_section, check_type, read_toml


@dataclass(frozen=True)
class DataSection:
    train: str
    validation: str | None = None
    test: str | None = None
    unlabeled: tuple[str, ...] = ()
    split: tuple[float, ...] = (0.8, 0.1, 0.1)
    seed: int = 0
    scrub_pii: bool = True
    dedupe: bool = True


@dataclass(frozen=True)
class RuleSection:
    pattern: str
    label: str
    confidence: float = 0.95


@dataclass(frozen=True)
class TeacherSection:
    base: str | None = None  # fine-tune this encoder (``minilm`` = the bundled MiniLM)
    models: tuple[str, ...] = ()  # or use these fine-tuned teachers as they are
    epochs: int = 6
    lr: float = 1e-4
    batch_size: int = 32
    max_length: int = 64
    seed: int = 0
    rules: tuple[RuleSection, ...] = ()


@dataclass(frozen=True)
class StudentSection:
    layers: int | None = None
    layer_map: tuple[int, ...] | None = None
    model: str | None = None
    trim_vocab: bool = False


@dataclass(frozen=True)
class DistillSection:
    alpha: float = 0.7
    temperature: float = 4.0
    rare_weight: float = 0.0
    rare_class_boost: float = 5.0
    feature_epochs: int = 0
    epochs: int = 8
    lr: float = 1e-4
    batch_size: int = 32
    min_epochs: int = 3
    early_stop: bool = True
    use_unlabeled: bool = True
    seed: int = 0
    rare_labels: tuple[str, ...] | None = None
    oos_label: str | None = None
    compile: str | None = None  # torch.compile mode: default, reduce-overhead, max-autotune


@dataclass(frozen=True)
class EvaluateSection:
    gates: str | None = None  # a gates TOML file; inline [gates]/[score] tables also work
    latency_samples: int = 100


@dataclass(frozen=True)
class Recipe:
    """A whole run. ``workdir`` holds data/, teacher/, student/ and reports; input paths are
    relative to the recipe file."""

    data: DataSection
    workdir: str = "kdedge-run"
    name: str = "run"
    device: str = "auto"
    precision: str = "auto"
    teacher: TeacherSection = field(default_factory=TeacherSection)
    student: StudentSection = field(default_factory=StudentSection)
    distill: DistillSection = field(default_factory=DistillSection)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    gates: dict[str, Any] | None = None  # inline gate tables: {"gates": {...}, "score": {...}}
    base_dir: Path = Path(".")

    def path(self, value: str) -> Path:
        """Resolve a recipe path relative to the recipe's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def root(self) -> Path:
        """Outputs go under ``workdir``, relative to the current directory (not the recipe)."""
        return Path(self.workdir).expanduser().resolve()


_SECTIONS = {
    "data": DataSection,
    "teacher": TeacherSection,
    "student": StudentSection,
    "distill": DistillSection,
    "evaluate": EvaluateSection,
}


def load_recipe(path: str | Path, **overrides: Any) -> Any:
    """Parse and check a recipe file; ``overrides`` replace top-level keys (e.g. device).

    ``task = "rerank"`` at the top gives a :class:`~kdedge.rerank.recipe.RerankRecipe`;
    otherwise (``task = "intent"`` or none) an intent :class:`Recipe`.
    """
    raw = read_toml(path, "recipe")
    path = Path(path)
    task = raw.pop("task", "intent")
    if task == "rerank":
        from kdedge.rerank.recipe import rerank_recipe_from_dict

        return rerank_recipe_from_dict(raw, base_dir=path.parent, source=str(path), **overrides)
    if task != "intent":
        raise ConfigError(f"{path}: task {task!r} has no recipe; use intent or rerank")
    return recipe_from_dict(raw, base_dir=path.parent, source=str(path), **overrides)


def recipe_from_dict(
    raw: dict[str, Any], *, base_dir: Path, source: str, **overrides: Any
) -> Recipe:
    top = {"workdir", "name", "device", "precision", "gates", "score", *_SECTIONS}
    unknown = sorted(set(raw) - top)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(top))}"
        )
    if "data" not in raw:
        raise ConfigError(f"{source}: a recipe needs a [data] table with at least `train = ...`")
    sections = {
        name: build_section(cls, raw[name], f"{source} [{name}]", {"rules": RuleSection})
        for name, cls in _SECTIONS.items()
        if name in raw
    }
    gates = None
    if "gates" in raw or "score" in raw:
        gates = {"gates": raw.get("gates", {}), "score": raw.get("score", {})}
    kwargs = {
        k: check_type(raw[k], str, f"{source}: {k}")
        for k in ("workdir", "name", "device", "precision")
        if k in raw
    }
    for table in ("gates", "score"):
        if table in raw and not isinstance(raw[table], dict):
            raise ConfigError(f"{source}: {table} must be a table ([{table}])")
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    recipe = Recipe(**sections, **kwargs, gates=gates, base_dir=base_dir)
    teacher = recipe.teacher
    if bool(teacher.base) == bool(teacher.models):
        raise ConfigError(
            f"{source} [teacher]: set exactly one of `base` (fine-tune a teacher from this "
            "encoder) or `models` (use these fine-tuned teachers)"
        )
    return recipe
