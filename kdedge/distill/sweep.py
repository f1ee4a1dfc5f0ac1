"""``kdedge sweep``: many students from the same teachers, paying the teachers once.

A sweep file (TOML) names a prepared data folder, a ``[base]`` of run settings, and
variants that override some of them (``[[variants]]`` tables and/or a ``[grid]`` whose
cartesian product is taken). Every variant distils through the one teacher-logit cache,
so only the first run that needs a teacher's labels pays for its forward passes; the
report prices what the cache saved with each teacher's measured seconds per text (seed
000, failure F: without a cache N runs cost N x (teacher + student), with one
teacher + N x student).

Each variant is then calibrated on the validation split and judged on the evaluation
split, by argmax and at its own router threshold (:mod:`kdedge.distill.oos`). Finished
variants are skipped when the sweep is run again, so a killed sweep resumes.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdedge.atomic import atomic_write_text
from kdedge.distill.sweep_report import (
    SweepReport,
    add_gap_closed,
    cost_sentence,
    cost_summary,
    in_scope,
    markdown,
    table_rows,
)
from kdedge.errors import ConfigError
from kdedge.progress import Tracker, silent
from kdedge.toml_sections import build_section, read_toml

RESULTS = "results"
REPORT_JSON = "sweep_report.json"
REPORT_MD = "sweep_report.md"


@dataclass(frozen=True)
class RunSettings:
    """One student run: who teaches, which student, which loss, how long."""

    teachers: tuple[str, ...] = ()
    layers: int | None = None
    layer_map: tuple[int, ...] | None = None
    alpha: float = 0.7
    temperature: float = 4.0
    rare_weight: float = 0.0
    rare_class_boost: float = 5.0
    rare_labels: tuple[str, ...] | None = None
    feature_epochs: int = 0
    transfer: tuple[str, ...] = ()  # files of unlabeled text labelled only by the teachers
    calibrated_teachers: bool = False  # soften calibrated, not raw, teacher probabilities
    epochs: int = 8
    lr: float = 1e-4
    batch_size: int = 32
    min_epochs: int = 3
    early_stop: bool = True
    seed: int = 0
    compile: str | None = None  # torch.compile mode for the training forward


@dataclass(frozen=True)
class Variant:
    name: str
    settings: RunSettings


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file; relative paths are already resolved against its folder."""

    data: Path
    workdir: Path
    variants: tuple[Variant, ...]
    cache: Path | None = None
    evaluate: str = "test"
    oos_label: str | None = None
    baseline: str | None = None  # a variant name: "gap closed" is measured from it
    teacher_rows: bool = True  # evaluate each teacher too

    def select(self, names: Sequence[str]) -> Sweep:
        """Only the named variants (an unknown name is an error listing the known ones)."""
        known = {v.name for v in self.variants}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(
                f"unknown variant(s) {', '.join(unknown)}; this sweep has: {', '.join(known)}"
            )
        return dataclasses.replace(
            self, variants=tuple(v for v in self.variants if v.name in names)
        )


_TOP = {"data", "workdir", "cache", "evaluate", "oos_label", "baseline", "teacher_rows"}
_TABLES = {"base", "variants", "grid"}


def load_sweep(path: str | Path, grid: Sequence[str] = ()) -> Sweep:
    """Parse a sweep file; ``grid`` adds ``key=v1,v2`` axes to the file's ``[grid]``."""
    raw = read_toml(path, "sweep file")
    path = Path(path)
    return sweep_from_dict(raw, base_dir=path.parent, source=str(path), grid=grid)


