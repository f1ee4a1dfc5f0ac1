"""Generation bundles: a question and its catalog evidence in, a routed answer out.

::

    from kdedge.runtimes import load
    rt = load("llm-bundle/", fallback=open_fallback(url, model="teacher"))
    g = rt.generate("Is Berserk vol. 1 in stock?", ["Berserk vol. 1 | hardcover | in stock"])
    g.text, g.route, g.confidence           # 'Yes, ...', 'answer', 0.71

The prompt is the manifest's ``generation`` section: ``system_prompt``, then
``user_template`` filled with the evidence (one ``- line`` per record) and the question, the
layout of :func:`kdedge.llm.prompts.user_turn`; the GGUF's chat template renders it.

The router is :mod:`kdedge.runtimes.router`'s, with the student's confidence read from token
log-probabilities:

1. risk: a question matching a risk rule (``risk_patterns``) goes to the teacher before the
   student writes a word;
2. confidence: an answer whose geometric-mean token probability is below
   ``confidence_threshold``, or with any token below ``min_token_prob``, or an empty one,
   gets ``low_confidence_action`` (``fallback`` to the teacher, or ``clarify``);
3. otherwise the student's answer stands (``answer``).

The fallback budget is the classifier router's sliding window: past ``max_fallback_rate``,
fallbacks become ``clarify`` (``budget_exceeded``). The teacher is asked through its
``answer(text, system)`` (an OpenAI-compatible client); when that fails the route becomes
``clarify`` (``fallback_failed``), never an exception, as in :meth:`Runtime.predict`.

Router defaults for generate bundles (:data:`DEFAULT_ROUTER`, under the manifest's
``router`` section, which overrides any key): ``confidence_threshold`` 0.5 (on SmolLM2-135M
a grounded correct answer scored 0.64 and its off-topic refusals 0.39-0.47),
``min_token_prob`` 0 (off: the least likely token of good and bad answers alike was about
0.1), ``low_confidence_action`` ``fallback`` (a generator has no candidate intents to ask
about), risk rules for refunds, payments and legal threats (``risk_patterns: []`` turns them
off), and the classifier router's budget (20% over the last 1,000 decisions).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdedge.errors import ConfigError, KdedgeError, ModelError
from kdedge.runtimes.attached import Attached
from kdedge.runtimes.bundle import Artifact, Manifest, verify_files
from kdedge.runtimes.generation_prompt import GenerationConfig, user_turn
from kdedge.runtimes.generation_result import Generation
from kdedge.runtimes.generation_router import (
    GenerationPolicy,
    GenerationRouter,
    is_probability,
    read_generation_policy,
)
from kdedge.runtimes.router import RouterPolicy
from kdedge.runtimes.selection import choose_artifact

if TYPE_CHECKING:
    from kdedge.runtimes.backends.llamacpp import GenerationResult, LlamaCppGenerator
    from kdedge.runtimes.fallback_target import FallbackAnswer, FallbackTarget
    from kdedge.runtimes.requestlog import TieredLog


class GenerationRuntime(Attached):
    """A loaded generate bundle: one GGUF on llama.cpp, its prompt settings, a router.

    Thread-safe: generations run one at a time on the model (llama.cpp's context is not
    shared), teacher calls run concurrently.
    """

    def __init__(
        self,
        root: Path,
        manifest: Manifest,
        artifact: Artifact,
        generator: LlamaCppGenerator,
        config: GenerationConfig,
        router: GenerationRouter,
        *,
        why: str = "",
        fallback: FallbackTarget | None = None,
        low_cost: FallbackTarget | None = None,
        log: TieredLog | None = None,
    ) -> None:
        for role, target in (("fallback", fallback), ("low_cost", low_cost)):
            if target is not None and not callable(getattr(target, "answer", None)):
                raise ConfigError(
                    f"the {role} teacher {getattr(target, 'name', target)!r} cannot answer in "
                    "text; a generate bundle needs an OpenAI-compatible teacher (--teacher URL "
                    "--teacher-model NAME), not a kdedge+ classifier endpoint"
                )
        self.root = root
        self.manifest = manifest
        self.artifact = artifact
        self.generator = generator
        self.backend = generator  # the engine, named like a classifier Runtime's
        self.config = config
        self.router = router
        self.why = why
        self.fallback = fallback
        self.low_cost = low_cost
        self.log = log
        self._lock = threading.Lock()
        self._tokens = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}

    @property
    def policy(self) -> GenerationPolicy:
        return self.router.policy

    # -- prompt --------------------------------------------------------------------------
    def user_turn(self, question: str, evidence: Sequence[str] = ()) -> str:
        return user_turn(self.config.user_template, question, evidence)

    def messages(self, question: str, evidence: Sequence[str] = ()) -> list[dict[str, str]]:
        """The chat messages the student (and the teacher) are asked."""
        system = [{"role": "system", "content": self.config.system_prompt}]
        user = [{"role": "user", "content": self.user_turn(question, evidence)}]
        return system + user if self.config.system_prompt else user

    # -- generation ----------------------------------------------------------------------
    def generate(
        self,
        question: str,
        evidence: Sequence[str] = (),
        *,
        route: bool = True,
        max_tokens: int | None = None,
    ) -> Generation:
        """Answer one question; with ``route=False`` the student always answers."""
        if isinstance(evidence, str):
            raise TypeError("evidence is a list of lines; wrap a single line in a list")
        start = time.perf_counter()
        limit = max_tokens or self.config.max_new_tokens
        hits = self.router.rule_hits(question) if route else ()
        result = None
        if not hits:  # a risky question goes to the teacher unanswered
            result = self.generator.generate(self.messages(question, evidence), max_tokens=limit)
        confidence = None if result is None else result.mean_token_prob
        min_prob = None if result is None else result.min_token_prob
        if route or not (is_probability(confidence) and is_probability(min_prob)):
            # unrouted too, a broken model's output is never answered (model_error)
            decision, reason = self.router.decide(hits, confidence, min_prob)
        else:
            decision, reason = "answer", "unrouted"
        answer, error = None, None
        target = self._target(decision, reason)
        if target is not None:
            try:
                answer = target.answer(  # type: ignore[attr-defined]
                    self.user_turn(question, evidence),
                    self.config.system_prompt or None,
                    max_tokens=limit,
                )
            except KdedgeError as exc:
                error = getattr(exc, "kind", type(exc).__name__)
        return self._finish(
            question, evidence, result, decision, reason, hits, answer, error, start
        )

    def _target(self, route: str, reason: str) -> FallbackTarget | None:
        if route != "fallback":
            return None
        if reason == "low_confidence" and self.low_cost is not None:
            return self.low_cost
        return self.fallback

    def _finish(
        self,
        question: str,
        evidence: Sequence[str],
        result: GenerationResult | None,
        route: str,
        reason: str,
        hits: tuple[str, ...],
        answer: FallbackAnswer | None,
        error: str | None,
        start: float,
    ) -> Generation:
        student = None if result is None else result.text
        if answer is not None and answer.text is not None:
            text, source = answer.text, "teacher"
        elif error is not None:
            # the teacher could not be reached or answered unusably: never let the student
            # answer a question routed away from it; ask instead
            route, reason = "clarify", "fallback_failed"
            text, source = self.policy.clarify_text, "router"
        elif route == "clarify":
            text, source = self.policy.clarify_text, "router"
        elif route == "fallback":
            text, source = None, None  # routed to a teacher the caller did not give us
        else:
            text, source = student, "student"
        generation = Generation(
            text=text,
            route=route,
            reason=reason,
            source=source,
            student_text=student,
            confidence=None if result is None else result.mean_token_prob,
            min_token_prob=None if result is None else result.min_token_prob,
            risk_hits=hits,
            prompt_tokens=0 if result is None else result.prompt_tokens,
            tokens=0 if result is None else result.completion_tokens,
            finish_reason=None if result is None else result.finish_reason,
            tokens_per_s=None if result is None else result.tokens_per_s,
            prompt_tokens_per_s=None if result is None else result.prompt_tokens_per_s,
            latency_ms=(time.perf_counter() - start) * 1000.0,
            artifact=self.artifact.name,
            fallback=answer,
            fallback_error=error,
            id=os.urandom(8).hex(),
            logprobs=() if result is None else result.logprobs,
        )
        with self._lock:
            self._tokens["requests"] += 1
            self._tokens["prompt_tokens"] += generation.prompt_tokens
            self._tokens["completion_tokens"] += generation.tokens
        if self.log is not None:
            self.log.record(generation, self.user_turn(question, evidence))  # type: ignore[arg-type]
        return generation

    # -- introspection -------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {
            "bundle": str(self.root),
            "task": "generate",
            "artifact": self.artifact.name,
            "backend": self.generator.name,
            "precision": self.artifact.precision,
            "why": self.why,
            "labels": 0,
            "context_length": self.generator.n_ctx,
            "max_new_tokens": self.config.max_new_tokens,
            "threads": self.generator.threads,
            "policy": self.policy.to_dict(),
            "fallback": getattr(self.fallback, "name", None),
            "low_cost": getattr(self.low_cost, "name", None),
        }

    def stats(self) -> dict[str, Any]:
        with self._lock:
            tokens = dict(self._tokens)
        return {"router": self.router.stats(), "generation": tokens, **self.attached_stats()}

    def close(self) -> None:
        self.generator.close()
        super().close()


def load_generation(
    root: Path,
    manifest: Manifest,
    *,
    artifact: str | None = None,
    backend: str | None = None,
    threads: int | None = None,
    policy: GenerationPolicy | RouterPolicy | Mapping[str, Any] | str | Path | None = None,
    fallback: FallbackTarget | None = None,
    low_cost: FallbackTarget | None = None,
    log: TieredLog | None = None,
    verify: bool = True,
    target: str | None = None,
) -> GenerationRuntime:
    """Open a generate bundle (``kdedge.runtimes.load`` calls this for ``task: generate``)."""
    from kdedge.runtimes.backends.llamacpp import LlamaCppGenerator

    config = GenerationConfig.of(root, manifest)
    router = GenerationRouter(read_generation_policy(policy, manifest))
    choice = choose_artifact(manifest, artifact=artifact, backend=backend, target=target)
    if choice.artifact.backend != "llamacpp":
        raise ModelError(
            f"artifact '{choice.artifact.name}' runs on {choice.artifact.backend}; generate "
            "bundles run GGUF artifacts on llama.cpp"
        )
    if verify:
        verify_files(root, manifest, [choice.artifact.name])
    generator = LlamaCppGenerator(
        root / choice.artifact.main_file,
        threads=threads,
        n_ctx=config.context_length,
        chat_template=config.chat_template,
        stop=config.stops(),
    )
    try:
        return GenerationRuntime(
            root,
            manifest,
            choice.artifact,
            generator,
            config,
            router,
            why=choice.why,
            fallback=fallback,
            low_cost=low_cost,
            log=log,
        )
    except BaseException:
        generator.close()
        raise


__all__ = [
    "Generation",
    "GenerationConfig",
    "GenerationRuntime",
    "load_generation",
    "user_turn",
]
