"""The task registry: each stage finds a family's entry point by the task's name."""

from __future__ import annotations

import json

import pytest

from kdedge.errors import ModelError
from kdedge.tasks import TASKS, get_task, task_of_model


def test_every_family_has_every_stage():
    assert set(TASKS) == {"intent", "rerank", "generate"}
    for task in TASKS.values():
        for stage in ("export", "open", "bench"):
            assert callable(task.entry(stage)), (task.name, stage)
        if task.detect is not None:
            assert callable(task.entry("detect"))


def test_unknown_task_names_the_known_ones():
    with pytest.raises(ModelError, match=r"task 'summarize'.*known: intent, rerank, generate"):
        get_task("summarize", "bundle/manifest.json")


def test_a_stage_a_family_lacks_is_a_clear_error():
    with pytest.raises(Exception, match="has no 'detect' stage"):
        TASKS["intent"].entry("detect")


@pytest.mark.parametrize(
    ("config", "meta", "task"),
    [
        ({"architectures": ["BertForSequenceClassification"], "num_labels": 5}, None, "intent"),
        ({"architectures": ["LlamaForCausalLM"]}, None, "generate"),
        ({"architectures": ["BertForSequenceClassification"]}, {"task": "rerank"}, "rerank"),
    ],
)
def test_a_model_directory_tells_its_family(tmp_path, config, meta, task):
    (tmp_path / "config.json").write_text(json.dumps(config))
    if meta is not None:
        (tmp_path / "kdedge.json").write_text(json.dumps(meta))
    assert task_of_model(tmp_path).name == task
