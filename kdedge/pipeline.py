"""Run a recipe end to end: prepare -> teach -> label -> distill -> calibrate -> evaluate."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdedge.atomic import atomic_write_text
from kdedge.base_models import resolve_model
from kdedge.progress import Tracker, silent
from kdedge.recipe import Recipe


@dataclass
class PipelineResult:
    """Reports of every stage, keyed by stage name."""

    workdir: Path
    stages: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        student = self.stages.get("evaluate_student")
        return bool(student and student["passed"])

    def to_dict(self) -> dict[str, Any]:
        return {"workdir": str(self.workdir), "passed": self.passed, "stages": self.stages}


def run_recipe(
    recipe: Recipe,
    *,
    resume: bool = False,
    track: Tracker = silent,
    on_stage: Callable[[str, dict[str, Any]], None] | None = None,
) -> PipelineResult:
    """Run every stage of ``recipe``; completed stages are skipped when ``resume`` is set.

    A reranker recipe (``task = "rerank"``) runs :func:`kdedge.rerank.pipeline.run_rerank_recipe`.

    Under ``torchrun`` / ``accelerate launch`` every rank takes part in teach, label and
    distill; rank 0 alone prepares the data before them and calibrates, evaluates and
    writes the report after them, while the other ranks return once the student is written.
    """
    if getattr(recipe, "task", "intent") == "rerank":
        from kdedge.rerank.pipeline import run_rerank_recipe

        return run_rerank_recipe(recipe, resume=resume, track=track, on_stage=on_stage)  # type: ignore[arg-type]
    from kdedge.data.prepare import load_prepared, prepare_dataset
    from kdedge.distill import distributed
    from kdedge.distill.device import resolve
    from kdedge.distill.evaluation import calibrate_model, evaluate_model
    from kdedge.distill.gates import Gates
    from kdedge.distill.labeling import label_texts
    from kdedge.distill.teacher import teach
    from kdedge.distill.trainer import TrainConfig

    placement = resolve(recipe.device, recipe.precision)
    main = distributed.current().main
    root = recipe.root
    result = PipelineResult(workdir=root)

    def done(stage: str, report: dict[str, Any]) -> None:
        result.stages[stage] = report
        if not main:
            return
        atomic_write_text(
            root / "pipeline_report.json",
            json.dumps(result.to_dict(), indent=2, default=str) + "\n",
        )
        if on_stage is not None:
            on_stage(stage, report)

    data_cfg = recipe.data
    data_dir = root / "data"
    if main:
        root.mkdir(parents=True, exist_ok=True)
        prep = prepare_dataset(
            recipe.path(data_cfg.train),
            out_dir=data_dir,
            validation_path=recipe.path(data_cfg.validation) if data_cfg.validation else None,
            test_path=recipe.path(data_cfg.test) if data_cfg.test else None,
            unlabeled_paths=[recipe.path(p) for p in data_cfg.unlabeled],
            split=tuple(data_cfg.split),
            seed=data_cfg.seed,
            scrub=data_cfg.scrub_pii,
            dedupe=data_cfg.dedupe,
        )
        done("prepare", prep.to_dict())
    distributed.wait("preparing the data")

    t = recipe.teacher
    if t.base:
        teacher_dir = root / "teacher"
        if resume and (teacher_dir / "config.json").is_file():
            done("teach", {"skipped": "teacher already trained", "out_dir": str(teacher_dir)})
        else:
            teach_result = teach(
                resolve_model(t.base, recipe),
                data_dir,
                teacher_dir,
                placement=placement,
                config=TrainConfig(
                    epochs=t.epochs,
                    lr=t.lr,
                    batch_size=t.batch_size,
                    seed=t.seed,
                    min_epochs=max(3, t.epochs // 2),
                ),
                max_length=t.max_length,
                resume=resume,
                overwrite=not resume,
                track=track,
            )
            done("teach", teach_result.to_dict())
        teachers = [str(teacher_dir)]
    else:
        teachers = [resolve_model(m, recipe) for m in t.models]

    texts = load_prepared(data_dir).all_texts()
    labeled = label_texts(teachers, texts, data_dir / "cache", placement, track=track)
    done("label", labeled.report.to_dict())

    gates = Gates.from_dict(recipe.gates, source="recipe") if recipe.gates else None
    if recipe.evaluate.gates:
        gates = Gates.from_toml(recipe.path(recipe.evaluate.gates))
    student_dir = root / "student"
    if resume and (student_dir / "config.json").is_file():
        done("distill", {"skipped": "student already distilled", "out_dir": str(student_dir)})
    else:
        _distill_stage(
            recipe, teachers, data_dir, student_dir, placement, gates, resume, track, done
        )

    if not main:
        return result  # the student is written; rank 0 calibrates and evaluates it
    holdout = data_dir / "validation.jsonl"
    test = data_dir / "test.jsonl"
    for role, model_dir in (("teacher", Path(teachers[0])), ("student", student_dir)):
        if role == "teacher" and not t.base:
            calibration = None  # never rewrite a teacher the user brought
        else:
            calibration = calibrate_model(model_dir, holdout, placement, track=track).to_dict()
            done(f"calibrate_{role}", calibration)
        report = evaluate_model(
            model_dir,
            test,
            placement,
            gates=gates,
            latency_samples=recipe.evaluate.latency_samples,
            track=track,
        )
        done(f"evaluate_{role}", report.to_dict())
    return result


def _distill_stage(
    recipe: Recipe,
    teachers: list[str],
    data_dir: Path,
    student_dir: Path,
    placement: Any,
    gates: Any,
    resume: bool,
    track: Tracker,
    done: Callable[[str, dict[str, Any]], None],
) -> None:
    """The distill stage of :func:`run_recipe`, with the recipe's student and loss settings."""
    from kdedge.distill.distillation import StudentSpec, distill
    from kdedge.distill.labeling import RiskRule
    from kdedge.distill.losses import LossConfig
    from kdedge.distill.trainer import TrainConfig

    s, d, t = recipe.student, recipe.distill, recipe.teacher
    distilled = distill(
        teachers,
        data_dir,
        student_dir,
        placement=placement,
        student=StudentSpec(
            layers=s.layers,
            layer_map=s.layer_map,
            model=resolve_model(s.model, recipe) if s.model else None,
            trim_vocab=s.trim_vocab,
        ),
        loss=LossConfig(alpha=d.alpha, temperature=d.temperature, rare_weight=d.rare_weight),
        config=TrainConfig(
            epochs=d.epochs,
            lr=d.lr,
            batch_size=d.batch_size,
            seed=d.seed,
            min_epochs=d.min_epochs,
            early_stop=d.early_stop,
            rare_class_boost=d.rare_class_boost,
            compile=d.compile,
        ),
        rules=[RiskRule(r.pattern, r.label, r.confidence) for r in t.rules],
        use_unlabeled=d.use_unlabeled,
        feature_epochs=d.feature_epochs,
        gates=gates,
        rare_labels=d.rare_labels,
        oos_label=d.oos_label,
        resume=resume,
        overwrite=not resume,
        track=track,
    )
    done("distill", distilled.to_dict())
