"""Rerank with a cross-encoder bundle, torch-free: one score per (query, passage), best first.

::

    from kdedge.runtimes import load
    rt = load("rerank-bundle/")
    r = rt.rerank("how do I cross out text?", passages, top_k=3)
    r.results[0].index, r.results[0].score, r.route     # 4, 7.12, 'answer'

Candidates are scored in length-sorted batches of ``batch_size`` pairs; passages longer than
the bundle's ``max_length`` are truncated (the longer of query and passage loses tokens
first, as in training). The router has one rule: when the best score is below the
bundle's ``min_score`` (fitted on validation by ``kdedge rerank distill``) the answer is
"no good candidate" (``route`` = the policy's ``low_score_action``); a non-finite score
is never answered (``reason`` ``model_error``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kdedge.errors import ConfigError, DataError, ModelError
from kdedge.runtimes.attached import Attached
from kdedge.runtimes.backends import Backend, open_backend
from kdedge.runtimes.bundle import Artifact, Manifest, verify_files
from kdedge.runtimes.router import read_policy_data
from kdedge.runtimes.selection import choose_artifact
from kdedge.runtimes.tokenizer import Tokenizer, pad_pairs

if TYPE_CHECKING:
    from kdedge.runtimes.fallback_target import FallbackTarget
    from kdedge.runtimes.requestlog import TieredLog

MAX_CANDIDATES = 1000
"""Passages per call; a longer list is refused (split it, or raise ``max_candidates``)."""
ACTIONS = ("answer", "fallback", "clarify")


def _finite_number(value: object) -> bool:
    """An int or float (not a bool) that is finite as a float (10**400 overflows: not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


@dataclass(frozen=True)
class RerankPolicy:
    """``min_score``: below it the best candidate is no good (None: never);
    ``low_score_action``: the route then (``fallback`` asks the teacher, ``clarify`` asks
    the user, ``answer`` returns the ranking anyway)."""

    min_score: float | None = None
    low_score_action: str = "fallback"

    def __post_init__(self) -> None:
        if self.min_score is not None and not _finite_number(self.min_score):
            raise ConfigError(
                f"router min_score must be a finite number or null, got {self.min_score!r}"
            )
        if self.low_score_action not in ACTIONS:
            raise ConfigError(
                f"router low_score_action must be one of {', '.join(ACTIONS)}, "
                f"got {self.low_score_action!r}"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "router policy") -> RerankPolicy:
        unknown = set(data) - {"min_score", "low_score_action"}
        if unknown:
            raise ConfigError(f"{where}: unknown rerank router key(s) {', '.join(sorted(unknown))}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {"min_score": self.min_score, "low_score_action": self.low_score_action}


@dataclass(frozen=True)
class Ranked:
    """One candidate in the ranking: its position in the input and its score."""

    index: int
    score: float


@dataclass(frozen=True)
class Reranking:
    """A routed ranking: ``results`` best first (``top_k`` of them), ``scores`` in input order."""

    results: tuple[Ranked, ...]
    scores: np.ndarray
    route: str = "answer"  # answer | fallback | clarify
    reason: str = "confident"  # confident | no_good_candidate | model_error
    latency_ms: float = 0.0
    artifact: str = ""

    def to_dict(self, passages: Sequence[str] | None = None) -> dict[str, Any]:
        """The ``/rerank`` response: ``results`` as ``{"index", "relevance_score"}``
        (plus ``"document"`` when ``passages`` are given), route, reason, latency."""
        rows = []
        for r in self.results:
            row: dict[str, Any] = {"index": r.index, "relevance_score": round(r.score, 6)}
            if passages is not None:
                row["document"] = passages[r.index]
            rows.append(row)
        return {
            "results": rows,
            "route": self.route,
            "reason": self.reason,
            "latency_ms": round(self.latency_ms, 3),
            "artifact": self.artifact,
        }


class RerankRuntime(Attached):
    """A loaded rerank bundle: one artifact on one backend, a pair tokenizer, a policy.

    Thread-safe: any number of threads may call :meth:`rerank`.
    """

    def __init__(
        self,
        root: Path,
        manifest: Manifest,
        artifact: Artifact,
        engine: Backend,
        tokenizer: Tokenizer,
        policy: RerankPolicy,
        *,
        why: str = "",
        batch_size: int = 32,
        max_candidates: int = MAX_CANDIDATES,
    ) -> None:
        if batch_size < 1 or max_candidates < 1:
            raise ConfigError("batch_size and max_candidates must be >= 1")
        self.root, self.manifest, self.artifact = root, manifest, artifact
        self.engine, self.tokenizer, self.policy = engine, tokenizer, policy
        self.why, self.batch_size, self.max_candidates = why, batch_size, max_candidates
        self.fallback: FallbackTarget | None = None
        self.low_cost: FallbackTarget | None = None
        self.log: TieredLog | None = None
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def scores(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """Raw scores, one per passage, in input order (float32)."""
        _check(query, passages, self.max_candidates)
        ids, types = self.tokenizer.pair_ids(query, passages)
        pad = self.tokenizer.pad_id
        return batched_scores(self.engine.logits, ids, types, pad, self.batch_size)

    def rerank(
        self, query: str, passages: Sequence[str], top_k: int | None = None, *, route: bool = True
    ) -> Reranking:
        """Score every passage against ``query``; the ``top_k`` best (all when None)."""
        if top_k is not None and (
            isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1
        ):
            raise ConfigError(f"top_k must be a positive integer or None, got {top_k!r}")
        start = time.perf_counter()
        scores = self.scores(query, passages)
        order = np.argsort(-scores, kind="stable")[: top_k or len(passages)]
        results = tuple(Ranked(int(i), float(scores[i])) for i in order)
        path, reason = self._decide(scores, route)
        with self._lock:
            self._counts[path, reason] += 1
        return Reranking(
            results,
            scores,
            route=path,
            reason=reason,
            latency_ms=(time.perf_counter() - start) * 1e3,
            artifact=self.artifact.name,
        )

    def _decide(self, scores: np.ndarray, route: bool) -> tuple[str, str]:
        if not np.isfinite(scores).all():  # never rank on a broken model's output
            action = self.policy.low_score_action
            return ("clarify" if action == "answer" else action), "model_error"
        if route and self.policy.min_score is not None and scores.max() < self.policy.min_score:
            return self.policy.low_score_action, "no_good_candidate"
        return "answer", "confident"

    def info(self) -> dict[str, Any]:
        return {
            "task": "rerank",
            "bundle": str(self.root),
            "artifact": self.artifact.name,
            "backend": self.artifact.backend,
            "precision": self.artifact.precision,
            "why": self.why,
            "labels": list(self.manifest.labels),
            "max_length": self.manifest.max_length,
            "max_candidates": self.max_candidates,
            "policy": self.policy.to_dict(),
            "fallback": None,
            "low_cost": None,
        }

    def stats(self) -> dict[str, Any]:
        with self._lock:
            decisions = {f"{r}:{why}": n for (r, why), n in self._counts.items()}
        return {"router": {"decisions": decisions, "window_fallback_rate": 0.0}}


def batched_scores(
    run: Any,
    ids: Sequence[Sequence[int]],
    types: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int,
) -> np.ndarray:
    """Scores in input order from ``run(input_ids, mask, type_ids)``, length-sorted batches."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = np.empty(len(ids), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        feeds = pad_pairs([ids[i] for i in rows], [types[i] for i in rows], pad_id)
        logits = np.asarray(run(*feeds), dtype=np.float32)
        if logits.ndim != 2 or logits.shape[1] != 1:
            raise ModelError(
                f"a reranker outputs one score per pair; this graph outputs shape {logits.shape}"
            )
        out[rows] = logits[:, 0]
    return out


def _check(query: str, passages: Sequence[str], limit: int) -> None:
    if not isinstance(query, str) or not query.strip():
        raise DataError("the query is empty; send the text to rank passages against")
    if isinstance(passages, str) or not isinstance(passages, Sequence):
        raise DataError("passages must be a list of strings")
    if not passages:
        raise DataError("no passages to rank: send at least one candidate")
    if len(passages) > limit:
        raise DataError(
            f"{len(passages)} passages exceed the limit of {limit} per call; split the list "
            "(or raise max_candidates when loading)"
        )
    for i, p in enumerate(passages):
        if not isinstance(p, str):
            raise DataError(f"passage {i} is a {type(p).__name__}, not a string")
        if not p.strip():
            raise DataError(f"passage {i} is empty; drop it or send its text")


def read_rerank_policy(
    source: RerankPolicy | Mapping[str, Any] | str | Path | None, manifest: Manifest
) -> RerankPolicy:
    """The policy: given, read from a JSON file, or the manifest's ``router`` section."""
    if isinstance(source, RerankPolicy):
        return source
    if source is None:
        return RerankPolicy.from_dict(manifest.router, "manifest.json router")
    return RerankPolicy.from_dict(*read_policy_data(source))


def open_rerank(
    root: Path,
    manifest: Manifest,
    *,
    artifact: str | None = None,
    backend: str | None = None,
    threads: int | None = None,
    policy: RerankPolicy | Mapping[str, Any] | str | Path | None = None,
    fallback: FallbackTarget | None = None,
    low_cost: FallbackTarget | None = None,
    log: TieredLog | None = None,
    verify: bool = True,
    batch_size: int = 32,
    target: str | None = None,
) -> RerankRuntime:
    """Open a ``rerank`` bundle (:func:`kdedge.runtimes.load` calls this for that task)."""
    if fallback is not None or low_cost is not None or log is not None:
        raise ConfigError(
            "a rerank bundle returns a ranking and a route; it calls no teacher and keeps no "
            "request log. Fix: drop fallback / low_cost / log (act on route yourself)"
        )
    choice = choose_artifact(manifest, artifact=artifact, backend=backend, target=target)
    if choice.artifact.backend == "llamacpp":
        raise ModelError(
            f"artifact '{choice.artifact.name}' is GGUF; rerank bundles run ONNX or OpenVINO"
        )
    if verify:
        verify_files(root, manifest, [choice.artifact.name])
    rerank_policy = read_rerank_policy(policy, manifest)
    engine = open_backend(
        choice.artifact.backend, root / choice.artifact.main_file, threads=threads
    )
    tokenizer = Tokenizer(root / manifest.tokenizer.path, manifest.max_length)
    return RerankRuntime(
        root,
        manifest,
        choice.artifact,
        engine,
        tokenizer,
        rerank_policy,
        why=choice.why,
        batch_size=batch_size,
    )
