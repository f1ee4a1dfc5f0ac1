"""Recipe and gates files that used to give a traceback are one-line ConfigErrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdedge.distill.gates import Gates
from kdedge.errors import ConfigError
from kdedge.recipe import load_recipe, recipe_from_dict

GOOD = '[data]\ntrain = "train.jsonl"\n[teacher]\nbase = "minilm"\n'


@pytest.mark.parametrize("read", [load_recipe, Gates.from_toml])
def test_a_file_that_is_not_utf8(tmp_path: Path, read) -> None:
    path = tmp_path / "r.toml"
    path.write_bytes(b'# caf\xe9 recipe\n[data]\ntrain = "t.jsonl"\n')  # Latin-1
    with pytest.raises(ConfigError, match=r"r\.toml:1: not valid UTF-8"):  # was UnicodeDecodeError
        read(path)


@pytest.mark.parametrize("read", [load_recipe, Gates.from_toml])
def test_toml_nested_too_deeply(tmp_path: Path, read) -> None:
    path = tmp_path / "r.toml"
    path.write_text("a = " + "[" * 50_000)
    with pytest.raises(ConfigError, match="nested too deeply"):  # was RecursionError
        read(path)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[teacher]\nbase = "minilm"\nrules = 3\n', "rules must be a list"),
        ('[teacher]\nbase = "minilm"\nepochs = "six"\n', "epochs must be an integer"),
        ('[teacher]\nbase = "minilm"\nlr = true\n', "lr must be a number"),
        ('[teacher]\nbase = "minilm"\nlr = nan\n', "lr must be a finite number"),
        ('workdir = 3\n[teacher]\nbase = "minilm"\n', "workdir must be a string"),
        (
            '[teacher]\nbase = "minilm"\n[student]\nlayer_map = "0,2"\n',
            "layer_map must be an array",
        ),
    ],
)
def test_values_of_the_wrong_type(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "r.toml"
    path.write_text(
        '[data]\ntrain = "t.jsonl"\n' + toml
        if not toml.startswith("workdir")
        else toml.replace("[teacher]", '[data]\ntrain = "t.jsonl"\n[teacher]')
    )
    with pytest.raises(ConfigError, match=message):
        load_recipe(path)


def test_a_good_recipe_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(GOOD + "[student]\nlayer_map = [0, 2]\n[distill]\nalpha = 1\n")
    recipe = load_recipe(path)
    assert recipe.student.layer_map == (0, 2) and recipe.distill.alpha == 1
    assert recipe_from_dict(
        {"data": {"train": "t"}, "teacher": {"models": ["a"]}}, base_dir=tmp_path, source="x"
    ).teacher.models == ("a",)
