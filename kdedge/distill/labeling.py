"""Teacher labeling: run each teacher once per text (through the cache), then combine.

Under ``torchrun`` / ``accelerate launch`` the texts the cache lacks are shared out: each
rank runs the teacher on its slice of every chunk, rank 0 gathers the chunk and commits it
(the one writer of the SQLite cache), and once labeling is done every rank reads the
finished cache. A killed run, with one process or many, resumes at its last committed chunk.

Soft targets for a text are the mean of the teachers' probabilities at temperature T
(an ensemble), then high-risk rule overrides: a text matching a rule's pattern gets most
of its mass on the rule's label, whatever the teachers said (seed 002, scenario 3).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kdedge.data.labels import LabelSet
from kdedge.distill import distributed
from kdedge.distill.batching import sorted_batches
from kdedge.distill.cache import LogitCache, TeacherKey, open_as_writer
from kdedge.distill.device import Placement
from kdedge.distill.inference import encode, logits_of_ids
from kdedge.distill.models import fingerprint, load_classifier, tokenizer_fingerprint
from kdedge.distill.probability import mean_entropy, softmax
from kdedge.errors import ConfigError, ModelError
from kdedge.progress import Tracker, silent

LOW_CONFIDENCE = 0.5  # a teacher top-1 probability below this counts as low confidence


@dataclass(frozen=True)
class RiskRule:
    """Force ``label`` on texts matching ``pattern`` (a case-insensitive regex)."""

    pattern: str
    label: str
    confidence: float = 0.95

    def compiled(self) -> re.Pattern[str]:
        try:
            return re.compile(self.pattern, re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(f"rule pattern {self.pattern!r} is not a valid regex: {exc}") from exc


@dataclass(frozen=True)
class LabelingReport:
    """What one labeling pass cost and what the teachers looked like."""

    teachers: list[str]
    texts: int
    cache_hits: int
    cache_misses: int
    seconds: float
    samples_per_sec: float
    teacher_entropy_mean: float
    low_confidence_fraction: float
    # Teacher time the cache hits would have cost, at each teacher's measured seconds per
    # text; None when a teacher's cost was never measured (its cache came from elsewhere).
    saved_seconds: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TeacherLogits:
    """Per-teacher logits for a list of texts: ``logits[k, i]`` is teacher k on text i."""

    texts: list[str]
    labels: LabelSet
    logits: np.ndarray  # [K, N, C]
    report: LabelingReport


def label_texts(
    teacher_dirs: Sequence[str | Path],
    texts: Sequence[str],
    cache_dir: str | Path,
    placement: Placement,
    *,
    batch_size: int = 256,
    refresh: bool = False,
    track: Tracker = silent,
) -> TeacherLogits:
    """Teacher logits for ``texts``, computing only what the cache lacks."""
    if not teacher_dirs:
        raise ConfigError("no teacher given; pass at least one teacher model directory")
    unique = list(dict.fromkeys(texts))
    procs = distributed.current()
    start = time.perf_counter()
    hits = misses = 0
    saved: float | None = 0.0
    per_teacher: list[np.ndarray] = []
    labels: LabelSet | None = None
    for teacher_dir in teacher_dirs:
        clf = load_classifier(teacher_dir)
        if labels is not None and clf.labels != labels:
            raise ModelError(
                f"teacher {teacher_dir} has labels that differ from the first teacher's; "
                "an ensemble needs one label set in one order"
            )
        labels = clf.labels
        key = TeacherKey(
            fingerprint(teacher_dir), tokenizer_fingerprint(clf.tokenizer), clf.max_length
        )
        keys = [key.for_text(t) for t in unique]
        with contextlib.ExitStack() as stack:
            cache, found = open_as_writer(
                stack, cache_dir, key.teacher, keys, len(labels), main=procs.main, refresh=refresh
            )
            missing = distributed.broadcast(
                [i for i, k in enumerate(keys) if k not in found], "sharing the cache misses"
            )
            hits += len(unique) - len(missing)
            misses += len(missing)
            # One batch plan for any number of processes: the misses sorted by token length
            # and cut into batches, so a text meets the teacher in the same batch (and gets
            # the same logits) with one rank or eight. Ranks deal out each chunk's batches;
            # rank 0 commits every chunk, so a killed job resumes at the next one.
            ids = encode(clf.tokenizer, [unique[i] for i in missing], clf.max_length)
            plan = [
                [missing[j] for j in rows]
                for rows in sorted_batches([len(r) for r in ids], batch_size)
            ]
            id_of = dict(zip(missing, ids, strict=True))
            per_chunk = max(1, 1024 // batch_size, 4) * procs.world
            starts = range(0, len(plan), per_chunk)
            name = Path(teacher_dir).name
            for begin in track(starts, f"labeling with {name}", total=len(starts)):
                t0 = time.perf_counter()
                mine, rows = distributed.deal(plan[begin : begin + per_chunk], procs)
                logits = logits_of_ids(
                    clf.model,
                    [id_of[i] for i in mine],
                    clf.tokenizer.pad_token_id,
                    placement,
                    batch_size=batch_size,
                )
                logits = distributed.gather_rows(logits, f"labeling with {name}")
                if cache is not None:
                    cache.put_many(key.teacher, [(keys[i], logits[j]) for j, i in enumerate(rows)])
                    cache.record_cost(key.teacher, time.perf_counter() - t0, len(rows))
                    found.update({keys[i]: logits[j] for j, i in enumerate(rows)})
            cost = cache.seconds_per_text(key.teacher) if cache is not None else None
        if procs.distributed:
            distributed.wait("finishing the teacher cache")
            if cache is None:  # every other rank reads the finished cache
                with LogitCache(cache_dir) as reader:
                    found = reader.get_many(keys, len(labels))
                    cost = reader.seconds_per_text(key.teacher)
        served = len(unique) - len(missing)
        if saved is not None and served:
            saved = None if cost is None else saved + served * cost
        per_teacher.append(
            np.stack([found[k] for k in keys]) if keys else np.zeros((0, len(labels)))
        )
        del clf
    assert labels is not None
    position = {t: i for i, t in enumerate(unique)}
    stacked = np.stack(per_teacher)[:, [position[t] for t in texts]]  # [K, N, C]
    seconds = time.perf_counter() - start
    probs = softmax(stacked.reshape(-1, stacked.shape[-1])) if stacked.size else np.zeros((0, 1))
    report = LabelingReport(
        teachers=[str(t) for t in teacher_dirs],
        texts=len(texts),
        cache_hits=hits,
        cache_misses=misses,
        seconds=round(seconds, 3),
        samples_per_sec=round(misses / seconds, 1) if misses and seconds > 0 else 0.0,
        teacher_entropy_mean=round(mean_entropy(probs), 4),
        low_confidence_fraction=round(float((probs.max(-1) < LOW_CONFIDENCE).mean()), 4)
        if probs.size
        else 0.0,
        saved_seconds=None if saved is None else round(saved, 3),
    )
    return TeacherLogits(list(texts), labels, stacked, report)


def combine(
    teacher_logits: np.ndarray,  # [K, N, C]
    temperature: float,
    *,
    texts: Sequence[str] = (),
    labels: LabelSet | None = None,
    rules: Sequence[RiskRule] = (),
    calibration: Sequence[float] | None = None,
) -> tuple[np.ndarray, int]:
    """Ensemble soft targets at ``temperature`` with rule overrides. Returns (probs, overrides).

    ``calibration`` gives each teacher's calibration temperature: its logits are divided by
    it first, so ``temperature`` softens *calibrated* probabilities. Without it, the same
    T means different things for an over- and an under-confident teacher, and an ensemble
    averages members at unequal confidence.
    """
    k, n, c = teacher_logits.shape
    if calibration is not None:
        if len(calibration) != k or any(t <= 0 for t in calibration):
            raise ConfigError(f"need one positive calibration temperature per teacher ({k})")
        teacher_logits = teacher_logits / np.asarray(calibration, dtype=np.float32)[:, None, None]
    probs = softmax(teacher_logits.reshape(k * n, c), temperature).reshape(k, n, c).mean(axis=0)
    overrides = 0
    if rules:
        if labels is None:
            raise ConfigError("rule overrides need the label set")
        for rule in rules:
            if rule.label not in labels:
                raise ConfigError(f"rule {rule.pattern!r} targets unknown label '{rule.label}'")
            if not 0 < rule.confidence <= 1:
                raise ConfigError(f"rule {rule.pattern!r}: confidence must be in (0, 1]")
        compiled = [(r.compiled(), labels.index(r.label), r.confidence) for r in rules]
        for i, text in enumerate(texts):
            for pattern, index, confidence in compiled:
                if pattern.search(text):
                    row = np.full(c, (1.0 - confidence) / max(c - 1, 1))
                    row[index] = confidence if c > 1 else 1.0
                    probs[i] = row
                    overrides += 1
                    break
    return probs.astype(np.float32), overrides
