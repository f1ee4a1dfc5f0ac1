"""Load a bundle and predict: tokenizer -> backend -> calibrated probabilities -> router.

::

    from kdedge.runtimes import load
    rt = load("bundle/")
    p = rt.predict("where is my order?")
    p.label, p.confidence, p.route          # 'order_tracking', 0.97, 'answer'

A :class:`Runtime` is thread-safe: one instance serves any number of threads. With a
fallback target (the teacher) it calls it for ``fallback`` routes; when that call fails the
message is routed to ``clarify`` instead and the failure is counted, never raised.

:func:`kdedge.runtimes.load` opens a bundle of any task (:mod:`kdedge.runtimes.loader`);
:func:`open_intent` is its entry for ``intent`` bundles.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kdedge.errors import ConfigError, KdedgeError, ModelError
from kdedge.runtimes.attached import Attached
from kdedge.runtimes.backends import Backend, open_backend
from kdedge.runtimes.bundle import Artifact, Manifest, verify_files
from kdedge.runtimes.prediction import Prediction
from kdedge.runtimes.router import (
    Decision,
    Router,
    RouterPolicy,
    clarifying_question,
    read_policy,
)
from kdedge.runtimes.selection import choose_artifact
from kdedge.runtimes.tokenizer import Tokenizer

if TYPE_CHECKING:
    from kdedge.runtimes.fallback_target import FallbackAnswer, FallbackTarget
    from kdedge.runtimes.requestlog import TieredLog


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64, [B, C].

    A row with a NaN or infinite logit (or any row, for a temperature that is not a finite
    number > 0) comes out NaN, without a warning: the router routes such rows as
    ``model_error`` and never answers them.
    """
    with np.errstate(all="ignore"):
        z = np.asarray(logits, dtype=np.float64) / temperature  # a new array: safe in place
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)) or (
        temperature <= 0
    ):
        z[:] = np.nan
    return z


class Runtime(Attached):
    """A loaded bundle: one artifact on one backend, a tokenizer, a router."""

    def __init__(
        self,
        root: Path,
        manifest: Manifest,
        artifact: Artifact,
        backend: Backend,
        tokenizer: Tokenizer,
        router: Router,
        *,
        why: str = "",
        fallback: FallbackTarget | None = None,
        low_cost: FallbackTarget | None = None,
        log: TieredLog | None = None,
        batch_size: int = 32,
    ) -> None:
        self.root = root
        self.manifest = manifest
        self.artifact = artifact
        self.backend = backend
        self.tokenizer = tokenizer
        self.router = router
        self.why = why
        self.fallback = fallback
        self.low_cost = low_cost
        self.log = log
        self.batch_size = batch_size
        self.labels = manifest.labels
        self.temperature = manifest.temperature
        # Dynamic INT8 takes its activation range over the whole batch (padding included),
        # so a message's result would depend on its batch neighbours: run it one at a time.
        self.row_by_row = artifact.details.get("quantization") == "dynamic"

    # -- the student ---------------------------------------------------------------------
    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw logits [B, C] (float32), run in chunks of ``batch_size``."""
        if isinstance(texts, str):
            raise TypeError("logits() takes a list of texts; use predict() for one text")
        step = 1 if self.row_by_row else self.batch_size
        if 0 < len(texts) <= step:  # one chunk (the serving hot path)
            return self._engine(texts)
        out = [np.zeros((0, len(self.labels)), dtype=np.float32)]
        for start in range(0, len(texts), step):
            out.append(self._engine(texts[start : start + step]))
        return np.concatenate(out)

    def _engine(self, texts: Sequence[str]) -> np.ndarray:
        """One engine call, its failures and wrong-shaped answers turned into a one-line
        :class:`ModelError` naming the artifact (seen: OpenVINO failing, or returning no
        rows, for a weight-compressed model with oneDNN capped at AVX2)."""
        a = self.artifact
        try:
            logits = self.backend.logits(*self.tokenizer(texts))
        except (RuntimeError, ValueError) as exc:  # what onnxruntime/OpenVINO/llama.cpp raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            if len(first) > 240:
                first = first[:240].rsplit(" ", 1)[0] + "..."
            raise ModelError(
                f"artifact '{a.name}' ({a.backend}) failed on this host: {first} "
                "Fix: pick another artifact with --artifact"
            ) from exc
        if logits.shape != (len(texts), len(self.labels)):
            raise ModelError(
                f"artifact '{a.name}' ({a.backend}) returned logits of shape "
                f"{tuple(logits.shape)} for {len(texts)} text(s) and {len(self.labels)} labels. "
                "Fix: pick another artifact with --artifact"
            )
        return logits

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities [B, C]: softmax of logits / the bundle's temperature."""
        return softmax(self.logits(texts), self.temperature)

    # -- routed predictions --------------------------------------------------------------
    def predict(self, text: str, *, route: bool = True) -> Prediction:
        """Predict one text; with ``route=False`` the student always answers, unless its
        output is not finite (reason ``model_error``, never answered)."""
        return self.predict_batch([text], route=route)[0]

    def predict_batch(self, texts: Sequence[str], *, route: bool = True) -> list[Prediction]:
        start = time.perf_counter()
        probs, decisions = self._student(texts, route)
        results = []
        for text, row, decision in zip(texts, probs, decisions, strict=True):
            answer, error = None, None
            target = self._target(decision)
            if target is not None:
                try:
                    answer = target.classify(text, self.labels)
                except KdedgeError as exc:
                    error = getattr(exc, "kind", type(exc).__name__)
            results.append(self._finish(text, row, decision, answer, error, start))
        return results

    async def apredict(self, text: str, *, route: bool = True) -> Prediction:
        """Async :meth:`predict`: the student runs in a worker thread, the teacher call is
        awaited on the event loop."""
        import asyncio  # here, not at the top: it costs ~40 ms of every cold start

        start = time.perf_counter()
        probs, decisions = await asyncio.to_thread(self._student, [text], route)
        answer, error = None, None
        target = self._target(decisions[0])
        if target is not None:
            try:
                answer = await target.aclassify(text, self.labels)
            except KdedgeError as exc:
                error = getattr(exc, "kind", type(exc).__name__)
        return self._finish(text, probs[0], decisions[0], answer, error, start)

    def _student(self, texts: Sequence[str], route: bool) -> tuple[np.ndarray, list[Decision]]:
        if isinstance(texts, str):
            raise TypeError("predict_batch() takes a list of texts; use predict() for one text")
        probs = self.probabilities(texts)
        if route:
            return probs, self.router.route(texts, probs)
        top = probs.argmax(axis=1)
        finite = np.isfinite(probs).all(axis=1)
        return probs, [
            Decision("answer", "unrouted", 0.0, (), ((self.labels[i], float(probs[n, i])),))
            if finite[n]
            else self.router.model_error(texts[n])  # unrouted, but never a broken answer
            for n, i in enumerate(top)
        ]

    def _target(self, decision: Decision) -> FallbackTarget | None:
        if decision.route != "fallback":
            return None
        if decision.reason == "low_confidence" and self.low_cost is not None:
            return self.low_cost
        return self.fallback

    def _finish(
        self,
        text: str,
        probs: np.ndarray,
        decision: Decision,
        answer: FallbackAnswer | None,
        error: str | None,
        start: float,
    ) -> Prediction:
        top = int(probs.argmax())
        student = self.labels[top]
        route, reason, label, source = decision.route, decision.reason, student, "student"
        if answer is not None and answer.label is not None:
            label, source = answer.label, "teacher"
        elif error is not None:
            # the teacher could not be reached or gave an unusable answer: never let the
            # student answer a message routed away from it; ask instead
            route, reason = "clarify", "fallback_failed"
        prediction = Prediction(
            label=label,
            confidence=float(probs[top]),
            probs=probs,
            labels=self.labels,
            route=route,
            reason=reason,
            student_label=student,
            source=source,
            risk=decision.risk,
            risk_hits=decision.risk_hits,
            candidates=decision.candidates,
            clarify=clarifying_question(decision.candidates) if route == "clarify" else None,
            fallback=answer,
            fallback_error=error,
            latency_ms=(time.perf_counter() - start) * 1000.0,
            artifact=self.artifact.name,
            id=os.urandom(8).hex(),
        )
        if self.log is not None:
            self.log.record(prediction, text)
        return prediction

    # -- introspection -------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {
            "bundle": str(self.root),
            "artifact": self.artifact.name,
            "backend": self.backend.name,
            "precision": self.artifact.precision,
            "why": self.why,
            "labels": len(self.labels),
            "temperature": self.temperature,
            "policy": self.router.policy.to_dict(),
            "fallback": getattr(self.fallback, "name", None),
            "low_cost": getattr(self.low_cost, "name", None),
        }

    def stats(self) -> dict[str, Any]:
        return {"router": self.router.stats(), **self.attached_stats()}


