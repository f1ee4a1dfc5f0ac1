"""Seeded stratified splitting."""

from __future__ import annotations

from collections import Counter

import pytest

from kdedge.data import Example, stratified_split
from kdedge.errors import ConfigError, DataError

THREE = {"train": 0.8, "validation": 0.1, "test": 0.1}


def rows(sizes: dict[str, int]) -> list[Example]:
    out = []
    for label, size in sizes.items():
        out.extend(Example(f"{label} {i}", label, source=f"d.jsonl:{i}") for i in range(size))
    return out


def test_same_seed_same_split_other_seed_other_split() -> None:
    data = rows({"a": 50, "b": 30, "c": 20})
    first = stratified_split(data, THREE, seed=7)
    assert stratified_split(data, THREE, seed=7) == first
    assert stratified_split(data, THREE, seed=8) != first


def test_split_is_a_partition_in_input_order() -> None:
    data = rows({"a": 40, "b": 13, "c": 5, "d": 1})
    parts = stratified_split(data, THREE, seed=0)
    assert list(parts) == ["train", "validation", "test"]
    together = [ex for part in parts.values() for ex in part]
    assert sorted(together, key=data.index) == data
    assert len(set(together)) == len(data)
    for part in parts.values():
        assert part == sorted(part, key=data.index)


def test_proportions_per_class() -> None:
    sizes = {"a": 500, "b": 120, "c": 37}
    parts = stratified_split(rows(sizes), THREE, seed=3)
    for name, fraction in THREE.items():
        counts = Counter(ex.label for ex in parts[name])
        for label, size in sizes.items():
            assert abs(counts[label] - size * fraction) <= 1, (name, label)


def test_global_sizes_hit_the_targets_even_with_many_small_classes() -> None:
    # 10 classes of 2: per-class rounding alone would put everything in train
    parts = stratified_split(rows({f"c{i}": 2 for i in range(10)}), THREE, seed=0)
    assert {name: len(part) for name, part in parts.items()} == {
        "train": 16,
        "validation": 2,
        "test": 2,
    }
    assert {ex.label for ex in parts["train"]} == {f"c{i}" for i in range(10)}


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_tiny_classes_keep_a_row_in_train(size: int) -> None:
    data = rows({"big": 100, "tiny": size})
    for seed in range(5):
        parts = stratified_split(data, THREE, seed=seed)
        tiny = {name: sum(ex.label == "tiny" for ex in part) for name, part in parts.items()}
        assert tiny["train"] >= 1
        assert sum(tiny.values()) == size


def test_single_row_dataset() -> None:
    data = rows({"only": 1})
    assert stratified_split(data, THREE, seed=0) == {"train": data, "validation": [], "test": []}


def test_anchor_is_first_split_without_train_key() -> None:
    parts = stratified_split(rows({"a": 1, "b": 9}), {"fit": 0.5, "holdout": 0.5}, seed=1)
    assert {ex.label for ex in parts["fit"]} == {"a", "b"}
    assert len(parts["fit"]) + len(parts["holdout"]) == 10


def test_two_way_split() -> None:
    parts = stratified_split(rows({"a": 10, "b": 10}), {"train": 0.9, "validation": 0.1}, 0)
    assert [len(parts["train"]), len(parts["validation"])] == [18, 2]


def test_empty_input() -> None:
    assert stratified_split([], THREE, seed=0) == {"train": [], "validation": [], "test": []}


def test_unlabeled_rows_cannot_be_stratified() -> None:
    data = [*rows({"a": 3}), Example("no label", source="u.jsonl:4")]
    with pytest.raises(DataError) as info:
        stratified_split(data, THREE, seed=0)
    assert (info.value.path, info.value.line, info.value.field) == ("u.jsonl", 4, "label")
    assert "u.jsonl:4" in str(info.value)


@pytest.mark.parametrize(
    ("fractions", "needle"),
    [
        ({}, "empty"),
        ({"train": 0.8, "test": 0.1}, "sum to 1"),
        ({"train": 1.0, "test": 0.0}, "must be a number > 0"),
        ({"train": 1.2, "test": -0.2}, "must be a number > 0"),
        ({"train": float("nan"), "test": 0.5}, "must be a number > 0"),
    ],
)
def test_bad_fractions(fractions: dict[str, float], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        stratified_split(rows({"a": 3}), fractions, seed=0)


def test_fractions_tolerate_float_rounding() -> None:
    parts = stratified_split(rows({"a": 30}), {"x": 0.7, "y": 0.2, "z": 0.1}, seed=0)
    assert [len(p) for p in parts.values()] == [21, 6, 3]


def test_ties_favour_a_class_the_split_does_not_have_yet() -> None:
    data = rows({"rare": 6, "a": 24, "b": 24, "c": 24, "d": 24})
    for seed in range(10):
        parts = stratified_split(data, {"train": 8 / 9, "validation": 1 / 9}, seed=seed)
        assert Counter(ex.label for ex in parts["validation"])["rare"] == 1
        assert len(parts["validation"]) == 11