def sweep_from_dict(
    raw: dict[str, Any], *, base_dir: Path, source: str, grid: Sequence[str] = ()
) -> Sweep:
    unknown = sorted(set(raw) - _TOP - _TABLES)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(_TOP | _TABLES))}"
        )
    if "data" not in raw:
        raise ConfigError(f"{source}: a sweep needs `data = ...` (a folder from `kdedge prepare`)")

    def resolve(value: str) -> str:
        p = Path(value).expanduser()
        return os.path.normpath(p if p.is_absolute() or value == "minilm" else base_dir / p)

    def settings(values: dict[str, Any], where: str, start: RunSettings) -> RunSettings:
        built = build_section(RunSettings, {**dataclasses.asdict(start), **values}, where)
        paths = {
            k: tuple(resolve(p) for p in values[k]) for k in ("teachers", "transfer") if k in values
        }
        return dataclasses.replace(built, **paths)

    base = settings(raw.get("base", {}), f"{source} [base]", RunSettings())
    variants: list[Variant] = []
    for i, table in enumerate(raw.get("variants", [])):
        where = f"{source} [[variants]] #{i + 1}"
        if not isinstance(table, dict) or not isinstance(table.get("name"), str):
            raise ConfigError(f'{where}: each variant needs a `name = "..."`')
        values = {k: v for k, v in table.items() if k != "name"}
        variants.append(Variant(table["name"], settings(values, where, base)))
    axes = dict(raw.get("grid", {}))
    for item in grid:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise ConfigError(f"--grid {item!r} must look like 'temperature=1,2,4'")
        axes[key.strip()] = [_scalar(v) for v in values.split(",")]
    if axes:
        keys = list(axes)
        for combo in itertools.product(
            *(axes[k] if isinstance(axes[k], list) else [axes[k]] for k in keys)
        ):
            values = dict(zip(keys, combo, strict=True))
            name = ",".join(f"{k}={v}" for k, v in values.items())
            variants.append(Variant(name, settings(values, f"{source} [grid] {name}", base)))
    if not variants:
        raise ConfigError(f"{source}: no variants; add [[variants]] tables, a [grid] or --grid")
    names = [v.name for v in variants]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(
            f"{source}: variant names must be unique; repeated: {', '.join(repeated)}"
        )
    for v in variants:
        if not v.settings.teachers:  # hard-label students too: they start from teacher layers
            raise ConfigError(
                f"{source}: variant {v.name!r} names no teachers; set [base] teachers"
            )
    baseline = raw.get("baseline")
    if baseline is not None and baseline not in names:
        raise ConfigError(f"{source}: baseline {baseline!r} is not a variant ({', '.join(names)})")
    return Sweep(
        data=Path(resolve(raw["data"])),
        workdir=Path(resolve(raw.get("workdir", "sweep"))),
        variants=tuple(variants),
        cache=Path(resolve(raw["cache"])) if raw.get("cache") else None,
        evaluate=raw.get("evaluate", "test"),
        oos_label=raw.get("oos_label"),
        baseline=baseline,
        teacher_rows=bool(raw.get("teacher_rows", True)),
    )


