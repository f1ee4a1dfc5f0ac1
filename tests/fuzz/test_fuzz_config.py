"""Recipes and gates files: any TOML table, and any bytes, end in a recipe (or gates) or a
one-line ConfigError, never another exception."""

from __future__ import annotations

import contextlib
import copy
import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from kdedge.distill.gates import Gates
from kdedge.errors import KdedgeError
from kdedge.recipe import load_recipe, recipe_from_dict

VALID = {
    "name": "fuzz",
    "data": {"train": "train.jsonl", "split": [0.8, 0.1, 0.1], "seed": 0},
    "teacher": {"base": "minilm", "epochs": 2, "rules": [{"pattern": "refund", "label": "r"}]},
    "student": {"layers": 2},
    "distill": {"alpha": 0.5, "temperature": 2.0, "rare_labels": ["r"]},
    "evaluate": {"latency_samples": 10},
    "gates": {"accuracy": {"min": 0.5}},
    "score": {"accuracy": 1.0},
}
toml_values = st.recursive(
    st.one_of(
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.just(10**400),
        st.floats(allow_nan=True),
        st.text(max_size=10),
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _paths(value, (*prefix, i))


VALID_PATHS = [p for p in _paths(VALID) if p]


def _mutate(tree, path, value):
    tree = copy.deepcopy(tree)
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return tree


def _toml_file(data: bytes) -> Path:
    path = Path(tempfile.mkdtemp(prefix="kdedge-fuzz-")) / "recipe.toml"
    path.write_bytes(data)
    return path


@given(st.sampled_from(VALID_PATHS), toml_values)
@example(("teacher", "rules"), 3)
@example(("data", "split"), "0.8")
@example(("workdir",), 7)
@example(("distill", "temperature"), float("nan"))
def test_recipe_with_one_field_replaced(path, value):
    try:
        recipe = recipe_from_dict(_mutate(VALID, path, value), base_dir=Path("."), source="r")
    except KdedgeError as exc:
        assert "\n" not in str(exc)
        return
    recipe.path(recipe.data.train)  # the result is usable
    assert isinstance(recipe.root, Path)


@given(st.dictionaries(st.text(max_size=8), toml_values, max_size=5))
def test_recipe_of_any_table(raw):
    with contextlib.suppress(KdedgeError):
        recipe_from_dict(raw, base_dir=Path("."), source="r")


@given(st.binary(max_size=200))
@example(b'name = "caf\xe9"\n[data]\ntrain = "t.jsonl"\n')  # Latin-1, not UTF-8
@example(b"a = " + b"[" * 50_000)
@example(b"a = " + b"{b = " * 50_000)
@example(b"[gates]\naccuracy = { min = " + b"1" * 5000 + b" }\n")
@example(b"[gates]\naccuracy = { min = 1" + b"0" * 400 + b" }\n")
def test_recipe_and_gates_files_of_any_bytes(data):
    path = _toml_file(data)
    for read in (load_recipe, Gates.from_toml):
        try:
            read(path)
        except KdedgeError as exc:
            assert "\n" not in str(exc).strip()


GATES = {"gates": {"accuracy": {"min": 0.8}, "ece": {"max": 0.1}}, "score": {"accuracy": 1.0}}


@given(st.sampled_from([p for p in _paths(GATES) if p]), toml_values)
def test_gates_with_one_field_replaced(path, value):
    with contextlib.suppress(KdedgeError):
        Gates.from_dict(_mutate(GATES, path, value))
