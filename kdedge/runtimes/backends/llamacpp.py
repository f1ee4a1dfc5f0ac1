"""llama.cpp backends (llama-cpp-python): :class:`LlamaCppBackend` runs GGUF classifiers
(RANK pooling, one sequence per call), :class:`LlamaCppGenerator` runs GGUF causal LMs.
Each guards its context with a lock (a llama.cpp context is not thread-safe).

The generator formats the chat with the GGUF's own template (llama-cpp-python's
``Jinja2ChatFormatter``), and tokenizes, samples and keeps the KV cache with
``Llama.generate``; written here is only the log-probability of each generated token, from
the last position's logits. ``create_chat_completion(logprobs=True)`` is not used: in
llama-cpp-python 0.3.36 it needs ``logits_all=True`` (the logits of every position kept)
and sorts the whole vocabulary in Python for every token; on SmolLM2-135M it made a
7-token answer 8x slower (0.60 s against 0.075 s).

Run as a module it is also the subprocess worker the exporter uses, because llama.cpp
aborts the whole process on a GGUF it rejects::

    python -m kdedge.runtimes.backends.llamacpp quantize IN.gguf OUT.gguf Q8_0
    python -m kdedge.runtimes.backends.llamacpp logits MODEL.gguf < ids.json > logits.json
    python -m kdedge.runtimes.backends.llamacpp check MODEL.gguf   # opens it, decodes a token
    python -m kdedge.runtimes.backends.llamacpp greedy MODEL.gguf < cases.json > out.json
"""

from __future__ import annotations

import ctypes
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kdedge.errors import DataError, ModelError
from kdedge.extras import require