def _scalar(text: str) -> Any:
    text = text.strip()
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def run_sweep(
    sweep: Sweep,
    placement: Any,
    *,
    only: Sequence[str] = (),
    rerun: bool = False,
    track: Tracker = silent,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> SweepReport:
    """Train, calibrate and judge every variant; write ``sweep_report.{json,md}``.

    ``only`` trains just the named variants; the report still covers the whole sweep, with
    every other variant's stored result (if it has one with the same settings), so running
    one row at a time builds the same report as one full run. ``rerun`` retrains the
    variants that are run even when a matching result exists.
    """
    from kdedge.data.prepare import load_prepared, split_file
    from kdedge.distill import distributed

    main = distributed.current().main  # under a launcher every rank trains, rank 0 writes
    load_prepared(sweep.data)  # fails early, naming the folder, if it is not prepared
    holdout = sweep.data / split_file("validation")
    judged_on = sweep.data / split_file(sweep.evaluate)
    if not judged_on.is_file():
        raise ConfigError(f"evaluate = {sweep.evaluate!r}: {judged_on} does not exist")
    if main:
        sweep.workdir.mkdir(parents=True, exist_ok=True)
    report = SweepReport(sweep.workdir)

    def add(row: dict[str, Any]) -> None:
        report.rows.append(row)
        if on_row is not None:
            on_row(row)

    chosen = {v.name for v in sweep.select(only).variants} if only else None
    for variant in sweep.variants:
        result_file = sweep.workdir / RESULTS / f"{_slug(variant.name)}.json"
        stored = _finished(result_file, variant)
        wanted = chosen is None or variant.name in chosen
        if stored is not None and not (wanted and rerun):
            row = {**stored, "resumed": True}
        elif wanted:
            row = _run_variant(variant, sweep, holdout, judged_on, placement, track, main)
            if main:
                result_file.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(result_file, json.dumps(row, indent=2, default=str) + "\n")
        else:
            report.not_run.append(variant.name)
            continue
        add(row)
    if not main:
        return report  # rank 0 judges the teachers and writes the report
    if sweep.teacher_rows:  # after the students, so a teacher may still be training meanwhile
        ran = {r["name"] for r in report.rows}
        teachers = dict.fromkeys(
            t for v in sweep.variants if v.name in ran for t in v.settings.teachers
        )
        judged = [_judge_teacher(t, sweep, holdout, judged_on, placement, track) for t in teachers]
        for row in judged:
            if on_row is not None:
                on_row(row)
        report.rows[:0] = judged
    add_gap_closed(report.rows, sweep.baseline)
    report.cost = cost_summary([r for r in report.rows if r["kind"] == "student"])
    atomic_write_text(
        sweep.workdir / REPORT_JSON, json.dumps(report.to_dict(), indent=2, default=str) + "\n"
    )
    atomic_write_text(sweep.workdir / REPORT_MD, markdown(report))
    return report


def _finished(result_file: Path, variant: Variant) -> dict[str, Any] | None:
    """The stored result of ``variant`` if it was trained with the same settings."""
    if not result_file.is_file():
        return None
    row = json.loads(result_file.read_text(encoding="utf-8"))
    # Keys added to RunSettings since the result was written take their defaults; paths
    # compare normalised ("a/../b" is "b").
    stored = {**dataclasses.asdict(RunSettings()), **row.get("settings", {})}
    current = dataclasses.asdict(variant.settings)
    return row if _comparable(stored) == _comparable(current) else None


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    plain = json.loads(json.dumps(settings))
    for key in ("teachers", "transfer"):
        plain[key] = [os.path.normpath(p) for p in plain.get(key) or []]
    return plain


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in name)


def _run_variant(
    variant: Variant,
    sweep: Sweep,
    holdout: Path,
    judged_on: Path,
    placement: Any,
    track: Tracker,
    main: bool = True,
) -> dict[str, Any]:
    """Distill one variant (every rank) and judge it (rank 0, which calibrates and writes)."""
    from kdedge.base_models import resolve_model
    from kdedge.data.io import load_unlabeled
    from kdedge.distill.distillation import StudentSpec, distill
    from kdedge.distill.losses import LossConfig
    from kdedge.distill.trainer import TrainConfig

    s = variant.settings
    out = sweep.workdir / _slug(variant.name)
    start = time.perf_counter()
    result = distill(
        [resolve_model(t) for t in s.teachers],
        sweep.data,
        out,
        placement=placement,
        student=StudentSpec(layers=s.layers, layer_map=s.layer_map),
        loss=LossConfig(alpha=s.alpha, temperature=s.temperature, rare_weight=s.rare_weight),
        config=TrainConfig(
            epochs=s.epochs,
            lr=s.lr,
            batch_size=s.batch_size,
            seed=s.seed,
            min_epochs=min(s.min_epochs, s.epochs),
            early_stop=s.early_stop,
            rare_class_boost=s.rare_class_boost,
            compile=s.compile,
        ),
        cache_dir=sweep.cache,
        transfer=load_unlabeled(s.transfer),
        calibrated_teachers=s.calibrated_teachers,
        feature_epochs=s.feature_epochs,
        rare_labels=s.rare_labels,
        oos_label=sweep.oos_label,
        overwrite=True,
        track=track,
    )
    seconds = time.perf_counter() - start
    labeling = result.labeling.to_dict() if result.labeling else None
    teacher_seconds = labeling["seconds"] if labeling else 0.0
    train = result.train
    return {
        "kind": "student",
        "name": variant.name,
        "settings": dataclasses.asdict(s),
        "model": str(out),
        "transfer_rows": result.transfer_rows,
        "labeling": labeling,
        "teacher_seconds": round(teacher_seconds, 2),
        "student_seconds": round(seconds - teacher_seconds, 2),
        "train": {
            "best_epoch": train.best_epoch,
            "epochs_run": len(train.history),
            "samples_per_sec": train.train_samples_per_sec,
            "promotable": train.promotable,
            "stopped_early": train.stopped_early,
        },
        **(
            _judge(out, holdout, judged_on, placement, track, sweep.oos_label, calibrate=True)
            if main
            else {}
        ),
    }


