"""Generator arms of the benchmark worker: the kdedge runtime and raw llama-cpp-python on the
same GGUF, llama-bench style (pp and tg tokens/s)."""

from __future__ import annotations

import time
from typing import Any

from kdedge.bench.measure import cold, peak_rss_mb, pin, rates

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


class RuntimeGenerator:
    """A GGUF artifact of a generate bundle through :func:`kdedge.runtimes.load`; building
    it loads the model and answers once (the cold start)."""

    def __init__(self, job: dict[str, Any]) -> None:
        from kdedge.runtimes import load

        t0 = time.perf_counter()
        self.rt = load(job["bundle"], artifact=job["artifact"], threads=job.get("threads"))
        t1 = time.perf_counter()
        self.rt.generate(QUESTION, route=False, max_tokens=1)
        self.cold = cold(t0, t1)
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
        self.cold = cold(t0, t1)
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


def run_generator(job: dict[str, Any]) -> dict[str, Any]:
    """pp and tg tokens/s of one generator arm, ``repeats`` rounds after one warm-up."""
    pin(job.get("cores"))
    arm = GENERATORS[job["kind"]](job)
    out: dict[str, Any] = dict(arm.cold)
    if job.get("repeats"):
        rounds = [arm.round() for _ in range(job["repeats"] + 1)][1:]
        pp = [r["pp_tokens_per_s"] for r in rounds if r["pp_tokens_per_s"]]
        tg = [r["tg_tokens_per_s"] for r in rounds if r["tg_tokens_per_s"]]
        out["pp"] = rates(pp, arm.prompt_tokens)
        out["tg"] = {**rates(tg, job["tg"]), "context": arm.context_tokens}
    out["peak_rss_mb"] = peak_rss_mb()
    return out


GENERATORS: dict[str, type[RuntimeGenerator] | type[RawGenerator]] = {
    "generate": RuntimeGenerator,
    "llamacpp": RawGenerator,
}
