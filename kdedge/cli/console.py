"""Rich output for the CLI: one stderr console for diagnostics, progress bars, tables, JSON."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from kdedge import jsonout

T = TypeVar("T")

stderr = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)


def print_error(message: str) -> None:
    stderr.print(f"[bold red]error:[/] {message}", soft_wrap=True)


def info(message: str) -> None:
    stderr.print(message, soft_wrap=True)


def rich_tracker(quiet: bool = False):
    """A :class:`kdedge.progress.Tracker` that draws a progress bar on stderr."""

    def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        if quiet or (not stderr.is_terminal and not _force_progress()):
            yield from items
            return
        columns = (
            TextColumn("[bold blue]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=stderr, transient=True) as progress:
            task = progress.add_task(description, total=total)
            for item in items:
                yield item
                progress.advance(task)

    return track


def _force_progress() -> bool:
    import os

    return os.environ.get("KDEDGE_PROGRESS") == "1"


def emit_json(data: Any) -> None:
    """Machine-readable output on stdout (and nothing else there)."""
    click.echo(jsonout.dumps(data, indent=2, default=str))


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def megabytes(n: int | None) -> str:
    return "—" if n is None else f"{n / 1e6:.1f} MB"
