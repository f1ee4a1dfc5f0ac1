"""Reranker arms of the benchmark worker: a rerank bundle through the kdedge runtime, and a
cross-encoder through transformers, one query against growing candidate lists."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from kdedge.bench.measure import cold, peak_rss_mb, percentiles, pin


def _runtime_reranker(job: dict[str, Any]) -> Callable[[str, Sequence[str]], Any]:
    from kdedge.runtimes import load

    rt = load(job["bundle"], artifact=job["artifact"], threads=job.get("threads"))
    return lambda query, passages: rt.scores(query, passages)


def _torch_reranker(job: dict[str, Any]) -> Callable[[str, Sequence[str]], Any]:
    """A cross-encoder through transformers, as an application without kdedge would run it."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    tokenizer = AutoTokenizer.from_pretrained(job["model_dir"])
    model = AutoModelForSequenceClassification.from_pretrained(job["model_dir"]).eval()
    max_length = job.get("max_length", 256)

    def score(query: str, passages: Sequence[str]) -> Any:
        enc = tokenizer(
            [query] * len(passages),
            list(passages),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        with torch.inference_mode():
            return model(**enc).logits[:, 0].numpy()

    return score


RERANKERS = {"rerank": _runtime_reranker, "torch-rerank": _torch_reranker}


class Reranker:
    """A reranker arm: building it loads the model and scores once (the cold start)."""

    def __init__(self, job: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        self.score = RERANKERS[job["kind"]](job)
        t1 = time.perf_counter()
        self.query, self.passages = job["query"], job["passages"]
        self.paired_size = job.get("paired_size", 50)
        self.score(self.query, self.passages[:1])
        self.cold = cold(t0, t1)

    def latency(self, size: int, repeats: int, warmup: int) -> dict[str, float]:
        passages = (self.passages * (size // len(self.passages) + 1))[:size]
        samples = []
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            self.score(self.query, passages)
            if i >= warmup:
                samples.append((time.perf_counter() - t0) * 1000.0)
        out = percentiles(samples)
        out["docs_per_s"] = round(size / out["p50"] * 1000.0, 1)
        return out

    def round(self) -> dict[str, float | None]:
        """One call on ``paired_size`` candidates, after an untimed one (see Classifier)."""
        passages = self.passages[: self.paired_size]
        self.score(self.query, passages)
        t0 = time.perf_counter()
        self.score(self.query, passages)
        return {"rerank_ms": (time.perf_counter() - t0) * 1000.0}


def run_reranker(job: dict[str, Any]) -> dict[str, Any]:
    """Latency per candidate count of one reranker arm."""
    pin(job.get("cores"))
    arm = Reranker(job)
    out: dict[str, Any] = dict(arm.cold)
    if job.get("repeats"):
        warmup = job.get("warmup", 3)
        out["rerank"] = {
            str(size): arm.latency(size, max(job["repeats"] * 10 // size, 5), warmup)
            for size in job["sizes"]
        }
    out["peak_rss_mb"] = peak_rss_mb()
    return out
