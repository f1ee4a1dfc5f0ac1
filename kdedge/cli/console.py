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


def _launcher_rank() -> int:
    """This process's rank under torchrun / accelerate launch (0 without a launcher)."""
    import os

    try:
        return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0
    except ValueError:
        return 0


# In a multi-process run only rank 0 prints results, diagnostics and progress; the other
# ranks print nothing but their own errors.
RANK = _launcher_rank()
stderr = Console(stderr=True, highlight=False, quiet=RANK != 0)
stdout = Console(highlight=False, quiet=RANK != 0)


def print_error(message: str) -> None:
    if RANK:
        click.echo(f"error (rank {RANK}): {message}", err=True)
        return
    stderr.print(f"[bold red]error:[/] {message}", soft_wrap=True)


def info(message: str) -> None:
    stderr.print(message, soft_wrap=True)


def rich_tracker(quiet: bool = False):
    """A :class:`kdedge.progress.Tracker` that draws a progress bar on stderr."""

    def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        if quiet or RANK or (not stderr.is_terminal and not _force_progress()):
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
    """Machine-readable output on stdout (and nothing else there); rank 0 only."""
    if RANK:
        return
    click.echo(jsonout.dumps(data, indent=2, default=str))


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def megabytes(n: int | None) -> str:
    return "—" if n is None else f"{n / 1e6:.1f} MB"
