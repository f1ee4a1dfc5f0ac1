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


QUESTION = "Which of these volumes are in stock, and what do they cost?"


def _filler(rt: Any, pp: int) -> list[str]:
    """Evidence lines that bring the runtime's prompt to about ``pp`` tokens (not above it,
    unless the bare prompt already is)."""

    def size(lines: list[str]) -> int:
        return len(rt.generator.prompt_ids(rt.messages(QUESTION, lines)))

    lines: list[str] = []
    while size(lines) < pp:
        n = len(lines) + 1
        lines.append(
            f"Catalog title {n} vol. {n % 40 + 1} | paperback | in stock | ${n % 20 + 5}.99"
        )
    while lines and size(lines) > pp:  # trim the last line word by word
        words = lines[-1].split(" ")[:-1]
        lines[-1:] = [" ".join(words)] if words else []
    return lines


def _rates(samples: list[float], tokens: int) -> dict[str, Any]:
    """Median, min and max tokens/s of the samples (None without any)."""
    if not samples:
        return {"tokens": tokens, "tokens_per_s": None, "min": None, "max": None, "n": 0}
    return {
        "tokens": tokens,
        "tokens_per_s": round(float(np.median(samples)), 2),
        "min": round(min(samples), 2),
        "max": round(max(samples), 2),
        "n": len(samples),
    }


class RuntimeGenerator:
    """A GGUF artifact of a generate bundle through :func:`kdedge.runtimes.load`; building
    it loads the model and answers once (the cold start)."""

    def __init__(self, job: dict[str, Any]) -> None:
        from kdedge.runtimes import load

        t0 = time.perf_counter()
        self.rt = load(job["bundle"], artifact=job["artifact"], threads=job.get("threads"))
        t1 = time.perf_counter()
        self.rt.generate(QUESTION, route=False, max_tokens=1)
        self.cold = _cold(t0, t1)
        self.tg = job["tg"]
        self.evidence = _filler(self.rt, job["pp"]) if job.get("repeats") else []
        prompt_ids, messages = self.rt.generator.prompt_ids, self.rt.messages
        self.prompt_tokens = len(prompt_ids(messages(QUESTION, self.evidence)))
        self.context_tokens = len(prompt_ids(messages(QUESTION)))

    def round(self) -> dict[str, float | None]:
        g = self.rt.generate(QUESTION, self.evidence, route=False, max_tokens=1)
        r = self.rt.generator.generate(
            self.rt.messages(QUESTION), max_tokens=self.tg, ignore_eos=True
        )
        return {"pp_tokens_per_s": g.prompt_tokens_per_s, "tg_tokens_per_s": r.tokens_per_s}


class RawGenerator:
    """Raw llama-cpp-python on the same GGUF: ``Llama.generate`` for pp and tg alike, on
    exactly as many prompt tokens (``pp``) and after as long a context (``tg_context``) as
    the runtime row had."""

    def __init__(self, job: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        import llama_cpp

        threads = job.get("threads")
        self.llm = llama_cpp.Llama(
            model_path=job["model"],
            n_ctx=job["n_ctx"],
            n_batch=min(512, job["n_ctx"]),
            n_ubatch=min(512, job["n_ctx"]),
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        t1 = time.perf_counter()
        need = max(job["pp"], job.get("tg_context", 1))
        text = " ".join(f"Catalog title {n} | paperback | in stock" for n in range(need))
        filler = self.llm.tokenize(text.encode("utf-8"), add_bos=False)
        self.prompt, self.context = filler[: job["pp"]], filler[: job.get("tg_context", 1)]
        self._first_token(self.context).close()
        self.cold = _cold(t0, t1)
        self.tg = job["tg"]
        self.prompt_tokens, self.context_tokens = len(self.prompt), len(self.context)

    def _first_token(self, ids: list[int]) -> Any:
        """Prefill ``ids`` from an empty cache and sample one token; the generator goes on."""
        self.llm.reset()
        steps = self.llm.generate(ids, temp=0.0, repeat_penalty=1.0)
        next(steps)
        return steps

    def round(self) -> dict[str, float | None]:
        start = time.perf_counter()
        self._first_token(self.prompt).close()
        pp = len(self.prompt) / (time.perf_counter() - start)
        steps = self._first_token(self.context)
        start = time.perf_counter()
        for _ in range(self.tg - 1):
            next(steps)
        steps.close()
        tg = (self.tg - 1) / (time.perf_counter() - start)
        return {"pp_tokens_per_s": pp, "tg_tokens_per_s": tg}


def _cold(t0: float, t1: float) -> dict[str, float]:
    """Load time, first answer time and the wall clock of the first answer."""
    return {
        "load_ms": round((t1 - t0) * 1000.0, 2),
        "first_predict_ms": round((time.perf_counter() - t1) * 1000.0, 2),
        "first_done_unix": time.time(),
    }


def run_generator(job: dict[str, Any]) -> dict[str, Any]:
    """pp and tg tokens/s of one generator arm, ``repeats`` rounds after one warm-up."""
    _pin(job.get("cores"))
    arm = GENERATORS[job["kind"]](job)
    out: dict[str, Any] = dict(arm.cold)
    if job.get("repeats"):
        rounds = [arm.round() for _ in range(job["repeats"] + 1)][1:]
        pp = [r["pp_tokens_per_s"] for r in rounds if r["pp_tokens_per_s"]]
        tg = [r["tg_tokens_per_s"] for r in rounds if r["tg_tokens_per_s"]]
        out["pp"] = _rates(pp, arm.prompt_tokens)
        out["tg"] = {**_rates(tg, job["tg"]), "context": arm.context_tokens}
    out["peak_rss_mb"] = peak_rss_mb()
    return out


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
        self.cold = _cold(t0, t1)

    def latency(self, size: int, repeats: int, warmup: int) -> dict[str, float]:
        passages = (self.passages * (size // len(self.passages) + 1))[:size]
        samples = []
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            self.score(self.query, passages)
            if i >= warmup:
                samples.append((time.perf_counter() - t0) * 1000.0)
        out = _percentiles(samples)
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
    _pin(job.get("cores"))
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


GENERATORS: dict[str, type[RuntimeGenerator] | type[RawGenerator]] = {
    "generate": RuntimeGenerator,
    "llamacpp": RawGenerator,
}


class Classifier:
    """A classifier arm: building it loads the model and predicts once (the cold start)."""

    def __init__(self, job: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        self.predict = PREDICTORS[job["kind"]](job)
        t1 = time.perf_counter()
        self.texts = job["texts"]
        self.predict([self.texts[0]])
        self.cold = _cold(t0, t1)
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
    _pin(job.get("cores"))
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
    _pin(job.get("cores"))
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
