"""Ask the teacher once per prompt and cache its answers with their provenance.

The cache is ``answers.jsonl`` in the output folder: one row per answered prompt, keyed by
the hash of everything that shapes the answer (teacher model, system prompt, user turn,
token limit). Rows are appended and flushed as they arrive, so an interrupted run keeps
what it paid for; running the same command again asks only for what is missing. A torn
last line (a kill in mid-write) is dropped on resume. Teacher failures are counted, not
cached, and retried by the next run.

Teacher calls go through the runtime's resilient client (retries, circuit breaker,
concurrency limit, cost accounting); :func:`collect` runs several at once in threads.
The summary is written as ``collect_report.json`` and as a ``teacher_label_generation``
event in ``events.jsonl``, with the seeds' field names.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdedge.atomic import atomic_write_text
from kdedge.data.io import clip, read_jsonl
from kdedge.distill.events import EventLog
from kdedge.errors import ConfigError, DataError, KdedgeError
from kdedge.llm.prompts import SYSTEM_PROMPT, user_turn
from kdedge.progress import Tracker, silent

ANSWERS = "answers.jsonl"
REPORT = "collect_report.json"
EVENTS = "events.jsonl"
PROMPT_FIELDS = ("id", "question", "kind", "group", "reference", "evidence")


@dataclass(frozen=True)
class Prompt:
    """One row of a prompts file."""

    id: str
    question: str
    kind: str = "catalog"
    group: str = "recent"
    reference: str | None = None  # a human-written answer (gold), when there is one
    evidence: tuple[str, ...] | None = None  # given evidence lines; None = retrieve
    source: str = ""


def read_prompts(path: str | Path) -> list[Prompt]:
    """Parse a prompts JSONL file (``question`` required); errors name the file and line."""
    prompts, seen = [], set()
    for line, row in read_jsonl(path):
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise DataError(
                f"'question' must be a non-empty string, got {clip(question)!r}. "
                'Fix: write rows like {"id": "q1", "question": "Is Nana in stock?"}',
                path=path,
                line=line,
                field="question",
            )
        pid = str(row.get("id") or f"line{line}")
        if pid in seen:
            raise DataError(f"duplicate id {pid!r}", path=path, line=line, field="id")
        seen.add(pid)
        evidence = row.get("evidence")
        if evidence is not None and not (
            isinstance(evidence, list) and all(isinstance(e, str) for e in evidence)
        ):
            raise DataError(
                "'evidence' must be a list of strings", path=path, line=line, field="evidence"
            )
        reference = row.get("reference")
        prompts.append(
            Prompt(
                id=pid,
                question=question.strip(),
                kind=str(row.get("kind") or "catalog"),
                group=str(row.get("group") or "recent"),
                reference=reference if isinstance(reference, str) and reference.strip() else None,
                evidence=tuple(evidence) if evidence is not None else None,
                source=f"{path}:{line}",
            )
        )
    if not prompts:
        raise DataError("holds no prompts. Fix: one JSON object per line", path=path)
    return prompts


def prompt_key(model: str, system: str, user: str, max_tokens: int) -> str:
    """The cache key: a hash of everything that shapes the teacher's answer."""
    blob = json.dumps(
        {"model": model, "system": system, "user": user, "max_tokens": max_tokens},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """Cached rows by key. A torn last line (no newline, not JSON) is dropped from the file."""
    if not path.is_file():
        return {}
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        keep = raw.rfind(b"\n") + 1
        try:
            json.loads(raw[keep:])
        except json.JSONDecodeError:
            with path.open("r+b") as handle:  # an interrupted append: drop the partial row
                handle.truncate(keep)
    rows = {}
    for line, row in read_jsonl(path):
        key = row.get("prompt_sha256")
        if not isinstance(key, str):
            raise DataError(
                "cached answer has no 'prompt_sha256'; this is not a kdedge answers file",
                path=path,
                line=line,
            )
        rows[key] = row
    return rows


@dataclass
class CollectReport:
    """What one collect run did and what the cache now holds."""

    out_dir: Path
    teacher_model: str
    prompts: int
    cache_hits: int
    answered: int
    failed: Counter = field(default_factory=Counter)
    rows: int = 0
    elapsed_s: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "teacher_model": self.teacher_model,
            "prompts": self.prompts,
            "cache_hits": self.cache_hits,
            "answered": self.answered,
            "failed": dict(self.failed),
            "rows": self.rows,
            "complete": self.complete,
            "elapsed_s": round(self.elapsed_s, 2),
            "summary": self.summary,
        }


def summarize(rows: Sequence[dict[str, Any]], run_id: str, teacher_model: str) -> dict[str, Any]:
    """The seed's ``teacher_label_generation`` fields over the cached rows.

    ``teacher_entropy_mean`` needs token log-probabilities, which chat APIs return only on
    request and many servers not at all, so it is left out rather than guessed.
    """
    from kdedge.llm.speech_acts import is_hedged, is_refusal

    n = len(rows)

    def mean(key: str) -> float:
        return round(sum(float(r.get(key) or 0) for r in rows) / n, 1) if n else 0.0

    answers = [str(r.get("answer") or "") for r in rows]
    return {
        "event": "teacher_label_generation",
        "run_id": run_id,
        "teacher_model": teacher_model,
        "rows_processed": n,
        "avg_prompt_tokens": mean("prompt_tokens"),
        "avg_response_tokens": mean("completion_tokens"),
        "teacher_refusal_rate": round(sum(map(is_refusal, answers)) / n, 4) if n else 0.0,
        "low_confidence_fraction": round(sum(map(is_hedged, answers)) / n, 4) if n else 0.0,
        "estimated_cost_usd": round(sum(float(r.get("cost_usd") or 0) for r in rows), 4),
    }


