"""Generate bundles in the torch-free runtime: the llama.cpp generator, the router for
generations (risk rule -> teacher, token log-probabilities -> confidence), the teacher
fallback on a fake OpenAI-compatible server, `kdedge predict` / `kdedge serve` and `kdedge
bench` on a bundle wrapping the real SmolLM2-135M-Instruct GGUF.

The first tests need no model; the rest load SmolLM2 once per session (marked slow, kept in
CI, short answers)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from kdedge.errors import ConfigError, DataError, ModelError
from kdedge.llm import prompts
from kdedge.runtimes.api import BadRequest, parse_generate_request
from kdedge.runtimes.bundle import read_manifest
from kdedge.runtimes.fallback import FallbackAnswer, KdedgeClient, OpenAIClient
from kdedge.runtimes.generate import GenerationRuntime
from kdedge.runtimes.generation_prompt import GenerationConfig, user_turn
from kdedge.runtimes.generation_result import Generation
from kdedge.runtimes.generation_router import (
    CLARIFY_TEXT,
    DEFAULT_ROUTER,
    GenerationPolicy,
    GenerationRouter,
)
from kdedge.runtimes.requestlog import TieredLog
from tests.cli.test_cli import run

from .fault_server import FaultServer, chat_completion, ok, status
from .generate_bundle import ARTIFACT, CONTEXT, build_generate_bundle, generation_section

CHAT = "/v1/chat/completions"
GROUNDED = (
    "What is the price of One Piece volume 100?",
    ["One Piece vol. 100 | paperback | in stock | $9.99"],
)
REFUND = "I want a refund for the damaged box set I received"
TEACHER_SAYS = "I'm sorry about the damage. I'm handing you to a human agent for the refund."


# ----------------------------------------------------------------------------- no model


def test_user_turn_has_the_layout_of_the_shared_prompt():
    question, evidence = GROUNDED
    assert user_turn(prompts.USER_TEMPLATE, question, evidence) == prompts.user_turn(
        question, evidence
    )
    assert user_turn(prompts.USER_TEMPLATE, " hi ") == prompts.user_turn("hi")


def test_generation_config_is_read_and_checked(tmp_path):
    config = GenerationConfig.from_dict(generation_section(stop="</s>", context_length="512"))
    assert config.context_length == 512 and config.stop == ("</s>",)
    assert config.stops() == ("</s>", "<|im_end|>")
    with pytest.raises(ModelError, match=r"must hold \{question\}"):
        GenerationConfig.from_dict({"user_template": "Evidence: {evidence}"})
    with pytest.raises(ModelError, match=r"nothing else"):
        GenerationConfig.from_dict({"user_template": "{question} {customer}"})
    with pytest.raises(ModelError, match="malformed generation section"):
        GenerationConfig.from_dict({"max_new_tokens": "many"})
    # a generate manifest without the section cannot be served
    (tmp_path / "manifest.json").write_text("{}")
    manifest = type("M", (), {"generation": {}})()
    with pytest.raises(ModelError, match="no 'generation' section"):
        GenerationConfig.of(tmp_path, manifest)


def test_policy_defaults_overrides_and_errors():
    policy = GenerationPolicy.from_dict({})
    assert policy.router.confidence_threshold == DEFAULT_ROUTER["confidence_threshold"]
    assert policy.router.low_confidence_action == "fallback" and policy.min_token_prob == 0.0
    assert len(policy.router.risk_patterns) == 3 and policy.clarify_text == CLARIFY_TEXT
    custom = GenerationPolicy.from_dict(
        {"risk_patterns": [], "min_token_prob": 0.05, "clarify_text": "Which title?"}
    )
    assert custom.router.risk_patterns == () and custom.min_token_prob == 0.05
    assert (
        "risk_labels" not in custom.to_dict() and custom.to_dict()["clarify_text"] == "Which title?"
    )
    with pytest.raises(ConfigError, match="risk_labels do not apply"):
        GenerationPolicy.from_dict({"risk_labels": ["escalation"]})
    with pytest.raises(ConfigError, match="unknown key"):
        GenerationPolicy.from_dict({"temperature": 0.7})
    with pytest.raises(ConfigError, match="min_token_prob must be in"):
        GenerationPolicy.from_dict({"min_token_prob": 2})


def test_router_stages_and_budget():
    router = GenerationRouter(GenerationPolicy.from_dict({"budget_min_events": 1000}))
    assert router.rule_hits("Can I get a REFUND?") == (r"\brefund",)
    assert router.rule_hits("Is Nana in stock?") == ()
    assert router.decide(("x",), None, None) == ("fallback", "risk_rule")
    assert router.decide((), 0.9, 0.2) == ("answer", "confident")
    assert router.decide((), 0.4, 0.2) == ("fallback", "low_confidence")
    assert router.decide((), None, None) == ("fallback", "low_confidence")  # said nothing
    strict = GenerationRouter(
        GenerationPolicy.from_dict({"min_token_prob": 0.1, "low_confidence_action": "clarify"})
    )
    assert strict.decide((), 0.9, 0.05) == ("clarify", "low_confidence")
    assert strict.decide((), 0.9, 0.2) == ("answer", "confident")
    # past max_fallback_rate (enforced from the first event here), fallbacks ask instead
    tight = GenerationRouter(
        GenerationPolicy.from_dict({"max_fallback_rate": 0.0, "budget_min_events": 1})
    )
    assert tight.decide(("x",), None, None) == ("clarify", "budget_exceeded")
    stats = tight.stats()
    assert stats["budget_exceeded"] == 1 and stats["decisions"] == {"clarify:budget_exceeded": 1}
    assert stats["window_events"] == 1 and stats["window_fallback_rate"] == 0.0


def test_generation_record_and_log_tiers():
    teacher = FallbackAnswer(None, TEACHER_SAYS, "openai:t", 12.0, 1, 30, 9, 0.001, "raw")
    g = Generation(
        text=TEACHER_SAYS,
        route="fallback",
        reason="risk_rule",
        source="teacher",
        risk_hits=(r"\brefund",),
        fallback=teacher,
        artifact=ARTIFACT,
        id="abc",
        logprobs=(-0.1, -0.2),
    )
    d = g.to_dict(logprobs=True)
    assert d["text"] == TEACHER_SAYS and d["fallback"]["completion_tokens"] == 9
    assert d["risk_hits"] == [r"\brefund"] and d["logprobs"] == [-0.1, -0.2]
    lines: list[str] = []
    log = TieredLog(lines.append)
    log.record(g, "secret question")
    event = json.loads(lines[0])
    assert event["tier"] == "fallback" and event["teacher"]["source"] == "openai:t"
    assert "secret" not in lines[0] and TEACHER_SAYS not in lines[0]  # no texts in tiers
    incident = TieredLog(lines.append, mode="incident")
    incident.record(g, "secret question")
    assert json.loads(lines[1])["prompt"] == "secret question" and TEACHER_SAYS in lines[1]
    compact = Generation(text="yes", confidence=0.9, min_token_prob=0.5, tokens=3, id="c")
    TieredLog(lines.append).record(compact, "q")
    assert set(json.loads(lines[2])) == {
        "ts",
        "id",
        "tier",
        "route",
        "conf",
        "tokens",
        "ms",
        "artifact",
    }


def test_generate_request_validation():
    question, evidence, options = parse_generate_request(
        {"text": "Is Nana in stock?", "evidence": ["Nana | in stock"], "max_tokens": 8}, 1024
    )
    assert (question, evidence, options["max_tokens"], options["route"]) == (
        "Is Nana in stock?",
        ["Nana | in stock"],
        8,
        True,
    )
    for body, message in [
        ({"texts": ["a"]}, "one question per request"),
        ({"text": ""}, "non-empty string"),
        ({"text": "q", "evidence": "one line"}, "list of strings"),
        ({"text": "q", "max_tokens": 5000}, "from 1 to 1024"),
        ({"text": "q", "top_k": 3}, "unknown field"),
        ({"text": "q", "route": "no"}, "true or false"),
    ]:
        with pytest.raises(BadRequest, match=message):
            parse_generate_request(body, 1024)


def test_a_gguf_llama_cpp_rejects_is_a_model_error(tmp_path):
    from kdedge.runtimes.backends.llamacpp import LlamaCppGenerator

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    with pytest.raises(ModelError, match=r"llama\.cpp cannot load"):
        LlamaCppGenerator(bad)
    with pytest.raises(ModelError, match=r"llama.cpp rejects .*bad.gguf \(exit"):
        LlamaCppGenerator(bad, probe=True)  # opened in a subprocess first


# ----------------------------------------------------------------------------- SmolLM2


@pytest.fixture(scope="session")
def gen_bundle(tmp_path_factory):
    return build_generate_bundle(tmp_path_factory.mktemp("generate") / "bundle")


@pytest.fixture(scope="session")
def gen_runtime(gen_bundle):
    from kdedge.runtimes import load

    rt = load(gen_bundle, threads=1)
    yield rt
    rt.close()


def routed(rt: GenerationRuntime, policy=None, fallback=None, **kwargs) -> GenerationRuntime:
    """The session's model under another policy or teacher (no second model load)."""
    return GenerationRuntime(
        rt.root,
        rt.manifest,
        rt.artifact,
        rt.generator,
        rt.config,
        GenerationRouter(GenerationPolicy.from_dict(policy or {})),
        fallback=fallback,
        **kwargs,
    )


