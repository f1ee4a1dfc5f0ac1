"""Measure one model in a fresh process: ``python -m kdedge.bench.worker < job.json``.

A fresh process per measurement keeps cold start and peak RSS honest (nothing is loaded
before the job) and lets a target pin cores before any engine starts its thread pool.
The job is JSON on stdin; the result is one JSON object on stdout:

- ``kind``: ``artifact`` (a bundle artifact through the kdedge runtime), ``torch`` (a
  model directory through transformers) or ``optimum`` (optimum's ORTModel on the same
  .onnx file): the last two are reference rows;
- ``threads``, ``cores``: the target's limits; ``texts``: inputs, cycled in order;
- ``batch``, ``repeats``, ``warmup``: ``repeats: 0`` measures only the cold start.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def _pin(cores: int | None) -> None:
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])


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


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    a = np.asarray(samples_ms)
    return {
        "p50": round(float(np.percentile(a, 50)), 4),
        "p95": round(float(np.percentile(a, 95)), 4),
        "p99": round(float(np.percentile(a, 99)), 4),
        "mean": round(float(a.mean()), 4),
        "n": len(samples_ms),
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
    return _percentiles(samples)


def run(job: dict[str, Any]) -> dict[str, Any]:
    _pin(job.get("cores"))
    t0 = time.perf_counter()
    predict = PREDICTORS[job["kind"]](job)
    t1 = time.perf_counter()
    texts = job["texts"]
    predict([texts[0]])
    first_done = time.time()
    t2 = time.perf_counter()
    out: dict[str, Any] = {
        "load_ms": round((t1 - t0) * 1000.0, 2),
        "first_predict_ms": round((t2 - t1) * 1000.0, 2),
        "first_done_unix": first_done,
    }
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


def peak_rss_mb() -> float:
    """This process's peak resident set size.

    On Linux it is read from ``VmHWM`` in ``/proc/self/status``: ``ru_maxrss`` survives
    ``fork`` + ``exec`` there, so a worker started by a large parent would report the
    parent's peak instead of its own.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, kB elsewhere
    return round(rss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


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
