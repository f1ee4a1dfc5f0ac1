"""Non-finite model output is never answered (issue #19, defect 1).

On every backend the repo has: the real onnxruntime and OpenVINO engines on a tiny bundle
with poisoned weights, a real llama.cpp GGUF whose tensor data was corrupted (its sha256
updated, so verification passes), and a fake engine returning NaN/inf logits. Each time the
router must give ``model_error`` (never ``answer``), /metrics must count it, and JSON output
must stay strict (``null``, never ``NaN``). A zero, negative or NaN temperature is refused
when the bundle is loaded.
"""

from __future__ import annotations

import json
import math
import urllib.request

import numpy as np
import pytest

from kdedge import jsonout
from kdedge.errors import BundleError
from kdedge.runtimes import load
from kdedge.runtimes.bundle import sha256_file
from kdedge.runtimes.router import REPHRASE
from kdedge.runtimes.server import PredictServer
from tests.cli.test_cli import run
from tests.runtimes.tiny_bundle import build_tiny_bundle

BROKEN = ["poison where is my order", "huge huge order", "blowup", "fraud poison lawyer"]


def strict(text: str):
    """Parse JSON as JavaScript's JSON.parse does: NaN and Infinity are errors."""

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_bundle(tmp_path_factory.mktemp("nonfinite") / "bundle", openvino=True)


def assert_never_answered(p):
    assert p.route in ("clarify", "fallback") and p.reason == "model_error"
    assert math.isnan(p.confidence)
    d = strict(jsonout.dumps(p.to_dict(probs=True)))
    assert d["confidence"] is None and d["risk"] is None
    assert all(v is None for v in d["probs"].values())


@pytest.mark.parametrize("artifact", ["onnx", "openvino"])
def test_poisoned_weights_on_real_engines_are_never_answered(tiny, artifact):
    with load(tiny, artifact=artifact) as rt:
        assert not np.isfinite(rt.logits(BROKEN)).all(axis=1).any()  # the engine itself
        for p in [*rt.predict_batch(BROKEN), *rt.predict_batch(BROKEN, route=False)]:
            assert_never_answered(p)
        good = rt.predict("where is my order")
        assert (good.route, good.reason) == ("answer", "confident")  # the rest still answer
        assert rt.stats()["router"]["decisions"]["clarify:model_error"] == 2 * len(BROKEN)


def test_softmax_rows_nan_exactly_where_the_logits_are_broken():
    import warnings

    from kdedge.runtimes.runtime import softmax

    ninf = -np.inf
    logits = np.array(
        [
            [1.0, 2.0, 3.0],
            [1.0, ninf, 3.0],
            [np.nan, 0.0, 0.0],
            [np.inf, 0.0, 0.0],
            [ninf, ninf, ninf],
        ],
        dtype=np.float32,
    )
    for t in (1.0, 0.7, 2.5, 1e-9):  # 1e-9 takes the errstate path: it would overflow
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # never a RuntimeWarning
            p = softmax(logits, t)
        assert p.dtype == np.float64 and p.shape == logits.shape
        assert np.isnan(p[2:]).all()  # NaN, +inf, all -inf: never a distribution
        assert np.allclose(p[:2].sum(axis=1), 1.0) and p[1, 1] == 0.0
        ref = np.exp(np.float64([1, 2, 3]) / t - 3 / t)
        assert np.allclose(p[0], ref / ref.sum(), rtol=1e-12, atol=1e-300)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        assert np.isnan(softmax(logits[:1], bad)).all()


class FakeEngine:
    """Stands in for a backend: every row of logits is ``value``."""

    name = "fake"

    def __init__(self, value, n_labels):
        self.value, self.n_labels = value, n_labels

    def logits(self, input_ids, attention_mask, token_type_ids=None):
        return np.full((len(input_ids), self.n_labels), self.value, dtype=np.float32)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("action", ["clarify", "fallback"])
def test_a_fake_engine_returning_nan_or_inf(tiny, value, action):
    policy = {"low_confidence_action": action, "max_fallback_rate": None}
    with load(tiny, artifact="onnx", policy=policy) as rt:
        rt.backend = FakeEngine(value, len(rt.labels))
        p = rt.predict("where is my order")
        assert_never_answered(p)
        assert p.route == action and p.clarify == (REPHRASE if action == "clarify" else None)