def teacher(server: FaultServer, **kwargs) -> OpenAIClient:
    options = {"api_key_env": None, "timeout": 5.0, "max_retries": 0, "max_tokens": 64}
    return OpenAIClient(server.url, "teacher", **{**options, **kwargs})


@pytest.mark.slow
def test_greedy_generation_is_repeatable_with_logprobs_and_timings(gen_runtime):
    messages = gen_runtime.messages(*GROUNDED)
    a = gen_runtime.generator.generate(messages, max_tokens=24)
    b = gen_runtime.generator.generate(messages, max_tokens=24)
    assert a.text == b.text and a.logprobs == b.logprobs  # no prefix reuse between calls
    assert "9.99" in a.text and a.finish_reason == "stop"
    assert 0 < a.completion_tokens == len(a.logprobs) < 24
    assert all(lp <= 0 for lp in a.logprobs)
    assert a.mean_token_prob == pytest.approx(math.exp(sum(a.logprobs) / len(a.logprobs)))
    assert a.min_token_prob == pytest.approx(math.exp(min(a.logprobs)))
    assert a.prompt_tokens == len(gen_runtime.generator.prompt_ids(messages)) > 50
    assert a.prompt_tokens_per_s > 0 and a.tokens_per_s > 0


@pytest.mark.slow
def test_stops_limits_and_context(gen_runtime):
    g = gen_runtime.generator
    count = [{"role": "user", "content": "Write the numbers 1 2 3 4 5 6 7 8 9 10 with spaces."}]
    full = g.generate(count, max_tokens=12)
    assert full.text.startswith("1 2 3 4 5")
    cut = g.generate(count, max_tokens=12, stop=["5"])
    assert cut.text == "1 2 3 4 " and cut.finish_reason == "stop"
    assert len(cut.logprobs) == cut.completion_tokens < full.completion_tokens
    short = g.generate(count, max_tokens=3)
    assert short.completion_tokens == 3 and short.finish_reason == "length"
    hi = [{"role": "user", "content": "Say hi."}]
    forced = g.generate(hi, max_tokens=20, ignore_eos=True)  # benchmarks run through EOS
    assert forced.completion_tokens == 20
    with pytest.raises(DataError, match=f"the context holds {CONTEXT}"):
        g.generate([{"role": "user", "content": "manga " * CONTEXT}], max_tokens=4)


