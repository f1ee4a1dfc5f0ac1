"""The task families kdedge distills, and where each stage finds a family's code.

A bundle's manifest names its task (``intent``, ``generate``, ...); a model directory tells
its task from its own config files. Every stage that differs by task (export, the runtime's
``load``, bench) asks this registry for the family's entry point and calls it, so a new
family is one package of modules plus one :class:`Task` line here.

Entries are ``"module:attr"`` strings resolved on first use: importing this module imports
nothing else of kdedge, so the torch-free runtime uses it too.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kdedge.errors import ConfigError, ModelError

Stage = Literal["detect", "export", "open", "bench"]


@dataclass(frozen=True)
class Task:
    """One task family and its entry point per stage.

    - ``detect(model_dir: Path) -> bool``: cheap (reads JSON, never imports torch); says
      whether a model directory holds this family's model. ``None`` for the family every
      other one falls back to (intent).
    - ``export(model_dir, specs, out_dir, **options) -> ExportReport``: convert, prove
      parity, write the bundle (:func:`kdedge.converters.export.export_bundle` calls it).
    - ``open(root, manifest, **options)``: the runtime object for a bundle of this task
      (:func:`kdedge.runtimes.load` calls it; must not import torch).
    - ``bench(bundle, manifest, artifacts, targets, **settings) -> BenchReport``.
    """

    name: str
    summary: str
    export: str
    open: str
    bench: str
    detect: str | None = None

    def entry(self, stage: Stage) -> Callable[..., Any]:
        """The callable this family provides for ``stage``, imported now."""
        target = getattr(self, stage)
        if target is None:
            raise ConfigError(f"task '{self.name}' has no '{stage}' stage")
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "intent",
            "text classification with calibrated probabilities and a risk router",
            export="kdedge.converters.export_intent:export_intent",
            open="kdedge.runtimes.runtime:open_intent",
            bench="kdedge.bench.classifier:bench_classifier",
        ),
        Task(
            "rerank",
            "a cross-encoder scoring (query, passage) pairs, judged by NDCG",
            export="kdedge.converters.export_rerank:export_rerank",
            open="kdedge.runtimes.rerank:open_rerank",
            bench="kdedge.bench.rerank:bench_rerank",
            detect="kdedge.rerank.models:is_reranker",
        ),
        Task(
            "generate",
            "a causal LM answering from evidence, shipped as GGUF",
            export="kdedge.converters.export_generate:export_generate",
            open="kdedge.runtimes.generate:load_generation",
            bench="kdedge.bench.generation:bench_generation",
            detect="kdedge.llm.models:is_causal_lm",
        ),
    )
}
"""Every family, in the order :func:`task_of_model` tries their ``detect``."""


def get_task(name: str, where: str = "the manifest") -> Task:
    """The family called ``name``; an unknown one names the known ones."""
    if name not in TASKS:
        raise ModelError(
            f"{where} has task {name!r}, which this kdedge does not know "
            f"(known: {', '.join(TASKS)}). Fix: pip install -U kdedge"
        )
    return TASKS[name]


def task_of_model(model_dir: str | Path) -> Task:
    """The family of the model in ``model_dir``: the first whose ``detect`` says yes."""
    path = Path(model_dir)
    for task in TASKS.values():
        if task.detect is not None and task.entry("detect")(path):
            return task
    return TASKS["intent"]
