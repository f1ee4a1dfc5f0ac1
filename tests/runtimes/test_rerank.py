"""The torch-free rerank runtime: load, rank, route, serve."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from kdedge.errors import ConfigError, DataError
from kdedge.runtimes import load
from kdedge.runtimes.rerank import RerankPolicy, RerankRuntime

QUERY = "where is my order"
PASSAGES = ["tell me a joke", "track my package", "order status please", "please " * 300]


@pytest.fixture(scope="module")
def rt(rerank_exported):
    runtime = load(rerank_exported[1], artifact="onnx")
    yield runtime
    runtime.close()


def test_load_gives_a_reranker_that_matches_the_engine(rt):
    assert isinstance(rt, RerankRuntime)
    r = rt.rerank(QUERY, PASSAGES, top_k=2)
    assert len(r.results) == 2
    full = rt.rerank(QUERY, PASSAGES)
    assert [x.index for x in full.results] == list(np.argsort(-full.scores, kind="stable"))
    assert r.results == full.results[:2]
    # batching does not change a score: one pair at a time gives the same numbers
    singles = [rt.scores(QUERY, [p])[0] for p in PASSAGES]
    np.testing.assert_allclose(full.scores, singles, atol=1e-5)


def test_a_long_passage_is_truncated_not_refused(rt):
    ids, _ = rt.tokenizer.pair_ids(QUERY, [PASSAGES[-1]])
    assert len(ids[0]) == rt.manifest.max_length
    assert np.isfinite(rt.scores(QUERY, [PASSAGES[-1]])).all()


@pytest.mark.parametrize(
    ("query", "passages", "message"),
    [
        ("", ["a"], "the query is empty"),
        ("q", [], "no passages to rank"),
        ("q", ["ok", "  "], "passage 1 is empty"),
        ("q", ["x"] * 1001, "1001 passages exceed the limit of 1000"),
        ("q", "one string", "must be a list of strings"),
    ],
)
def test_bad_input_is_a_one_line_data_error(rt, query, passages, message):
    with pytest.raises(DataError, match=message):
        rt.rerank(query, passages)


def test_below_min_score_there_is_no_good_candidate(rt):
    best = float(rt.scores(QUERY, PASSAGES).max())
    strict = RerankRuntime(
        rt.root,
        rt.manifest,
        rt.artifact,
        rt.engine,
        rt.tokenizer,
        RerankPolicy(min_score=best + 1.0, low_score_action="clarify"),
    )
    r = strict.rerank(QUERY, PASSAGES)
    assert (r.route, r.reason) == ("clarify", "no_good_candidate")
    assert strict.rerank(QUERY, PASSAGES, route=False).route == "answer"
    assert strict.stats()["router"]["decisions"] == {
        "clarify:no_good_candidate": 1,
        "answer:confident": 1,
    }


def test_non_finite_scores_are_never_answered(rt):
    class Broken:
        name = "broken"

        def logits(self, ids, mask, types=None):
            return np.full((len(ids), 1), np.nan, dtype=np.float32)

    broken = RerankRuntime(
        rt.root, rt.manifest, rt.artifact, Broken(), rt.tokenizer, RerankPolicy()
    )
    r = broken.rerank(QUERY, PASSAGES)
    assert (r.route, r.reason) == ("fallback", "model_error")


def test_policy_errors_are_clear():
    with pytest.raises(ConfigError, match="low_score_action must be one of"):
        RerankPolicy(low_score_action="teacher")
    with pytest.raises(ConfigError, match="min_score must be a finite number"):
        RerankPolicy(min_score=float("nan"))
    with pytest.raises(ConfigError, match="unknown rerank router key"):
        RerankPolicy.from_dict({"confidence_threshold": 0.5})


def test_teacher_targets_are_refused_for_a_reranker(rerank_exported):
    with pytest.raises(ConfigError, match="calls no teacher"):
        load(rerank_exported[1], fallback=object())  # type: ignore[arg-type]


def _post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serve_answers_the_rerank_shape_users_know(rt):
    from kdedge.runtimes.server import PredictServer

    server = PredictServer(rt, port=0)
    server.start_background()
    try:
        status, data = _post(
            f"{server.url}/rerank",
            {"query": QUERY, "documents": PASSAGES, "top_n": 2, "return_documents": True},
        )
        assert status == 200
        assert [r["index"] for r in data["results"]] == [
            x.index for x in rt.rerank(QUERY, PASSAGES, 2).results
        ]
        assert data["results"][0]["document"] == PASSAGES[data["results"][0]["index"]]
        assert {"relevance_score", "index"} <= set(data["results"][0])
        assert _post(f"{server.url}/v1/rerank", {"query": QUERY, "passages": ["a"]})[0] == 200
        status, data = _post(f"{server.url}/rerank", {"query": QUERY, "documents": []})
        assert status == 400 and "non-empty list" in data["error"]
        status, data = _post(f"{server.url}/rerank", {"query": QUERY, "documents": ["a"], "x": 1})
        assert status == 400 and "unknown field" in data["error"]
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        assert 'kdedge_predictions_total{reason="confident",route="answer"}' in metrics
    finally:
        server.shutdown()
        server.server_close()


def test_predict_and_inspect_from_the_cli(rerank_exported):
    from tests.cli.test_cli import run

    bundle = str(rerank_exported[1])
    code, out, err = run(
        ["predict", bundle, "--query", QUERY, *PASSAGES[:3], "--top-k", "2", "--json"]
    )
    assert code == 0, err
    data = json.loads(out)
    assert len(data["results"]) == 2 and data["route"] in ("answer", "fallback")
    assert data["results"][0]["document"] in PASSAGES
    code, out, _ = run(["predict", bundle, "--query", QUERY, *PASSAGES[:3]])
    assert code == 0 and "rank" in out and "score" in out
    code, _, err = run(["predict", bundle, "track my package"])
    assert code == 2 and "pass --query" in err
    code, _, err = run(["predict", bundle, "--query", QUERY, "ok", "  "])
    assert code == 2 and "passage 1 is empty" in err
    code, _, err = run(["predict", bundle, "--query", QUERY])
    assert code == 2 and "the query has no candidates" in err and "Traceback" not in err
    code, out, _ = run(["inspect", bundle])
    assert code == 0 and "task rerank" in out and "token_type_ids" in out


def test_query_is_refused_for_a_classifier(exported):
    from tests.cli.test_cli import run

    code, _, err = run(["predict", str(exported[1]), "--query", "q", "where is my order"])
    assert code == 2 and "--query applies to rerank bundles" in err


def test_export_from_the_cli_shows_ranking_parity(tiny_reranker, rerank_groups, tmp_path):
    from tests.cli.test_cli import run

    code, out, err = run(
        [
            "export",
            str(tiny_reranker),
            "-f",
            "onnx",
            "--eval-data",
            str(rerank_groups),
            "--out",
            str(tmp_path / "b"),
        ]
    )
    assert code == 0, err
    assert "onnx" in out and "pass" in out
