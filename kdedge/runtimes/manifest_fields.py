"""Checks for the fields of a bundle manifest, shared by the writer and the reader.

One schema, checked in two places: the manifest dataclasses' ``__post_init__`` check
values, so the exporter (which builds those classes) can never write a manifest the reader
refuses; their ``from_dict`` checks JSON types before building them. Every failure is a
:class:`BundleError` naming the field, e.g. "field 'tokenizer.max_length' must be an
integer from 1 to 1048576, got -3".
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator
from typing import Any

from kdedge.errors import BundleError


def bad(name: str, expected: str, value: Any) -> BundleError:
    text = repr(value)
    shown = text if len(text) <= 60 else text[:60] + "..."
    detail = f"must be {expected}, got {shown}"
    return BundleError(f"field '{name}' {detail}", field=name, detail=detail)


@contextlib.contextmanager
def within(prefix: str) -> Iterator[None]:
    """Name the fields of errors raised inside after ``prefix`` (``artifacts[1]`` ...)."""
    try:
        yield
    except BundleError as exc:
        if exc.field is None or not exc.detail:
            raise
        name = f"{prefix}.{exc.field}"
        raise BundleError(f"field '{name}' {exc.detail}", field=name, detail=exc.detail) from None


def text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad(name, "a non-empty string", value)
    return value


def integer(value: Any, name: str, low: int, high: int | None = None) -> int:
    # numbers.Integral: the exporter may hand over numpy integers; JSON gives int
    in_range = not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= low
    if not in_range or (high is not None and value > high):
        expected = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
        raise bad(name, expected, value)
    return value


def finite(value: Any) -> bool:
    """A real number (not a bool) that is finite as a float (10**400 is not: it overflows)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def positive(value: Any, name: str) -> float:
    if not finite(value) or value <= 0:
        raise bad(name, "a finite number > 0", value)
    return float(value)


def figure(value: Any, name: str) -> None:
    """A measured figure: a finite number >= 0, or null."""
    if value is None:
        return
    if not finite(value) or value < 0:
        raise bad(name, "a finite number >= 0 or null", value)


def table(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(name, "a JSON object", value)
    return value


def texts(value: Any, name: str, *, allow_empty: bool = True) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or (not value and not allow_empty):
        raise bad(name, "a JSON array of strings" + ("" if allow_empty else ", not empty"), value)
    return tuple(text(v, f"{name}[{i}]") for i, v in enumerate(value))


def tuples(obj: Any, *names: str) -> None:
    """Store list fields of a frozen dataclass as tuples (the writer may pass lists)."""
    for name in names:
        if isinstance(getattr(obj, name), list):
            object.__setattr__(obj, name, tuple(getattr(obj, name)))


def get(d: dict[str, Any], key: str, name: str) -> Any:
    if key not in d:
        raise BundleError(f"field '{name}' is missing", field=name, detail="is missing")
    return d[key]
