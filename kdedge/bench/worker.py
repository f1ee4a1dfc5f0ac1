"""Measure one model in a fresh process: ``python -m kdedge.bench.worker < job.json``.

A fresh process per measurement keeps cold start and peak RSS honest (nothing is loaded
before the job) and lets a target pin cores before any engine starts its thread pool.
The job is JSON on stdin; the result is one JSON object on stdout:

- ``kind``: ``artifact`` (a bundle artifact through the kdedge runtime), ``torch`` (a
  model directory through transformers) or ``optimum`` (optimum's ORTModel on the same
  .onnx file): the last two are reference rows;
- ``threads``, ``cores``: the target's limits; ``texts``: inputs, cycled in order;
- ``batch``, ``repeats``, ``warmup``: ``repeats: 0`` measures only the cold start.

Generators, llama-bench style (``kind``: ``generate`` for a GGUF artifact of a generate
bundle through the kdedge runtime, ``llamacpp`` for raw llama-cpp-python on the same file
with the same threads and context): ``pp`` prompt tokens processed (tokens/s from the call to
the first sampled token) and ``tg`` tokens generated through end-of-turn tokens (tokens/s over
the ``tg - 1`` decode steps after the first token), each ``repeats`` times after one warm-up.
The runtime's prompt is its own chat prompt, grown with catalog-like evidence lines to about
``pp`` tokens (never below the bundle's bare prompt); it reports the count it reached, and
the harness gives the raw row exactly that many tokens.

Rerankers (``kind``: ``rerank`` for an artifact of a rerank bundle through the kdedge
runtime, ``torch-rerank`` for a cross-encoder directory through transformers): one query
against ``sizes`` candidate counts of ``passages`` (p50/p95 ms and documents/s per count).

``kind: paired`` measures several of the above (``arms``, each a job) in one process in
interleaved rounds, for ratios that hold on a noisy host (see :func:`run_paired`); it
returns every round's samples per arm: ``batch_1_ms`` for classifiers, ``pp_tokens_per_s``
and ``tg_tokens_per_s`` for generators.

The generator and reranker arms live in :mod:`kdedge.bench.worker_generate` and
:mod:`kdedge.bench.worker_rerank`; what every arm measures alike in :mod:`kdedge.bench.measure`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from kdedge.bench.measure import cold, peak_rss_mb, percentiles, pin
from kdedge.bench.worker_generate import GENERATORS, run_generator
from kdedge.bench.worker_rerank import RERANKERS, Reranker, run_reranker


def _runtime_predictor(job: dict[str, Any]) -> Callable[[Sequence[str]], Any]:
    from kdedge.runtimes import load

    rt = load(job["bundle"], artifact=job["artifact"], threads=job.get("threads"))
    return lambda texts: rt.predict_batch(list(texts))


def _torch_predictor(job: dict[str, Any]) -> Callable[[Sequence[str]], Any]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    tokenizer = AutoTokenizer.from_pretrained(job["model_dir"])
    model = AutoModelForSequenceClassification.from_pretrained(job["model_dir"]).eval()
    max_length = job.get("max_length", 64)

    def predict(texts: Sequence[str]) -> Any:
        enc = tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            return torch.softmax(model(**enc).logits, dim=-1).numpy()

    return predict


def _optimum_predictor(job: dict[str, Any]) -> Callable[[Sequence[str]], Any]:
    """optimum's ORTModelForSequenceClassification on the bundle's own .onnx file."""
    import onnxruntime
    import torch
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer

    options = onnxruntime.SessionOptions()
    if job.get("threads"):
        options.intra_op_num_threads = job["threads"]
        options.inter_op_num_threads = 1
        torch.set_num_threads(job["threads"])
    model = ORTModelForSequenceClassification.from_pretrained(
        job["model_dir"],
        file_name=job["file_name"],
        provider="CPUExecutionProvider",
        session_options=options,
    )
    tokenizer = AutoTokenizer.from_pretrained(job["model_dir"])
    max_length = job.get("max_length", 64)

    def predict(texts: Sequence[str]) -> Any:
        enc = tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        return torch.softmax(model(**enc).logits, dim=-1).numpy()

    return predict


PREDICTORS = {
    "artifact": _runtime_predictor,
    "torch": _torch_predictor,
    "optimum": _optimum_predictor,
}


def _latency(predict: Callable, texts: list[str], batch: int, repeats: int, warmup: int):
    samples = []
    for i in range(warmup + repeats):
        start = (i * batch) % len(texts)
        chunk = (texts * 2)[start : start + batch] if batch > 1 else [texts[i % len(texts)]]
        t0 = time.perf_counter()
        predict(chunk)
        if i >= warmup:
            samples.append((time.perf_counter() - t0) * 1000.0)
    return percentiles(samples)


class Classifier:
    """A classifier arm: building it loads the model and predicts once (the cold start)."""

    def __init__(self, job: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        self.predict = PREDICTORS[job["kind"]](job)
        t1 = time.perf_counter()
        self.texts = job["texts"]
        self.predict([self.texts[0]])
        self.cold = cold(t0, t1)
        self.rounds = 0

    def round(self) -> dict[str, float | None]:
        """Batch-1 latency of the next text, in ms. An untimed call on the same text goes
        first: interleaved with other models, an arm's weights have left the CPU caches by
        its turn, and a single timed call would measure that eviction, not the model."""
        text = self.texts[self.rounds % len(self.texts)]
        self.rounds += 1
        self.predict([text])
        t0 = time.perf_counter()
        self.predict([text])
        return {"batch_1_ms": (time.perf_counter() - t0) * 1000.0}


def run_paired(job: dict[str, Any]) -> dict[str, Any]:
    """Several arms in one process, measured in interleaved rounds: each round runs every
    arm once, in a fresh random order, on the same input. Noise that lasts longer than a
    round (another job on the machine, a frequency change) then hits every arm alike, so
    per-round ratios between arms stay meaningful on a noisy host where rows measured one
    after another do not. An arm that fails to load is reported and left out."""
    pin(job.get("cores"))
    arms: list[Any] = []
    errors: list[str | None] = []
    for sub in job["arms"]:
        sub = {**sub, "repeats": job["repeats"]}  # generator arms build their prompt then
        try:
            arms.append(ARMS.get(sub["kind"], Classifier)(sub))
            errors.append(None)
        except Exception as exc:  # one arm's failure is data; the others still run
            arms.append(None)
            errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0])
    live = [i for i, arm in enumerate(arms) if arm is not None]
    samples: list[dict[str, list[float | None]]] = [{} for _ in arms]
    rng = np.random.default_rng(job.get("seed", 0))
    for n in range(job.get("warmup", 1) + job["repeats"]):
        for i in rng.permutation(live):
            values = arms[i].round()
            if n >= job.get("warmup", 1):
                for metric, value in values.items():
                    samples[i].setdefault(metric, []).append(value)
    return {"arms": [{"error": e, "samples": s} for e, s in zip(errors, samples, strict=True)]}


ARMS: dict[str, Any] = {**GENERATORS, **dict.fromkeys(RERANKERS, Reranker)}
"""Arm classes by job kind; classifier kinds fall through to :class:`Classifier`."""


def run(job: dict[str, Any]) -> dict[str, Any]:
    if job["kind"] == "paired":
        return run_paired(job)
    if job["kind"] in RERANKERS:
        return run_reranker(job)
    if job["kind"] in GENERATORS:
        return run_generator(job)
    pin(job.get("cores"))
    arm = Classifier(job)
    predict, texts = arm.predict, arm.texts
    out: dict[str, Any] = dict(arm.cold)
    repeats = job.get("repeats", 0)
    if repeats:
        warmup = job.get("warmup", 10)
        out["batch_1"] = _latency(predict, texts, 1, repeats, warmup)
        # an input at the model's maximum length, the worst case the data may not show:
        # about 10 characters per token is well past it without making tokenization the test
        long_text = " ".join(texts)[: 10 * job.get("max_length", 64)]
        out["batch_1_max_length"] = _latency(predict, [long_text], 1, repeats, warmup)
        batch = job.get("batch", 8)
        if batch > 1:
            big = _latency(predict, texts, batch, max(repeats // batch, 10), max(warmup // 2, 2))
            big["throughput_per_s"] = round(batch / big["p50"] * 1000.0, 1)
            out[f"batch_{batch}"] = big
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main() -> int:
    job = json.load(sys.stdin)
    try:
        result = run(job)
    except Exception as exc:  # reported to the parent as data, one line
        json.dump({"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}, sys.stdout)
        return 1
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