class LlamaCppBackend:
    name = "llamacpp"

    def __init__(self, path: Path, *, threads: int | None = None, n_ctx: int = 512) -> None:
        lc = require("llama_cpp", "llamacpp", "Running GGUF artifacts")
        self._lc = lc
        try:
            self._llm = lc.Llama(
                model_path=str(path),
                embedding=True,
                pooling_type=lc.LLAMA_POOLING_TYPE_RANK,
                n_ctx=n_ctx,
                n_batch=n_ctx,
                n_ubatch=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
        except ValueError as exc:  # llama-cpp-python's "Failed to load model from file"
            raise ModelError(f"llama.cpp cannot load {path}: {exc}") from exc
        self.n_labels = lc.llama_model_n_cls_out(self._llm.model)
        if self.n_labels <= 0:
            raise ModelError(f"{path} has no classifier head (cls.output); not a kdedge GGUF")
        self.n_ctx = n_ctx
        self._lock = threading.Lock()

    def _one(self, ids: list[int]) -> np.ndarray:
        lc, ctx = self._lc, self._llm.ctx
        if len(ids) > self.n_ctx:
            raise ModelError(f"{len(ids)} tokens exceed the llama.cpp context of {self.n_ctx}")
        batch = lc.llama_batch_init(len(ids), 0, 1)
        try:
            batch.n_tokens = len(ids)
            for i, token in enumerate(ids):
                batch.token[i] = token
                batch.pos[i] = i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = True
            lc.llama_memory_clear(lc.llama_get_memory(ctx), True)
            if lc.llama_encode(ctx, batch) != 0:
                raise ModelError("llama.cpp failed to encode the sequence")
            ptr = lc.llama_get_embeddings_seq(ctx, 0)
            if not ptr:
                raise ModelError("llama.cpp returned no pooled output (RANK pooling missing?)")
            return np.ctypeslib.as_array(
                ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(self.n_labels,)
            ).copy()
        finally:
            lc.llama_batch_free(batch)

    def logits(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        token_type_ids: np.ndarray | None = None,
    ) -> np.ndarray:
        if token_type_ids is not None and token_type_ids.any():
            raise ModelError(
                "llama.cpp runs single-text classifiers only; a cross-encoder's pair inputs "
                "need an ONNX or OpenVINO artifact"
            )
        pairs = zip(input_ids, attention_mask, strict=True)
        rows = [row[mask.astype(bool)].tolist() for row, mask in pairs]
        with self._lock:
            return np.stack([self._one(r) for r in rows]).astype(np.float32)


@dataclass(frozen=True)
class GenerationResult:
    """One completion: the text, each generated token's log-probability under the model
    (natural log, temperature 1, whatever the sampling temperature) and wall-clock timings.

    ``prompt_ms`` runs from the call to the first sampled token (chat template, tokenization,
    prompt decoding); ``generation_ms`` from there to the last token, so it covers
    ``completion_tokens - 1`` decode steps.
    """

    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    prompt_tokens: int
    finish_reason: str  # stop (end of turn or a stop string) | length
    prompt_ms: float
    generation_ms: float

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def prompt_tokens_per_s(self) -> float | None:
        """Prompt processing speed (pp), or None for an empty prompt."""
        if self.prompt_tokens == 0 or self.prompt_ms <= 0:
            return None
        return self.prompt_tokens / self.prompt_ms * 1000.0

    @property
    def tokens_per_s(self) -> float | None:
        """Generation speed (tg) over the decode steps after the first token; None below 2."""
        if self.completion_tokens < 2 or self.generation_ms <= 0:
            return None
        return (self.completion_tokens - 1) / self.generation_ms * 1000.0

    @property
    def mean_token_prob(self) -> float | None:
        """Geometric-mean probability of the generated tokens (exp of the mean logprob)."""
        if not self.logprobs:
            return None
        return _exp(sum(self.logprobs) / len(self.logprobs))

    @property
    def min_token_prob(self) -> float | None:
        return _exp(min(self.logprobs)) if self.logprobs else None


def _exp(x: float) -> float:
    """``math.exp`` that gives inf instead of raising OverflowError (a log-probability far
    above 0 comes only from a broken model; the router calls that ``model_error``)."""
    return math.exp(x) if x < 700 else float("inf")


class LlamaCppGenerator:
    """A GGUF causal LM: chat messages in, a :class:`GenerationResult` out.

    Every call prefills its whole prompt (the KV cache is not reused across calls), so a
    prompt gets the same tokens and log-probabilities whatever ran before it: llama.cpp's
    prefix reuse changes how the prompt is split into batches, and with it the last bits
    of the logits. ``chat_template`` is used only when the GGUF carries none. ``stop``
    strings end a completion besides the model's end-of-generation tokens; a stop string
    that is one special token of the vocabulary is matched as that token. ``probe=True``
    first opens the file in a subprocess (:func:`check_gguf`), for GGUF files of unknown
    origin: llama.cpp aborts the whole process on some files it rejects.
    """

    name = "llamacpp"

    def __init__(
        self,
        path: Path,
        *,
        threads: int | None = None,
        n_ctx: int = 2048,
        n_batch: int = 512,
        chat_template: str | None = None,
        stop: Sequence[str] = (),
        probe: bool = False,
    ) -> None:
        lc = require("llama_cpp", "llamacpp", "Running GGUF generators")
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        path = Path(path)
        if probe:
            check_gguf(path)
        self._lc = lc
        try:
            self._llm = lc.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_batch=min(n_batch, n_ctx),
                n_ubatch=min(n_batch, n_ctx),
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
        except ValueError as exc:  # llama-cpp-python's "Failed to load model from file"
            raise ModelError(f"llama.cpp cannot load {path}: {exc}") from exc
        self.path = path
        self.n_ctx = n_ctx
        self.threads = self._llm.n_threads
        self._vocab = lc.llama_model_get_vocab(self._llm.model)
        self.n_vocab = self._llm.n_vocab()
        template = self._llm.metadata.get("tokenizer.chat_template") or chat_template
        if not template:
            raise ModelError(
                f"{path} has no chat template (tokenizer.chat_template) and the bundle gives "
                "none; re-export the model with its tokenizer's chat template"
            )
        self.chat_template = template
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self._token_text(self._llm.token_eos()),
            bos_token=self._token_text(self._llm.token_bos()),
        )
        self.stop_ids, self.stop_texts = self._split_stops(stop)
        self._lock = threading.Lock()

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def _split_stops(self, stops: Sequence[str]) -> tuple[frozenset[int], tuple[bytes, ...]]:
        """Stop strings that are one special token become stop ids; the rest stay text."""
        ids, texts = set(), []
        for stop in stops:
            if not stop:
                continue
            tokens = self._llm.tokenize(stop.encode("utf-8"), add_bos=False, special=True)
            if len(tokens) == 1 and self._token_text(tokens[0]) == stop:
                ids.add(tokens[0])
            else:
                texts.append(stop.encode("utf-8"))
        return frozenset(ids), tuple(texts)

    def prompt_ids(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """The token ids of ``messages`` rendered by the chat template, ready to generate."""
        try:
            rendered = self._formatter(messages=[dict(m) for m in messages])
        except Exception as exc:  # jinja2 errors, raise_exception() in the template
            raise ModelError(f"the chat template of {self.path.name} failed: {exc}") from exc
        return self._llm.tokenize(
            rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
        )

    def _logprob(self, token: int) -> float:
        """log p(token) under the logits the sampler just drew it from."""
        ptr = self._lc.llama_get_logits_ith(self._llm.ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        top = float(logits.max())
        return float(logits[token]) - top - math.log(float(np.exp(logits - top).sum()))

    def generate(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        ignore_eos: bool = False,
    ) -> GenerationResult:
        """Complete the chat ``messages``: greedy at ``temperature`` 0, else sampled (top-k
        40, top-p 0.95, min-p 0.05). ``stop`` adds stop strings for this call; ``ignore_eos``
        keeps generating through end-of-generation tokens (benchmarks)."""
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        stop_ids, stop_texts = self.stop_ids, self.stop_texts
        if stop:
            extra_ids, extra_texts = self._split_stops(stop)
            stop_ids, stop_texts = stop_ids | extra_ids, stop_texts + extra_texts
        with self._lock:  # timings start once the model is ours, not while waiting for it
            start = time.perf_counter()
            prompt = self.prompt_ids(messages)
            room = self.n_ctx - len(prompt)
            if room < 1:
                raise DataError(
                    f"the prompt is {len(prompt)} tokens but the context holds {self.n_ctx}; "
                    "shorten the question or the evidence (or export with a longer context)"
                )
            tokens, logprobs, text, finish, first = self._run(
                prompt, min(max_tokens, room), temperature, stop_ids, stop_texts, ignore_eos
            )
            end = time.perf_counter()
        return GenerationResult(
            text=text,
            token_ids=tuple(tokens),
            logprobs=tuple(logprobs),
            prompt_tokens=len(prompt),
            finish_reason=finish,
            prompt_ms=((first or end) - start) * 1000.0,
            generation_ms=(end - first) * 1000.0 if first else 0.0,
        )

    def _run(
        self,
        prompt: list[int],
        max_tokens: int,
        temperature: float,
        stop_ids: frozenset[int],
        stop_texts: tuple[bytes, ...],
        ignore_eos: bool,
    ) -> tuple[list[int], list[float], str, str, float | None]:
        """(tokens, logprobs, text, finish reason, when the first token was sampled)."""
        lc, llm = self._lc, self._llm
        tokens: list[int] = []
        logprobs: list[float] = []
        finish, cut, first = "length", None, None
        llm.reset()  # prefill the whole prompt (see the class docstring)
        steps = llm.generate(prompt, temp=temperature, repeat_penalty=1.0)
        try:
            for token in steps:
                if first is None:
                    first = time.perf_counter()
                end_of_turn = lc.llama_vocab_is_eog(self._vocab, token) or token in stop_ids
                if end_of_turn and not ignore_eos:
                    finish = "stop"
                    break
                tokens.append(token)
                logprobs.append(self._logprob(token))
                if stop_texts:
                    so_far = llm.detokenize(tokens, prev_tokens=prompt)
                    hits = [so_far.index(s) for s in stop_texts if s in so_far]
                    if hits:
                        finish, cut = "stop", min(hits)
                        break
                if len(tokens) >= max_tokens:
                    break
        finally:
            steps.close()
        if cut is not None:  # drop the tokens that spell the stop string
            while tokens and len(llm.detokenize(tokens, prev_tokens=prompt)) > cut:
                tokens.pop()
                logprobs.pop()
        text = llm.detokenize(tokens, prev_tokens=prompt)
        if cut is not None:
            text = text[:cut]
        return tokens, logprobs, text.decode("utf-8", errors="ignore"), finish, first

    def close(self) -> None:
        with self._lock:
            self._llm.close()


def check_gguf(path: Path) -> None:
    """Open ``path`` and decode one token in a fresh interpreter; a file llama.cpp rejects
    (with an error or by aborting) raises :class:`ModelError` here instead of ending us."""
    proc = run_worker("check", str(path))
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:] or ["no output"]
        raise ModelError(
            f"llama.cpp rejects {path} (exit {proc.returncode}): {' | '.join(tail)}. "
            "Fix: re-export the bundle, or use a GGUF that llama.cpp can open"
        )


def _check(path: str) -> int:
    lc = require("llama_cpp", "llamacpp", "Checking GGUF files")
    try:
        llm = lc.Llama(model_path=path, n_ctx=64, n_batch=64, verbose=False)
    except ValueError as exc:
        print(f"cannot load {path}: {exc}", file=sys.stderr)
        return 1
    llm.eval([max(llm.token_bos(), 0)])
    return 0


def run_worker(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run this module's command line in a fresh interpreter, so that a llama.cpp abort
    ends that process and not the caller's."""
    return subprocess.run(
        [sys.executable, "-m", "kdedge.runtimes.backends.llamacpp", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def _quantize(source: str, target: str, ftype: str) -> int:
    lc = require("llama_cpp", "llamacpp", "Quantizing GGUF files")
    params = lc.llama_model_quantize_default_params()
    params.ftype = getattr(lc, f"LLAMA_FTYPE_MOSTLY_{ftype.upper()}")
    return int(lc.llama_model_quantize(source.encode(), target.encode(), ctypes.byref(params)))


def greedy_cases(path: Path, cases: list[dict[str, Any]], new_tokens: int) -> dict[str, Any]:
    """A causal LM's view of probe prompts, for generation parity: per case its own
    tokenization of ``text``, the next-token logits after ``ids``, the argmax at each
    position of ``ids + continuation`` (teacher forcing) and ``new_tokens`` free-running
    greedy tokens, whose decode time gives tokens/s."""
    lc = require("llama_cpp", "llamacpp", "Checking GGUF generators")
    longest = max(len(c["ids"]) + max(len(c["continuation"]), new_tokens) for c in cases)
    try:
        llm = lc.Llama(model_path=str(path), n_ctx=longest + 8, logits_all=True, verbose=False)
    except ValueError as exc:
        raise ModelError(f"llama.cpp cannot load {path}: {exc}") from exc
    out, decode_s, decode_n = [], 0.0, 0
    for case in cases:
        ids, cont = case["ids"], case["continuation"]
        tokens = llm.tokenize(case["text"].encode(), add_bos=True, special=True)
        llm.reset()
        llm.eval(ids + cont[:-1])
        rows = llm.scores[len(ids) - 1 : len(ids) - 1 + len(cont)]
        next_logits = rows[0].tolist()
        argmax = rows.argmax(1).tolist()
        llm.reset()
        llm.eval(ids)
        generated = [int(llm.scores[llm.n_tokens - 1].argmax())]
        start = time.perf_counter()
        while len(generated) < new_tokens:
            llm.eval([generated[-1]])
            generated.append(int(llm.scores[llm.n_tokens - 1].argmax()))
        decode_s += time.perf_counter() - start
        decode_n += new_tokens - 1
        out.append(
            {"tokens": tokens, "next_logits": next_logits, "argmax": argmax, "generated": generated}
        )
    return {
        "cases": out,
        "decode_tokens": decode_n,
        "decode_seconds": decode_s,
        "threads": llm.n_threads,
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["check"] and len(argv) == 2:
        return _check(argv[1])
    if argv[:1] == ["quantize"] and len(argv) == 4:
        return _quantize(*argv[1:])
    if argv[:1] == ["logits"] and len(argv) == 2:
        ids = json.load(sys.stdin)
        backend = LlamaCppBackend(Path(argv[1]), n_ctx=max(8, max(len(r) for r in ids)))
        out = [backend._one(r).tolist() for r in ids]
        json.dump({"logits": out, "n_labels": backend.n_labels}, sys.stdout)
        return 0
    if argv[:1] == ["greedy"] and len(argv) == 2:
        request = json.load(sys.stdin)
        result = greedy_cases(Path(argv[1]), request["cases"], int(request["new_tokens"]))
        json.dump(result, sys.stdout)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