def test_a_risk_rule_still_sends_a_broken_message_to_the_teacher(tiny):
    policy = {"risk_patterns": ["lawyer"], "max_fallback_rate": None}
    with load(tiny, artifact="onnx", policy=policy) as rt:
        p = rt.predict("poison lawyer")
        assert (p.route, p.reason, p.risk_hits) == ("fallback", "model_error", ("lawyer",))


def test_a_zero_temperature_set_after_loading_is_still_never_answered(tiny):
    with load(tiny, artifact="onnx") as rt:
        for t in (0.0, -1.0, float("nan")):
            rt.temperature = t
            assert_never_answered(rt.predict("where is my order"))


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "1.0", None])
def test_a_tampered_temperature_is_refused_at_load(tiny, tmp_path, bad):
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(tiny, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["calibration"]["temperature"] = bad
    (bundle / "manifest.json").write_text(json.dumps(manifest))  # NaN as Python writes it
    with pytest.raises(
        BundleError, match=r"'calibration\.temperature' must be a finite number > 0"
    ):
        load(bundle)
    code, out, err = run(["predict", str(bundle), "hi", "--json"])
    assert code == 2 and out == "" and "calibration.temperature" in err
    assert len(err.strip().splitlines()) == 1 or "Traceback" not in err


def test_cli_predict_json_is_strict_and_routes_model_error(tiny):
    code, out, err = run(
        ["predict", str(tiny), "fraud poison lawyer", "where is my order", "--json", "--probs"]
    )
    assert code == 0, err
    rows = strict(out)
    assert (rows[0]["route"], rows[0]["reason"], rows[0]["confidence"]) == (
        "clarify",
        "model_error",
        None,
    )
    assert rows[1]["route"] == "answer" and rows[1]["confidence"] > 0.9
    code, out, _ = run(["predict", str(tiny), "blowup", "--no-route"])  # the table too
    assert code == 0 and "model_error" in out


def test_metrics_count_model_errors(tiny):
    with load(tiny, artifact="onnx") as rt:
        server = PredictServer(rt, "127.0.0.1", 0)
        server.start_background()
        try:
            body = json.dumps({"texts": [*BROKEN[:2], "where is my order"]}).encode()
            with urllib.request.urlopen(server.url + "/predict", body, timeout=10) as r:
                results = strict(r.read().decode())["results"]
            assert [x["reason"] for x in results] == ["model_error", "model_error", "confident"]
            with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
                metrics = r.read().decode()
        finally:
            server.shutdown()
            server.server_close()
    assert 'kdedge_predictions_total{reason="model_error",route="clarify"} 2.0' in metrics
    assert "kdedge_model_errors_total 2.0" in metrics


# -- generate bundles ------------------------------------------------------------------------


class FakeGenerator:
    """A llama.cpp generator stand-in whose answers carry the given log-probabilities."""

    name, n_ctx, threads = "llamacpp", 2048, 1

    def __init__(self, logprobs):
        self.logprobs = tuple(logprobs)

    def generate(self, messages, max_tokens):
        from kdedge.runtimes.backends.llamacpp import GenerationResult

        n = len(self.logprobs)
        return GenerationResult("Yes, in stock.", tuple(range(n)), self.logprobs, 12, "stop", 1, 1)

    def close(self):
        pass


def _generation_runtime(logprobs, router=None):
    from kdedge.runtimes.bundle import Artifact, FileEntry, Manifest
    from kdedge.runtimes.generate import GenerationRuntime
    from kdedge.runtimes.generation_prompt import GenerationConfig
    from kdedge.runtimes.generation_router import GenerationPolicy, GenerationRouter

    entry = FileEntry("g/model.gguf", "0" * 64, 1)
    artifact = Artifact("gguf-q4_1", "gguf", "q4_1", "llamacpp", (entry,))
    manifest = Manifest(
        "generate", (), 2048, 1.0, (artifact,), FileEntry("tokenizer.json", "0" * 64, 1)
    )
    policy = GenerationPolicy.from_dict({"max_fallback_rate": None, **(router or {})})
    return GenerationRuntime(
        None,
        manifest,
        artifact,
        FakeGenerator(logprobs),
        GenerationConfig(),
        GenerationRouter(policy),
    )


@pytest.mark.parametrize(
    "logprobs", [(-0.1, float("nan")), (float("nan"),), (-0.1, float("inf")), (5000.0, -0.1)]
)
@pytest.mark.parametrize("route", [True, False])
def test_a_generator_with_non_finite_logprobs_is_never_answered(logprobs, route):
    rt = _generation_runtime(logprobs)
    g = rt.generate("Is Nana in stock?", ["Nana | in stock"], route=route)
    assert (g.route, g.reason) == ("fallback", "model_error") and g.text is None
    d = strict(jsonout.dumps(g.to_dict(logprobs=True)))
    assert d["route"] == "fallback" and "NaN" not in json.dumps(d)
    assert rt.stats()["router"]["decisions"] == {"fallback:model_error": 1}
    clarify = _generation_runtime(logprobs, {"low_confidence_action": "clarify"})
    g = clarify.generate("Is Nana in stock?", route=route)
    assert (g.route, g.reason, g.source) == ("clarify", "model_error", "router")


def test_a_generator_with_good_logprobs_still_answers():
    g = _generation_runtime((-0.01, -0.02)).generate("Is Nana in stock?")
    assert (g.route, g.reason, g.text) == ("answer", "confident", "Yes, in stock.")


# -- llama.cpp: a GGUF whose tensor data is corrupt but whose sha256 matches ----------------


def _corrupt_gguf(bundle, artifact="gguf-f16"):
    """NaN over the classifier head's tensor data; the manifest's hash and size updated."""
    import gguf

    manifest = json.loads((bundle / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["name"] == artifact)["files"][0]
    path = bundle / entry["path"]
    reader = gguf.GGUFReader(str(path))
    heads = [t for t in reader.tensors if t.name.startswith("cls")]
    assert heads, [t.name for t in reader.tensors]
    data = bytearray(path.read_bytes())
    for t in heads:
        nan = np.full(t.n_elements, np.nan, dtype=np.float16 if t.tensor_type == 1 else np.float32)
        start = t.data_offset
        data[start : start + nan.nbytes] = nan.tobytes()
    del reader
    path.write_bytes(bytes(data))
    entry["sha256"], entry["bytes"] = sha256_file(path), path.stat().st_size
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_a_corrupt_gguf_with_a_matching_hash_is_never_answered(bundle_copy):
    _corrupt_gguf(bundle_copy)
    with load(bundle_copy, artifact="gguf-f16") as rt:  # verified: the hashes match
        assert not np.isfinite(rt.logits(["this is fraud call my lawyer"])).all()
        assert_never_answered(rt.predict("this is fraud call my lawyer"))
    code, out, err = run(
        [
            "predict",
            str(bundle_copy),
            "this is fraud call my lawyer",
            "--json",
            "--artifact",
            "gguf-f16",
        ]
    )
    assert code == 0, err
    row = strict(out)
    assert row["route"] != "answer" and row["reason"] == "model_error"
    assert row["confidence"] is None and row["risk"] is None


@pytest.mark.parametrize("artifact", ["onnx", "openvino", "gguf-f16"])
def test_every_real_backend_behind_a_nan_injecting_wrapper(exported, artifact):
    """The real engine of each backend runs; its output is then made non-finite."""
    with load(exported[1], artifact=artifact) as rt:
        engine = rt.backend

        class Broken:
            name = engine.name

            def logits(self, *feeds):
                out = np.array(engine.logits(*feeds))
                out[:, 0] = np.nan
                return out

        rt.backend = Broken()
        for p in rt.predict_batch(["this is fraud call my lawyer", "hello"]):
            assert_never_answered(p)


def test_the_lambda_handler_never_returns_nan(tiny, monkeypatch):
    from kdedge.runtimes import aws_lambda

    monkeypatch.setenv("KDEDGE_BUNDLE", str(tiny))
    monkeypatch.setenv("KDEDGE_ARTIFACT", "onnx")
    monkeypatch.setattr(aws_lambda, "_runtime", None)
    try:
        direct = aws_lambda.handler({"text": "poison order"}, None)  # the runtime's own dumps
        assert direct["confidence"] is None and direct["reason"] == "model_error"
        json.dumps(direct, allow_nan=False)
        event = {"httpMethod": "POST", "path": "/predict", "body": '{"text": "huge huge"}'}
        out = aws_lambda.handler(event, None)
        assert strict(out["body"])["reason"] == "model_error"
        event["body"] = '{"text": "hi", "top_k": ' + "1" * 5000 + "}"
        assert aws_lambda.handler(event, None)["statusCode"] == 400
    finally:
        if aws_lambda._runtime is not None:
            aws_lambda._runtime.close()
        aws_lambda._runtime = None
