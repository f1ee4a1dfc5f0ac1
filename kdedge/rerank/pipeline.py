"""Run a reranker recipe end to end: candidates -> teach -> distill -> evaluate -> export.

Every stage's report lands in ``WORKDIR/pipeline_report.json`` as it finishes (written
atomically); with ``resume`` a finished teacher or student is kept and an interrupted
training resumes from its last finished epoch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdedge.atomic import atomic_write_text
from kdedge.base_models import resolve_model
from kdedge.progress import Tracker, silent
from kdedge.rerank.recipe import RerankRecipe

SPLITS = ("train", "validation", "test")


@dataclass
class RerankPipelineResult:
    """Stage reports, keyed by stage name; passed when the student is promotable."""

    workdir: Path
    stages: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"workdir": str(self.workdir), "passed": self.passed, "stages": self.stages}

    @property
    def passed(self) -> bool:
        distill = self.stages.get("distill") or {}
        train = distill.get("train") or {}
        return bool(train.get("promotable", distill.get("promotable")))


def _groups_files(
    recipe: RerankRecipe, data_dir: Path, done: Callable[[str, dict[str, Any]], None]
) -> dict[str, Path]:
    """The query-group file per split: the recipe's own, or BM25 candidates built here."""
    from kdedge.distill import distributed
    from kdedge.rerank.data import write_groups
    from kdedge.rerank.retrieval import stackfaq_groups

    d = recipe.data
    given = {s: getattr(d, s) for s in SPLITS if getattr(d, s)}
    if d.corpus is None:
        return {s: recipe.path(p) for s, p in given.items()}
    files = {split: data_dir / f"{split}_groups.jsonl" for split in given}
    if distributed.current().main:  # under a launcher the others wait for rank 0's files
        reports = {}
        for split, queries in given.items():
            k = d.train_candidates if split == "train" else d.eval_candidates
            groups, report = stackfaq_groups(
                recipe.path(queries), recipe.path(d.corpus), k=k, label_field=d.label_field
            )
            write_groups(files[split], groups)
            reports[split] = {"file": str(files[split]), **report.to_dict()}
        done("candidates", reports)
    distributed.wait("building the candidate lists")
    return files


def run_rerank_recipe(
    recipe: RerankRecipe,
    *,
    resume: bool = False,
    track: Tracker = silent,
    on_stage: Callable[[str, dict[str, Any]], None] | None = None,
) -> RerankPipelineResult:
    """Run every stage of a reranker ``recipe``.

    Under ``torchrun`` / ``accelerate launch`` every rank teaches and distills; rank 0 alone
    builds the candidate lists before, and evaluates, exports and reports after.
    """
    from kdedge.distill import distributed
    from kdedge.distill.device import resolve
    from kdedge.rerank.config import RerankTrainConfig, default_gates
    from kdedge.rerank.data import read_groups
    from kdedge.rerank.distill import distill_reranker
    from kdedge.rerank.evaluation import evaluate_rerankers, first_stage_report
    from kdedge.rerank.losses import RerankLossConfig
    from kdedge.rerank.teacher import teach_reranker

    placement = resolve(recipe.device, recipe.precision)
    main = distributed.current().main
    root = recipe.root
    if main:
        root.mkdir(parents=True, exist_ok=True)
    result = RerankPipelineResult(workdir=root)

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

    files = _groups_files(recipe, root / "data", done)
    train, val = read_groups(files["train"]), read_groups(files["validation"])
    gates = default_gates(recipe.distill.min_ndcg)

    t = recipe.teacher
    if t.base:
        teacher_dir = root / "teacher"
        if resume and (teacher_dir / "config.json").is_file():
            done("teach", {"skipped": "teacher already trained", "out_dir": str(teacher_dir)})
        else:
            taught = teach_reranker(
                resolve_model(t.base, recipe),  # type: ignore[arg-type]
                train,
                val,
                teacher_dir,
                max_length=t.max_length,
                config=RerankTrainConfig(
                    epochs=t.epochs,
                    lr=t.lr,
                    queries_per_batch=t.queries_per_batch,
                    candidates_per_query=t.candidates_per_query,
                    seed=t.seed,
                    min_epochs=min(2, t.epochs),
                ),
                device=placement,
                resume=resume,
                overwrite=not resume,
                track=track,
            )
            done("teach", taught.to_dict())
    else:
        teacher_dir = recipe.path(t.model)  # type: ignore[arg-type]

    s, dc = recipe.student, recipe.distill
    student_dir = root / "student"
    if resume and (student_dir / "config.json").is_file():
        done("distill", {"skipped": "student already distilled", "out_dir": str(student_dir)})
    else:
        distilled = distill_reranker(
            teacher_dir,
            train,
            val,
            student_dir,
            layers=s.layers,
            layer_map=list(s.layer_map) if s.layer_map else None,
            student_dir=recipe.path(s.model) if s.model else None,
            loss=RerankLossConfig(
                kind=dc.loss, alpha=dc.alpha, temperature=dc.temperature, supervised=dc.supervised
            ),
            config=RerankTrainConfig(
                epochs=dc.epochs,
                lr=dc.lr,
                queries_per_batch=dc.queries_per_batch,
                candidates_per_query=dc.candidates_per_query,
                min_epochs=min(dc.min_epochs, dc.epochs),
                early_stop=dc.early_stop,
                seed=dc.seed,
            ),
            stage1_epochs=dc.stage1_epochs,
            cache_dir=root / "cache",
            device=placement,
            gates=gates,
            resume=resume,
            overwrite=not resume,
            track=track,
        )
        done("distill", distilled.to_dict())

    if not main:
        return result  # the student is written; rank 0 evaluates and exports it
    judged = files.get("test", files["validation"])
    groups = read_groups(judged)
    reports = evaluate_rerankers([teacher_dir, student_dir], groups, placement)
    done(
        "evaluate",
        {"data": str(judged), "first_stage": first_stage_report(groups), "models": reports},
    )

    if recipe.export.formats:
        from kdedge.converters.export import export_bundle

        report = export_bundle(
            student_dir,
            recipe.export.formats,
            root / "bundle",
            eval_data=judged,
            calibration_data=files["validation"],
            overwrite=True,
            track=track,
        )
        done("export", report.to_dict())
    return result
