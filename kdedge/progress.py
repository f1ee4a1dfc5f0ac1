"""Progress reporting without a UI dependency: library code takes a ``Tracker``.

A tracker wraps an iterable and reports progress as it is consumed; the CLI passes one
that draws a Rich progress bar, library users get :func:`silent` by default.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")


class Tracker(Protocol):
    def __call__(
        self, items: Iterable[T], description: str, total: int | None = None
    ) -> Iterator[T]:
        """Yield ``items`` unchanged while reporting progress under ``description``."""
        ...


def silent(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """A tracker that reports nothing."""
    yield from items