def _judge_teacher(
    teacher: str, sweep: Sweep, holdout: Path, judged_on: Path, placement: Any, track: Tracker
) -> dict[str, Any]:
    from kdedge.base_models import resolve_model

    path = resolve_model(teacher)
    return {
        "kind": "teacher",
        "name": name if "teacher" in (name := Path(path).name) else f"{name} (teacher)",
        "model": path,
        **_judge(Path(path), holdout, judged_on, placement, track, sweep.oos_label),
    }


def _judge(
    model_dir: Path,
    holdout: Path,
    judged_on: Path,
    placement: Any,
    track: Tracker,
    oos_label: str | None,
    *,
    calibrate: bool = False,
) -> dict[str, Any]:
    """Metrics on the evaluation split at the calibrated temperature, argmax and routed.

    With ``calibrate`` the temperature is first fitted on the holdout and stored with the
    model (a student); otherwise the model's stored one is used (a teacher is never
    rewritten)."""
    from kdedge.distill.evaluation import predict_labeled, save_calibration
    from kdedge.distill.metrics import classification_report
    from kdedge.distill.oos import fit_oos_threshold, oos_metrics
    from kdedge.distill.probability import softmax
    from kdedge.distill.taxonomy import Taxonomy

    clf, _, val_logits, val_gold = predict_labeled(
        model_dir, holdout, placement, track, "validation"
    )
    _, _, logits, gold = predict_labeled(model_dir, judged_on, placement, track, "evaluating")
    temperature = (
        save_calibration(model_dir, val_logits, val_gold, holdout, plot=False).temperature
        if calibrate
        else clf.temperature
    )
    probs = softmax(logits, temperature)
    oos = oos_label or Taxonomy.from_meta(clf.meta).oos_label
    oos = oos if oos in clf.labels else None
    report = classification_report(probs, gold, clf.labels.names, oos_label=oos)
    row: dict[str, Any] = {
        "temperature": temperature,
        "layers": clf.model.config.num_hidden_layers,
        "metrics": report.to_dict(),
    }
    if oos is not None:
        k = clf.labels.index(oos)
        threshold = fit_oos_threshold(softmax(val_logits, temperature), val_gold, k)
        row["router"] = oos_metrics(probs, gold, k, threshold).to_dict()
        row["argmax"] = oos_metrics(probs, gold, k, 0.0).to_dict()
    return row


__all__ = [
    "RunSettings",
    "Sweep",
    "SweepReport",
    "Variant",
    "cost_sentence",
    "cost_summary",
    "in_scope",
    "load_sweep",
    "markdown",
    "run_sweep",
    "sweep_from_dict",
    "table_rows",
]
