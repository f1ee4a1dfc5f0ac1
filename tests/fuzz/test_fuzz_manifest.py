"""Manifests: a real manifest with any field replaced by any JSON value, or removed, ends in
a Manifest (that round-trips and whose artifact selection works) or a one-line
BundleError/ModelError naming the field, never AttributeError, TypeError, IndexError or
OverflowError."""

from __future__ import annotations

import contextlib
import copy
import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from kdedge.errors import BundleError, KdedgeError
from kdedge.runtimes.bundle import Manifest
from kdedge.runtimes.selection import choose_artifact
from tests.fuzz.conftest import json_values

REMOVE = object()


@pytest.fixture(scope="module")
def manifest(tiny_bundle):
    return json.loads((tiny_bundle / "manifest.json").read_text())


def _paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _paths(value, (*prefix, i))


def _mutated(tree, path, value):
    tree = copy.deepcopy(tree)
    node = tree
    for key in path[:-1]:
        node = node[key]
    if value is REMOVE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return tree


def _check(data):
    try:
        m = Manifest.from_dict(data, "manifest.json")
    except KdedgeError as exc:
        assert "\n" not in str(exc)
        return None
    assert Manifest.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    with contextlib.suppress(KdedgeError):
        choose_artifact(m)
    return m


@given(st.data(), st.one_of(json_values, st.just(REMOVE)))
def test_one_field_replaced_or_removed(manifest, data, value):
    path = data.draw(st.sampled_from([p for p in _paths(manifest) if p]))
    _check(_mutated(manifest, path, value))


@given(st.data())
def test_two_fields_replaced(manifest, data):
    paths = [p for p in _paths(manifest) if p]
    tree = manifest
    for _ in range(2):
        path = data.draw(st.sampled_from([p for p in _paths(tree) if p] or paths))
        tree = _mutated(tree, path, data.draw(json_values))
    _check(tree)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("labels",), [1, 2, 3], "labels[0]"),
        (("labels",), "order_tracking", "labels"),
        (("labels",), ["a", "a", "b"], "labels"),
        (("labels",), ["only"], "labels"),
        (("tokenizer", "path"), 3, "tokenizer.path"),
        (("tokenizer", "path"), None, "tokenizer.path"),
        (("tokenizer", "max_length"), -1, "tokenizer.max_length"),
        (("tokenizer", "max_length"), 0, "tokenizer.max_length"),
        (("tokenizer", "max_length"), 10**30, "tokenizer.max_length"),
        (("artifacts", 0, "files"), [], "artifacts[0].files"),
        (("artifacts", 0, "files", 0, "bytes"), -5, "artifacts[0].files[0].bytes"),
        (("artifacts", 0, "files", 0, "sha256"), "abc", "artifacts[0].files[0].sha256"),
        (
            ("artifacts", 0, "parity", "latency_ms_p50"),
            "fast",
            "artifacts[0].parity.latency_ms_p50",
        ),
        (("artifacts",), [], "artifacts"),
        (("calibration", "temperature"), 0, "calibration.temperature"),
        (("calibration", "temperature"), -1.5, "calibration.temperature"),
        (("calibration", "temperature"), float("nan"), "calibration.temperature"),
        (("calibration", "temperature"), float("inf"), "calibration.temperature"),
        (("calibration", "temperature"), True, "calibration.temperature"),
        (("schema_version",), 0, "schema_version"),
        (("router",), [1], "router"),
        (("inputs",), [], "inputs"),
    ],
)
def test_each_malformed_field_is_named(manifest, path, value, field):
    with pytest.raises(BundleError) as info:
        Manifest.from_dict(_mutated(manifest, path, value), "B/manifest.json")
    assert info.value.field == field
    assert f"'{field}'" in str(info.value) and str(info.value).startswith("B/manifest.json")


# -- the router sections a manifest (or a --policy file) carries ----------------------------

ROUTER_KEYS = [
    "confidence_threshold", "risk_threshold", "risk_labels", "risk_patterns",
    "low_confidence_action", "max_fallback_rate", "budget_window", "budget_min_events",
    "clarify_top_k", "min_token_prob", "clarify_text", "min_score", "low_score_action",
    "oos_label",
]  # fmt: skip


@given(st.dictionaries(st.sampled_from(ROUTER_KEYS), json_values, max_size=4))
@example({"risk_patterns": 5})
@example({"risk_labels": "order_tracking"})
@example({"clarify_text": 3})
@example({"min_score": 10**400})
@example({"risk_patterns": ["("]})
def test_router_sections_of_any_shape(section):
    from kdedge.runtimes.generation_prompt import GenerationConfig
    from kdedge.runtimes.generation_router import GenerationPolicy
    from kdedge.runtimes.rerank import RerankPolicy
    from kdedge.runtimes.router import Router, RouterPolicy

    for build in (
        lambda: Router(RouterPolicy.from_dict(section), ("a", "b")),
        lambda: GenerationPolicy.from_dict(section),
        lambda: RerankPolicy.from_dict(section),
        lambda: GenerationConfig.from_dict(section),
    ):
        with contextlib.suppress(KdedgeError):
            build()
