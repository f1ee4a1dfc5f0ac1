"""Teacher scores for (query, passage) pairs, through the content-addressed logit cache.

The teacher runs once per distinct pair; later sweeps (other losses, alphas, layer maps)
read its scores back and pay only for the student. It is the intent labeling cache
(:class:`kdedge.distill.cache.LogitCache`: SQLite, one transaction per batch, sha256 per
value checked on read) storing one-element vectors.

Cache key: :meth:`TeacherKey.for_text` (teacher weights fingerprint, tokenizer fingerprint,
max length) of :func:`pair_text`, which joins query and passage as
``f"{len(query)}\\x1f{query}\\x1f{passage}"``. The separator is ASCII's *unit separator*
(0x1F), which natural text does not contain and which can never meet an intent text's key
by accident; the query's length in front makes the split unambiguous even if a query does
contain 0x1F (``("a\\x1fb", "c")`` and ``("a", "b\\x1fc")`` get different keys).

Under ``torchrun`` / ``accelerate launch`` the pairs the cache lacks are shared out as in
:mod:`kdedge.distill.labeling`: one batch plan for any number of processes (the misses
sorted by token length, cut into batches), each rank scores its batches of every chunk,
rank 0 gathers the chunk and commits it (the cache's one writer), and every rank then reads
the finished cache. A pair meets the teacher in the same batch with one rank or eight, so
a multi-process cache is bit-identical to a single-process one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kdedge.distill import distributed
from kdedge.distill.cache import LogitCache, TeacherKey, open_as_writer
from kdedge.errors import ConfigError
from kdedge.progress import Tracker, silent

PAIR_SEPARATOR = "\x1f"


def pair_text(query: str, passage: str) -> str:
    """The text a (query, passage) pair is cached under (see the module docstring)."""
    return f"{len(query)}{PAIR_SEPARATOR}{query}{PAIR_SEPARATOR}{passage}"


@dataclass(frozen=True)
class ScoringReport:
    """What one teacher-scoring pass cost."""

    teacher: str
    max_length: int
    pairs: int
    unique_pairs: int
    cache_hits: int
    cache_misses: int
    seconds: float
    pairs_per_sec: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def teacher_key(teacher_dir: str | Path, tokenizer: Any, max_length: int) -> TeacherKey:
    from kdedge.distill.models import fingerprint, tokenizer_fingerprint

    return TeacherKey(fingerprint(teacher_dir), tokenizer_fingerprint(tokenizer), int(max_length))


def score_pairs_cached(
    teacher_dir: str | Path,
    pairs: Sequence[tuple[str, str]],
    cache_dir: str | Path,
    *,
    device: Any = "cpu",
    max_length: int | None = None,
    batch_size: int = 64,
    chunk_size: int = 1024,
    refresh: bool = False,
    track: Tracker = silent,
    teacher: Any = None,
) -> tuple[np.ndarray, ScoringReport]:
    """Teacher scores [N] for ``pairs``, computing only what the cache lacks.

    Misses are scored in chunks of about ``chunk_size`` pairs (whole batches; times the
    number of processes), each committed on its own, so a killed job keeps what it finished
    and resumes there. ``refresh`` drops this teacher's cached scores first. ``teacher``
    may pass the already-loaded reranker.
    """
    from kdedge.distill.batching import sorted_batches
    from kdedge.rerank.models import load_reranker, score_pairs

    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    start = time.perf_counter()
    _join(device)
    procs = distributed.current()
    clf = teacher if teacher is not None else load_reranker(teacher_dir, max_length=max_length)
    length = int(max_length or clf.max_length)
    key = teacher_key(teacher_dir, clf.tokenizer, length)
    unique = list(dict.fromkeys((q, p) for q, p in pairs))
    keys = [key.for_text(pair_text(q, p)) for q, p in unique]
    name = Path(teacher_dir).name
    with contextlib.ExitStack() as stack:
        cache, found = open_as_writer(
            stack, cache_dir, key.teacher, keys, 1, main=procs.main, refresh=refresh
        )
        missing = distributed.broadcast(
            [i for i, k in enumerate(keys) if k not in found], "sharing the cache misses"
        )
        lengths = pair_lengths(clf.tokenizer, [unique[i] for i in missing], length)
        plan = [[missing[j] for j in rows] for rows in sorted_batches(lengths, batch_size)]
        per_chunk = max(1, chunk_size // batch_size) * procs.world
        starts = range(0, len(plan), per_chunk)
        for begin in track(starts, f"teacher scores ({name})", total=len(starts)):
            t0 = time.perf_counter()
            mine, every = distributed.deal(plan[begin : begin + per_chunk], procs)
            scores = score_pairs(
                clf.model, clf.tokenizer, [unique[i] for i in mine], length, batch_size, device
            )
            scores = distributed.gather_rows(scores, f"teacher scores ({name})")
            if cache is not None:
                items = [(keys[i], scores[j : j + 1]) for j, i in enumerate(every)]
                cache.put_many(key.teacher, items)
                cache.record_cost(key.teacher, time.perf_counter() - t0, len(every))
                found.update(items)
    if procs.distributed:
        distributed.wait("finishing the teacher-score cache")
        if not procs.main:  # every other rank reads the finished cache
            with LogitCache(cache_dir) as reader:
                found = reader.get_many(keys, 1)
    position = {pair: i for i, pair in enumerate(unique)}
    values = np.array(
        [found[keys[position[(q, p)]]][0] for q, p in pairs], dtype=np.float32
    ).reshape(len(pairs))
    seconds = time.perf_counter() - start
    report = ScoringReport(
        teacher=str(teacher_dir),
        max_length=length,
        pairs=len(pairs),
        unique_pairs=len(unique),
        cache_hits=len(unique) - len(missing),
        cache_misses=len(missing),
        seconds=round(seconds, 3),
        pairs_per_sec=round(len(missing) / seconds, 1) if missing and seconds > 0 else 0.0,
    )
    return values, report


def score_groups_cached(
    teacher_dir: str | Path,
    groups: Sequence[Any],
    cache_dir: str | Path,
    **kwargs: Any,
) -> tuple[list[np.ndarray], ScoringReport]:
    """Teacher scores per query group (candidates in file order) via the cache."""
    from kdedge.rerank.models import split_by_groups

    pairs = [(g.query, c.text) for g in groups for c in g.candidates]
    flat, report = score_pairs_cached(teacher_dir, pairs, cache_dir, **kwargs)
    return split_by_groups(flat, groups), report


def pair_lengths(tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int) -> list[int]:
    """Token count of each (query, passage) pair as :class:`~kdedge.rerank.models.PairTable`
    encodes it."""
    if not pairs:
        return []
    enc = tokenizer(
        [q for q, _ in pairs], [p for _, p in pairs], truncation=True, max_length=max_length
    )
    return [len(ids) for ids in enc["input_ids"]]


def _join(device: Any) -> None:
    """Join the launcher's process group when the caller passed a plain device name."""
    if distributed.launched() and distributed.accelerator() is None:
        import torch

        from kdedge.rerank.models import _device

        distributed.start(torch.device(_device(device)).type)
