"""Typed TOML files: read one with a one-line error, build frozen dataclasses from its tables.

Recipes (:mod:`kdedge.recipe`, :mod:`kdedge.rerank.recipe`) and sweep files build on this;
unknown keys are errors that list the valid ones, so a typo never passes silently.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kdedge.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def build_section(
    cls: type, values: Any, where: str, nested: Mapping[str, type] | None = None
) -> Any:
    """Build dataclass ``cls`` from a TOML table; unknown keys are errors naming the valid ones.

    ``nested`` maps a field holding an array of tables to the dataclass of each table.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a table, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value = values[f.name]
        if nested and f.name in nested:
            value = tuple(
                build_section(nested[f.name], r, f"{where}.{f.name}[{i}]")
                for i, r in enumerate(value)
            )
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """A TOML file as a dict; a missing file or bad TOML is a one-line ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
