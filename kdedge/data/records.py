"""The one row type every stage passes around."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """One text with its optional gold label.

    ``label`` is None for unlabeled rows (teacher-only soft labels). ``source`` is
    ``"file:line"`` so later stages can point at the row that caused a problem.
    """

    text: str
    label: str | None = None
    weight: float = 1.0
    slice: str | None = None
    source: str = ""
