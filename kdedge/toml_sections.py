"""Typed TOML files: read one with a one-line error, build frozen dataclasses from its tables.

Recipes (:mod:`kdedge.recipe`, :mod:`kdedge.rerank.recipe`) and sweep files build on this;
unknown keys are errors that list the valid ones, so a typo never passes silently.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
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
    """Build dataclass ``cls`` from a TOML table; unknown keys are errors naming the valid ones,
    and so is a value whose type does not match the field's annotation. ``nested`` maps a
    field holding an array of tables to the dataclass of each table."""
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
        if nested and f.name in nested:
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{where}: {f.name} must be a list of tables ([[...]])")
            value = tuple(
                build_section(nested[f.name], r, f"{where}.{f.name}[{i}]")
                for i, r in enumerate(value)
            )
        else:
            value = check_type(value, hints[f.name], f"{where}: {f.name}")
        kwargs[f.name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def check_type(value: Any, hint: Any, where: str) -> Any:
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
                return check_type(value, option, where)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be an array, got {_shown(value)}")
        return tuple(check_type(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
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
