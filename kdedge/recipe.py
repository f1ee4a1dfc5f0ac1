"""One TOML recipe drives every stage, from data preparation to evaluation.

Recipes are data: loaded with ``tomllib``, checked against typed sections (unknown keys
are errors that list the valid ones), paths resolved relative to the recipe file. Nothing
in a recipe can execute code.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdedge.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


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


def build_section(cls: type, values: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a TOML table; unknown keys are errors naming the valid ones,
    and so is a value whose type does not match the field's annotation."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a table, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value = values[f.name]
        if f.name == "rules":
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{where}: rules must be a list of tables ([[...rules]])")
            value = tuple(
                build_section(RuleSection, r, f"{where}.rules[{i}]") for i, r in enumerate(value)
            )
        else:
            value = _typed(value, hints[f.name], f"{where}: {f.name}")
        kwargs[f.name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _typed(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against a field annotation (str, int, float, bool, ``X | None``,
    ``tuple[X, ...]``, dict, Any); TOML arrays become tuples."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _typed(value, option, where)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be an array, got {_shown(value)}")
        return tuple(_typed(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if hint is Any:
        return value
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {_shown(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {_shown(value)}")
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer too large for a float
            finite = False
        if not finite:
            raise ConfigError(f"{where} must be a finite number, got {_shown(value)}")
        return value
    if hint in (str, int, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(f"{where} must be {_NAMES[hint]}, got {_shown(value)}")
        return value
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:60] + '...'}"


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """A TOML file as a dict; a missing file, bytes that are not UTF-8, bad TOML or TOML
    nested too deeply to read is a one-line ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not valid UTF-8 (byte {data[exc.start : exc.start + 1]!r}); "
            "TOML files are UTF-8. Fix: re-save the file as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    except RecursionError:
        raise ConfigError(f"{path}: TOML nested too deeply to read; flatten it") from None
    except ValueError as exc:  # an integer longer than Python's 4,300-digit limit
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def load_recipe(path: str | Path, **overrides: Any) -> Recipe:
    """Parse and check a recipe file; ``overrides`` replace top-level keys (e.g. device)."""
    raw = read_toml(path, "recipe")
    path = Path(path)
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
        name: build_section(cls, raw[name], f"{source} [{name}]")
        for name, cls in _SECTIONS.items()
        if name in raw
    }
    gates = None
    if "gates" in raw or "score" in raw:
        gates = {"gates": raw.get("gates", {}), "score": raw.get("score", {})}
    kwargs = {
        k: _typed(raw[k], str, f"{source}: {k}")
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