def _evidence(prompt: Prompt, retrieve: Callable[[str], list[Any]] | None) -> tuple[list, list]:
    """(evidence lines, record ids) for a prompt: its own, else retrieved, else none."""
    if prompt.evidence is not None:
        return list(prompt.evidence), []
    if retrieve is None:
        return [], []
    records = retrieve(prompt.question)
    return [r.evidence_line() for r in records], [r.id for r in records]


def collect(
    prompts_path: str | Path,
    out_dir: str | Path,
    client: Any,
    *,
    catalog_path: str | Path | None = None,
    system: str = SYSTEM_PROMPT,
    max_tokens: int = 256,
    workers: int = 4,
    max_consecutive_failures: int = 20,
    limit: int | None = None,
    track: Tracker = silent,
) -> CollectReport:
    """Ask ``client`` (an :class:`~kdedge.runtimes.teachers.OpenAIClient`) for every prompt
    not yet in ``out_dir``'s cache; return what happened.

    With ``catalog_path`` each question gets the catalog records retrieved for it as
    evidence in its prompt (retrieval-grounded teacher prompts, as the seeds advise).
    ``max_consecutive_failures`` failed calls in a row stop the run with an error; the
    answers collected so far stay cached.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    out = Path(out_dir)
    prompts = read_prompts(prompts_path)[:limit]
    retrieve = None
    if catalog_path is not None:
        from kdedge.llm.catalog import Catalog

        catalog = Catalog.load(catalog_path)
        retrieve = catalog.retrieve
    out.mkdir(parents=True, exist_ok=True)
    cache_file = out / ANSWERS
    cache = read_cache(cache_file)
    model = str(getattr(client, "model", "teacher"))
    run_id = f"collect_{dt.datetime.now(dt.timezone.utc):%Y_%m_%d_%H%M%S}_{uuid.uuid4().hex[:6]}"

    todo, hits, wanted = [], 0, set()
    for p in prompts:
        lines, ids = _evidence(p, retrieve)
        user = user_turn(p.question, lines)
        key = prompt_key(model, system, user, max_tokens)
        wanted.add(key)
        if key in cache:
            hits += 1
        else:
            todo.append((p, lines, ids, user, key))

    report = CollectReport(out, model, len(prompts), hits, 0)
    start = time.perf_counter()
    params = {"max_tokens": max_tokens, "system_sha256": _sha(system)}

    def ask(item: tuple) -> dict[str, Any]:
        p, lines, ids, user, key = item
        answer = client.answer(user, system, max_tokens=max_tokens)
        return {
            "id": p.id,
            "question": p.question,
            "kind": p.kind,
            "group": p.group,
            **({"reference": p.reference} if p.reference else {}),
            "evidence": lines,
            "evidence_ids": ids,
            "answer": (answer.text or "").strip(),
            "teacher_model": model,
            "teacher_source": answer.source,
            "prompt_sha256": key,
            "params": params,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "cost_usd": answer.cost,
            "latency_ms": round(answer.latency_ms, 1),
            "attempts": answer.attempts,
            "run_id": run_id,
        }

    streak = 0
    last_error = ""
    with cache_file.open("a", encoding="utf-8") as handle:
        for row_or_error in track(_run(ask, todo, workers), "asking the teacher", len(todo)):
            if isinstance(row_or_error, Exception):
                kind = getattr(row_or_error, "kind", type(row_or_error).__name__)
                report.failed[kind] += 1
                streak += 1
                last_error = str(row_or_error)
                if streak >= max_consecutive_failures:
                    handle.flush()
                    raise KdedgeError(
                        f"the teacher failed {streak} times in a row (last: {last_error}); "
                        f"{report.answered} new answers are cached in {cache_file}. "
                        "Fix the teacher, then run the same command again to resume"
                    )
                continue
            streak = 0
            handle.write(json.dumps(row_or_error, ensure_ascii=False) + "\n")
            handle.flush()
            cache[row_or_error["prompt_sha256"]] = row_or_error
            report.answered += 1
        os.fsync(handle.fileno())

    report.elapsed_s = time.perf_counter() - start
    rows = [cache[k] for k in wanted if k in cache]
    report.rows = len(rows)
    report.summary = summarize(rows, run_id, model)
    report.summary["cache_hits"] = hits
    report.summary["new_answers"] = report.answered
    report.summary["failed"] = dict(report.failed)
    fields = {k: v for k, v in report.summary.items() if k not in ("event", "run_id")}
    EventLog(out / EVENTS, run_id).emit("teacher_label_generation", **fields)
    atomic_write_text(out / REPORT, json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _run(ask: Callable[[Any], dict], items: list, workers: int) -> Iterator[dict | Exception]:
    """Yield each item's row (or the KdedgeError it raised) as calls complete, keeping at most
    ``2 * workers`` calls in flight so a failing teacher stops the run early."""
    if not items:
        return
    pending: set[Future] = set()
    queue = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kdedge-collect") as pool:
        try:
            for item in queue:
                pending.add(pool.submit(ask, item))
                if len(pending) >= 2 * workers:
                    break
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    exc = future.exception()
                    if exc is not None and not isinstance(exc, KdedgeError):
                        raise exc
                    yield exc if exc is not None else future.result()
                    nxt = next(queue, None)
                    if nxt is not None:
                        pending.add(pool.submit(ask, nxt))
        finally:
            for future in pending:
                future.cancel()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
