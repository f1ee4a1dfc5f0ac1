"""``export_bundle``: convert a model to several formats, prove each, pack a bundle.

The model directory's task family (:func:`kdedge.tasks.task_of_model`) decides which
exporter runs: classifiers go to any registered format (:mod:`.export_intent`), causal LMs
to GGUF (:mod:`.export_generate`). Every artifact is checked against the torch model with
the tolerance its converter declares. An artifact that fails is left out of the bundle
unless ``keep_failed`` is set, in which case it ships marked ``failed``. The bundle
directory appears in one rename, so a crash never leaves half a bundle behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kdedge.converters.base import ExportOptions
from kdedge.converters.bundling import ArtifactResult, ExportReport, requested_formats
from kdedge.progress import Tracker, silent
from kdedge.tasks import task_of_model

__all__ = ["ArtifactResult", "ExportReport", "export_bundle"]


def export_bundle(
    model_dir: str | Path,
    formats: Sequence[str],
    out_dir: str | Path,
    *,
    eval_data: str | Path | None = None,
    calibration_data: str | Path | None = None,
    keep_failed: bool = False,
    select_within: float | None = None,
    options: ExportOptions | None = None,
    overwrite: bool = False,
    track: Tracker = silent,
) -> ExportReport:
    """Convert ``model_dir`` to each of ``formats``, check parity, write a bundle.

    ``eval_data`` (labeled held-out rows) adds the task metric to each parity check;
    ``calibration_data`` feeds static quantization; ``select_within`` keeps only the
    fastest passing artifact whose metric drop on ``eval_data`` is at most that many
    points (Olive's and INC's "fastest within budget").
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    specs = requested_formats(formats, out_dir, overwrite)  # unknown formats fail first
    exporter = task_of_model(model_dir).entry("export")
    return exporter(
        model_dir,
        specs,
        out_dir,
        eval_data=eval_data,
        calibration_data=calibration_data,
        keep_failed=keep_failed,
        select_within=select_within,
        options=options,
        track=track,
    )