@pytest.mark.slow
def test_load_gives_a_generation_runtime(gen_bundle, gen_runtime):
    from kdedge.runtimes import load

    assert isinstance(gen_runtime, GenerationRuntime)
    info = gen_runtime.info()
    assert (info["task"], info["artifact"], info["backend"]) == ("generate", ARTIFACT, "llamacpp")
    assert (
        info["context_length"] == CONTEXT and info["policy"]["low_confidence_action"] == "fallback"
    )
    assert gen_runtime.messages("q")[0] == {"role": "system", "content": prompts.SYSTEM_PROMPT}
    with pytest.raises(ModelError, match="no passing artifact for backend 'onnxruntime'"):
        load(gen_bundle, backend="onnxruntime")
    with pytest.raises(ConfigError, match="cannot answer in text"):
        routed(gen_runtime, fallback=KdedgeClient("http://127.0.0.1:9"))


@pytest.mark.slow
def test_a_modified_gguf_is_refused(gen_bundle, tmp_path):
    from kdedge.runtimes import load

    copy = tmp_path / "bundle"
    shutil.copytree(gen_bundle, copy)
    with open(copy / ARTIFACT / "model.gguf", "r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)[0]
        handle.seek(-1, 2)
        handle.write(bytes([last ^ 1]))  # same size, one bit flipped
    with pytest.raises(ModelError, match="does not match its sha256"):
        load(copy)


@pytest.mark.slow
def test_a_confident_answer_comes_from_the_student(gen_runtime):
    rt = routed(gen_runtime, {"confidence_threshold": 0.3})
    g = rt.generate(*GROUNDED, max_tokens=24)
    assert (g.route, g.reason, g.source) == ("answer", "confident", "student")
    assert g.text == g.student_text and "9.99" in g.text
    assert g.confidence == pytest.approx(math.exp(sum(g.logprobs) / len(g.logprobs)))
    assert 0 < g.min_token_prob <= g.confidence <= 1 and g.tokens == len(g.logprobs)
    assert g.tokens_per_s > 0 and g.latency_ms > 0 and g.artifact == ARTIFACT
    assert rt.stats()["router"]["decisions"] == {"answer:confident": 1}
    assert rt.stats()["generation"]["completion_tokens"] == g.tokens


@pytest.mark.slow
def test_a_risky_question_goes_to_the_teacher_unanswered(gen_runtime):
    with FaultServer() as server, teacher(server) as client:
        server.push(CHAT, ok(chat_completion(TEACHER_SAYS, prompt_tokens=80, completion_tokens=17)))
        lines: list[str] = []
        rt = routed(gen_runtime, fallback=client, log=TieredLog(lines.append))
        g = rt.generate(REFUND, ["Box set 1 | out of stock"], max_tokens=32)
        sent = server.requests[0].json
    assert (g.route, g.reason, g.source, g.text) == (
        "fallback",
        "risk_rule",
        "teacher",
        TEACHER_SAYS,
    )
    assert g.risk_hits == (r"\brefund",)
    assert g.student_text is None and g.tokens == 0 and g.confidence is None  # never asked
    assert g.fallback.completion_tokens == 17
    assert sent["messages"] == [
        {"role": "system", "content": prompts.SYSTEM_PROMPT},
        {"role": "user", "content": prompts.user_turn(REFUND, ["Box set 1 | out of stock"])},
    ]
    assert sent["max_tokens"] == 32 and "response_format" not in sent
    assert json.loads(lines[0])["tier"] == "fallback"


@pytest.mark.slow
def test_low_confidence_falls_back_or_clarifies(gen_runtime):
    question, evidence = GROUNDED
    with FaultServer() as server, teacher(server) as client:
        server.push(CHAT, ok(chat_completion("It costs $9.99.")))
        rt = routed(gen_runtime, {"confidence_threshold": 1.0}, fallback=client)
        g = rt.generate(question, evidence, max_tokens=16)
    assert (g.route, g.reason, g.source, g.text) == (
        "fallback",
        "low_confidence",
        "teacher",
        "It costs $9.99.",
    )
    assert g.student_text and g.confidence < 1.0  # the student did answer, and was overruled
    asking = routed(
        gen_runtime,
        {"confidence_threshold": 1.0, "low_confidence_action": "clarify", "clarify_text": "Which?"},
    )
    g = asking.generate(question, evidence, max_tokens=16)
    assert (g.route, g.reason, g.source, g.text) == (
        "clarify",
        "low_confidence",
        "router",
        "Which?",
    )
    assert g.to_dict()["student_text"] == g.student_text


@pytest.mark.slow
def test_a_failing_teacher_becomes_clarify_never_an_exception(gen_runtime):
    with FaultServer() as server, teacher(server) as client:
        server.push(CHAT, status(503))
        rt = routed(gen_runtime, fallback=client)
        g = rt.generate(REFUND, max_tokens=8)
        stats = rt.stats()
    assert (g.route, g.reason, g.source) == ("clarify", "fallback_failed", "router")
    assert g.text == CLARIFY_TEXT and g.fallback_error == "http_5xx" and g.fallback is None
    assert stats["fallback"]["failed"]["http_5xx"] == 1
    # no teacher at all: the route says fallback and nobody answered
    alone = routed(gen_runtime).generate(REFUND, max_tokens=8)
    assert (alone.route, alone.text, alone.source) == ("fallback", None, None)
    unrouted = routed(gen_runtime).generate(REFUND, route=False, max_tokens=4)
    assert (unrouted.route, unrouted.reason, unrouted.source) == ("answer", "unrouted", "student")
    assert unrouted.tokens == 4 and unrouted.text


@pytest.mark.slow
def test_loading_and_generating_import_no_torch(gen_bundle):
    code = (
        "import sys\nfrom kdedge.runtimes import load\n"
        f"rt = load({str(gen_bundle)!r}, threads=1)\n"
        "g = rt.generate('Hi', max_tokens=2, route=False)\nassert g.tokens == 2\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {m.split(".")[0] for m in out.stdout.split()}
    assert "llama_cpp" in loaded and not loaded & {"torch", "transformers", "click", "rich"}


@pytest.mark.slow
def test_cli_predict_answers_with_route_confidence_and_speed(gen_bundle):
    question, evidence = GROUNDED
    args = ["predict", str(gen_bundle), question, "--evidence", evidence[0], "--threads", "1"]
    code, out, err = run([*args, "--json", "--max-tokens", "24"])
    assert code == 0, err
    result = json.loads(out)
    assert "9.99" in result["text"] and result["tokens"] > 0 and result["tokens_per_s"] > 0
    assert result["route"] in ("answer", "fallback") and result["artifact"] == ARTIFACT
    code, out, err = run([*args, "--max-tokens", "24"])
    assert code == 0, err
    assert "9.99" in out and "tokens/s" in out and "confidence" in out and ARTIFACT in err
    code, out, err = run(["predict", str(gen_bundle), REFUND, "--json", "--threads", "1"])
    assert code == 0 and json.loads(out)["reason"] == "risk_rule"
    code, _, err = run(["predict", str(gen_bundle), "hi", "--probs"])
    assert code == 2 and "--probs applies to classifier bundles" in err


def call(url, payload=None):
    data = None if payload is None else json.dumps(payload).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.slow
def test_serve_answers_questions_and_counts_tokens(gen_runtime):
    from kdedge.runtimes.server import PredictServer

    with FaultServer() as fault, teacher(fault) as client:
        fault.push(CHAT, ok(chat_completion(TEACHER_SAYS, prompt_tokens=70, completion_tokens=15)))
        rt = routed(gen_runtime, {"confidence_threshold": 0.0}, fallback=client)
        server = PredictServer(rt, "127.0.0.1", 0)
        server.start_background()
        try:
            question, evidence = GROUNDED
            body = {"text": question, "evidence": evidence, "max_tokens": 24, "logprobs": True}
            code, text = call(server.url + "/predict", body)
            assert code == 200, text
            answer = json.loads(text)
            assert answer["route"] == "answer" and "9.99" in answer["text"]
            assert len(answer["logprobs"]) == answer["tokens"]
            code, text = call(server.url + "/predict", {"text": REFUND})
            assert code == 200 and json.loads(text)["text"] == TEACHER_SAYS
            code, text = call(server.url + "/predict", {"texts": ["a", "b"]})
            assert code == 400 and "one question per request" in text
            code, text = call(server.url + "/predict", {"text": "manga " * CONTEXT})
            assert code == 400 and "context holds" in text
            code, text = call(server.url + "/healthz")
            assert json.loads(text)["task"] == "generate"
            code, metrics = call(server.url + "/metrics")
        finally:
            server.shutdown()
            server.server_close()
    assert 'kdedge_predictions_total{reason="confident",route="answer"} 1.0' in metrics
    assert 'kdedge_predictions_total{reason="risk_rule",route="fallback"} 1.0' in metrics
    completion = f'kdedge_tokens_total{{kind="completion",source="student"}} {answer["tokens"]}.0'
    assert completion in metrics
    assert 'kdedge_tokens_total{kind="completion",source="teacher"} 15.0' in metrics
    assert 'kdedge_fallback_calls_total{outcome="ok"} 1.0' in metrics


@pytest.mark.slow
def test_bench_measures_runtime_and_raw_llama_cpp(gen_bundle, tmp_path):
    from kdedge.bench.harness import SCHEMA_VERSION, bench

    manifest = read_manifest(gen_bundle)
    assert manifest.task == "generate"
    with pytest.raises(ConfigError, match="--compare-torch measures classifiers"):
        bench(gen_bundle, ["cpu"], compare_torch=[tmp_path])
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    code, stdout, err = run([
        "bench", str(gen_bundle), "--target", "lambda-1769", "--target", "intel-cpu",
        "--pp", "32", "--tg", "8", "--gen-repeats", "3", "--cold-runs", "1",
        "--json", str(out), "--report", str(md), "-q",
    ])  # fmt: skip
    assert code == 0, err
    report = json.loads(out.read_text())
    assert report["schema_version"] == SCHEMA_VERSION and report["settings"]["task"] == "generate"
    assert report["targets"]["intel-cpu"]["skipped"] is None  # no llama.cpp rows there
    rows = {r["name"]: r for r in report["rows"]}
    assert set(rows) == {ARTIFACT, f"llamacpp:{ARTIFACT}"}
    mine, raw = rows[ARTIFACT], rows[f"llamacpp:{ARTIFACT}"]
    for row in (mine, raw):
        assert row["error"] is None and row["target"] == "lambda-1769"
        assert row["pp"]["tokens_per_s"] > 0 and row["tg"]["tokens_per_s"] > 0
        assert row["tg"]["tokens"] == 8 and row["cold_start_ms"]["runs"] == 1
        assert row["peak_rss_mb"] > 50 and row["batch_1"] is None
    # the bare chat prompt is longer than 32 tokens: both rows process exactly its length
    assert mine["pp"]["tokens"] == raw["pp"]["tokens"] > 32
    assert mine["tg"]["context"] == raw["tg"]["context"] == mine["pp"]["tokens"]
    (ratio,) = report["ratios"]
    assert ratio["reference"] == f"llamacpp:{ARTIFACT}"
    assert ratio["pp_ratio"] == pytest.approx(
        mine["pp"]["tokens_per_s"] / raw["pp"]["tokens_per_s"], abs=0.01
    )
    # the same comparison interleaved in one process, pp and tg alike
    paired = {p["metric"]: p for p in report["paired"]}
    assert set(paired) == {"pp_tokens_per_s", "tg_tokens_per_s"}
    assert paired["tg_tokens_per_s"]["rounds"] == 3 and paired["tg_tokens_per_s"]["verdict"]
    text = md.read_text()
    assert "pp tok/s" in text and f"| lambda-1769 | {ARTIFACT} |" in text and "vs raw" in text
    assert "## Interleaved comparisons" in text
    assert "tg t/s" in stdout and f"llamacpp:{ARTIFACT}" in stdout
