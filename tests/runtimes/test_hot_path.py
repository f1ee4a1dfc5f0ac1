"""The faster shared runtime path (issue #16) changes no result and no bundle check: the
one-text paths agree with the batch paths, files are verified before the engine sees them,
and a background open that fails or is cancelled leaves nothing behind."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict

import numpy as np
import pytest

from kdedge.errors import ModelError
from kdedge.runtimes import load
from kdedge.runtimes.bundle import sha256_file
from kdedge.runtimes.opening import BackgroundOpen
from kdedge.runtimes.router import Router, RouterPolicy
from tests.runtimes.tiny_bundle import build_tiny_bundle

TEXTS = [
    "where is my order",
    "track my package",
    "this is fraud call my lawyer",
    "gift card hours",
    "hello",
    "",
    "poison",  # non-finite logits: never answered
    "huge huge",
    "my lawyer is the order",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_bundle(tmp_path_factory.mktemp("hot") / "bundle", temperature=0.7)


def comparable(p) -> str:
    """Everything a prediction says but its id and latency, NaN included (as JSON)."""
    d = p.to_dict(probs=True, top_k=3)
    del d["id"], d["latency_ms"]
    return json.dumps([d, p.risk, p.candidates, p.risk_hits], sort_keys=True)


@pytest.mark.parametrize("route", [True, False])
@pytest.mark.parametrize(
    "policy",
    [
        None,
        {"risk_labels": ["escalation"], "risk_threshold": 0.4, "max_fallback_rate": None},
        {"risk_patterns": ["lawyer"], "low_confidence_action": "fallback", "budget_min_events": 2},
    ],
)
def test_predict_is_predict_batch_of_one(tiny, route, policy):
    # two runtimes, so that each router's budget window sees the same decisions
    with load(tiny, policy=policy) as one, load(tiny, policy=policy) as batch:
        for text in TEXTS:
            a, b = one.predict(text, route=route), batch.predict_batch([text], route=route)[0]
            assert comparable(a) == comparable(b), text
            np.testing.assert_array_equal(a.probs, b.probs)
        assert one.stats() == batch.stats()


def test_route_one_agrees_with_route_on_random_rows():
    rng = np.random.default_rng(0)
    labels = [f"l{i}" for i in range(40)]
    policy = RouterPolicy(
        confidence_threshold=0.3,
        risk_labels=tuple(labels[:9]),  # more than 8: numpy's pairwise sum in both paths
        risk_threshold=0.35,
        risk_patterns=("refund",),
        budget_min_events=5,
        max_fallback_rate=0.3,
    )
    one, batch = Router(policy, labels), Router(policy, labels)
    for n in range(300):
        row = rng.dirichlet(np.full(40, 0.2 if n % 2 else 2.0))
        if n % 17 == 0:
            row[3] = np.nan
        text = "a refund please" if n % 11 == 0 else "hello"
        a, b = one.route_one(text, row), batch.route([text], row[None, :])[0]
        assert json.dumps(asdict(a)) == json.dumps(asdict(b))  # NaN risk compares too
        assert one.stats() == batch.stats()
    assert one.stats()["decisions"]["clarify:budget_exceeded"] > 0  # the budget was exercised


def test_one_texts_mask_is_a_read_only_row_of_ones(tiny):
    with load(tiny) as rt:
        ids, mask = rt.tokenizer(["where is my order"])
        assert mask.shape == ids.shape and (mask == 1).all() and mask.dtype == np.int64
        with pytest.raises(ValueError, match="read-only"):
            mask[0, 0] = 0
        again, _ = rt.tokenizer(["where is my order please"])  # the cached row is untouched
        assert (rt.tokenizer(["hello"])[1] == 1).all() and again.shape[1] > ids.shape[1]


@pytest.mark.parametrize("size", [0, 1, (1 << 20) + 7])
def test_sha256_file_is_the_files_sha256(tmp_path, size):
    data = np.random.default_rng(size).bytes(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_a_damaged_artifact_never_reaches_the_engine(tmp_path, monkeypatch):
    import kdedge.runtimes.runtime as runtime

    bundle = build_tiny_bundle(tmp_path / "bundle")
    onnx = bundle / "onnx" / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the hash can tell
    onnx.write_bytes(bytes(data))
    opened = []
    monkeypatch.setattr(runtime, "open_backend", lambda *a, **k: opened.append(a))
    with pytest.raises(ModelError, match="sha256"):
        load(bundle)
    assert opened == []
    assert not [t for t in threading.enumerate() if t.name == "kdedge-load"]


def test_background_open_runs_the_opener_only_after_start():
    events = []
    opening = BackgroundOpen(
        lambda: events.append("open") or 42, prepare=lambda: events.append("prep")
    )
    with pytest.raises(RuntimeError, match="before start"):
        opening.result()
    opening.start()
    assert opening.result() == 42 and events == ["prep", "open"]


def test_background_open_reraises_and_cancels():
    def fail():
        raise ModelError("engine refused")

    opening = BackgroundOpen(fail)
    opening.start()
    with pytest.raises(ModelError, match="engine refused"):
        opening.result()
    called = []
    cancelled = BackgroundOpen(lambda: called.append(1))
    cancelled.cancel()
    assert called == [] and not cancelled._thread.is_alive()