def open_intent(
    root: Path,
    manifest: Manifest,
    *,
    artifact: str | None = None,
    backend: str | None = None,
    threads: int | None = None,
    policy: RouterPolicy | Mapping[str, Any] | str | Path | None = None,
    fallback: FallbackTarget | None = None,
    low_cost: FallbackTarget | None = None,
    log: TieredLog | None = None,
    verify: bool = True,
    batch_size: int = 32,
    target: str | None = None,
) -> Runtime:
    """Open an ``intent`` bundle (:func:`kdedge.runtimes.load` calls this for that task).

    The engine compiles the (already verified) artifact in a second thread while this one
    reads the tokenizer: the two overlap, and cold starts get shorter.
    """
    choice = choose_artifact(manifest, artifact=artifact, backend=backend, target=target)
    if verify:
        verify_files(root, manifest, [choice.artifact.name])
    if policy is not None and not isinstance(policy, (RouterPolicy, Mapping, str, Path)):
        raise ConfigError(f"a {type(policy).__name__} does not route an intent classifier")
    router = Router(read_policy(policy, manifest), manifest.labels)
    opened: dict[str, Any] = {}

    def open_engine() -> None:
        try:
            opened["engine"] = open_backend(
                choice.artifact.backend, root / choice.artifact.main_file, threads=threads
            )
        except BaseException as exc:  # re-raised in the caller's thread below
            opened["error"] = exc

    worker = threading.Thread(target=open_engine, name="kdedge-load", daemon=True)
    worker.start()
    try:
        tokenizer = Tokenizer(root / manifest.tokenizer.path, manifest.max_length)
    finally:
        worker.join()
    if "error" in opened:
        raise opened["error"]
    engine = opened["engine"]
    return Runtime(
        root,
        manifest,
        choice.artifact,
        engine,
        tokenizer,
        router,
        why=choice.why,
        fallback=fallback,
        low_cost=low_cost,
        log=log,
        batch_size=batch_size,
    )
