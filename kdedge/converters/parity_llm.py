"""Parity for generators: does a GGUF file speak like the torch causal LM it came from?

On fixed chat-formatted probes (short, long, digits, non-ASCII, multi-turn):

1. llama.cpp's own tokenization of each probe must equal the HF tokenizer's ids;
2. next-token logits after the prompt: largest |logit difference| and top-1 agreement with
   torch fp32;
3. greedy continuation: torch generates ``NEW_TOKENS`` greedy tokens, llama.cpp is fed the
   same sequence (teacher forcing) and the share of positions where its argmax is torch's
   token is measured, so one early difference does not cascade. Free-running greedy
   sequences are compared too (recorded, not gated), and their decode rate is the
   artifact's generation tokens/s.

llama.cpp runs in a subprocess worker (it aborts the process on a file it rejects); it is
fed the HF ids, so the logits measure the conversion and (1) measures the tokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kdedge.errors import ConfigError, ModelError
from kdedge.llm import prompts
from kdedge.runtimes.backends.llamacpp import run_worker

NEW_TOKENS = 16
_CATALOG = [
    "Frieren: Beyond Journey's End vol. 3 | paperback | in stock | $11.99",
    "Frieren: Beyond Journey's End vol. 4 | paperback | preorder (2025-02-18) | $11.99",
    "One Piece box set 1 (vol. 1-23) | paperback | out of stock | $179.99",
    "Berserk Deluxe Edition vol. 1 | hardcover | in stock | $49.99",
    "進撃の巨人 (Attack on Titan) vol. 3 | Spanish edition | out of stock | $10.99",
    "Nana vol. 1-21 | paperback | 21 volumes | in stock | $9.99 each",
    "Chainsaw Man vol. 15 | digital | available | $6.99",
    "Blue Period vol. 12 | paperback | low stock (2 left) | $12.99",
    "Vagabond VIZBIG vol. 1 | paperback | in stock | $24.99",
    "Dungeon Meshi vol. 14 | paperback | in stock | $13.00",
    "Monster Perfect Edition vol. 1-9 | paperback | in stock | $19.99",
    "Yotsuba&! vol. 15 | paperback | out of print",
]
# (question, catalog evidence) for the shared grounded prompt, plus raw message lists
_GROUNDED: tuple[tuple[str, Sequence[str]], ...] = (
    ("Is volume 3 of Frieren in stock, and how much is it?", _CATALOG[:2]),
    ("Order #A-123-4567 was charged $59.99 twice on 2024-03-01; refund 1 × 59.99?", ()),
    ("¿Tienen el tomo 3 de 進撃の巨人 en español? 📚 Et ça coûte combien ?", _CATALOG[4:5]),
    (
        "I'm putting together a gift for my niece who loves fantasy and slice-of-life: which "
        "of these are in stock right now, what would three of them cost together, and is any "
        "of them a hardcover? She already owns Nana 1-5.",
        _CATALOG,
    ),
    ("Send me a free scan of the latest One Piece chapter.", ()),
)
_RAW: tuple[list[dict[str, str]], ...] = (
    [{"role": "user", "content": "hi"}],
    [
        {"role": "system", "content": prompts.SYSTEM_PROMPT},
        {"role": "user", "content": "naïve question: is the café edition shipped to Zürich?"},
        {"role": "assistant", "content": "I cannot confirm that from the catalog."},
        {"role": "user", "content": "OK 👍 then hand me to a human, order 98765 is late."},
    ],
)


def probe_texts(tokenizer: Any, system: str) -> list[str]:
    """The probes rendered with the tokenizer's chat template, generation prompt appended."""
    if not isinstance(getattr(tokenizer, "chat_template", None), str):
        raise ConfigError(
            "the tokenizer has no chat template; generation bundles are chat models. Fix: set "
            "tokenizer.chat_template (e.g. ChatML) and save the tokenizer again"
        )
    chats = [prompts.messages(q, e, system=system) for q, e in _GROUNDED] + list(_RAW)
    return [
        tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in chats
    ]


@dataclass(frozen=True)
class GenerationTolerance:
    """How far a generator's artifact may drift: the largest next-token |Δlogit|, the share
    of probes with the same top-1 token, and the teacher-forced greedy agreement."""

    max_abs_logit: float
    min_top1: float
    min_greedy: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class GenerationReference:
    """What torch fp32 does on the probes: ids, next-token logits, greedy continuations."""

    texts: list[str]
    ids: list[list[int]]
    next_logits: np.ndarray  # [P, V]
    greedy: list[list[int]]  # [P, NEW_TOKENS]


def reference(model: Any, tokenizer: Any, texts: Sequence[str]) -> GenerationReference:
    """Run the torch model on each probe: logits after the prompt, then greedy tokens."""
    import torch

    model = model.eval().float().cpu()
    ids = [list(tokenizer(t)["input_ids"]) for t in texts]
    logits, greedy = [], []
    with torch.inference_mode():
        for row in ids:
            out = model(input_ids=torch.tensor([row]), use_cache=True, logits_to_keep=1)
            logits.append(out.logits[0, -1].numpy().copy())
            tokens = [int(out.logits[0, -1].argmax())]
            while len(tokens) < NEW_TOKENS:
                out = model(
                    input_ids=torch.tensor([[tokens[-1]]]),
                    past_key_values=out.past_key_values,
                    use_cache=True,
                )
                tokens.append(int(out.logits[0, -1].argmax()))
            greedy.append(tokens)
    return GenerationReference(list(texts), ids, np.stack(logits), greedy)


@dataclass
class GenerationParity:
    """The evidence recorded in the manifest for one generator artifact."""

    probe_size: int
    tokenizer_agreement: float  # share of probes llama.cpp tokenizes exactly like HF
    max_abs_logit: float
    top1_agreement: float
    greedy_agreement: float  # teacher-forced, over probe_size * new_tokens positions
    greedy_exact: float  # share of probes whose free-running greedy tokens equal torch's
    new_tokens: int
    tokens_per_s: float  # free-running greedy decode, llama.cpp, `threads` threads
    threads: int
    tolerance: GenerationTolerance
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tolerance"] = self.tolerance.to_dict()
        d["passed"] = self.passed
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


def run_llamacpp(path: Path, ref: GenerationReference) -> dict[str, Any]:
    """The worker's view of the probes (see ``llamacpp greedy``)."""
    cases = [
        {"text": t, "ids": i, "continuation": g}
        for t, i, g in zip(ref.texts, ref.ids, ref.greedy, strict=True)
    ]
    proc = run_worker(
        "greedy", str(path), stdin=json.dumps({"cases": cases, "new_tokens": NEW_TOKENS})
    )
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "No such file" not in ln]
        raise ModelError(
            f"llama.cpp rejected {path.name} (exit {proc.returncode}): "
            + (lines[-1][-200:] if lines else "no message")
        )
    return json.loads(proc.stdout)


def check(path: Path, ref: GenerationReference, tolerance: GenerationTolerance) -> GenerationParity:
    """Run the GGUF at ``path`` on the probes and compare it with ``ref``."""
    out = run_llamacpp(path, ref)
    cases = out["cases"]
    same_ids = [c["tokens"] == ids for c, ids in zip(cases, ref.ids, strict=True)]
    ours = np.asarray([c["next_logits"] for c in cases], dtype=np.float32)
    if ours.shape != ref.next_logits.shape:
        raise ModelError(
            f"{path.name} outputs {ours.shape[-1]} logits but the model has "
            f"{ref.next_logits.shape[-1]} vocabulary entries"
        )
    forced = np.asarray([c["argmax"] for c in cases]) == np.asarray(ref.greedy)
    report = GenerationParity(
        probe_size=len(cases),
        tokenizer_agreement=float(np.mean(same_ids)),
        max_abs_logit=float(np.abs(ours - ref.next_logits).max()),
        top1_agreement=float((ours.argmax(1) == ref.next_logits.argmax(1)).mean()),
        greedy_agreement=float(forced.mean()),
        greedy_exact=float(
            np.mean([c["generated"] == g for c, g in zip(cases, ref.greedy, strict=True)])
        ),
        new_tokens=NEW_TOKENS,
        tokens_per_s=round(out["decode_tokens"] / max(out["decode_seconds"], 1e-9), 2),
        threads=int(out["threads"]),
        tolerance=tolerance,
    )
    if not all(same_ids):
        first = same_ids.index(False)
        report.failures.append(
            f"llama.cpp tokenizes {same_ids.count(False)}/{len(cases)} probes differently "
            f"from the HF tokenizer (first: {ref.texts[first][:40]!r})"
        )
    if report.max_abs_logit > tolerance.max_abs_logit:
        report.failures.append(
            f"max |Δlogit| {report.max_abs_logit:.4g} > {tolerance.max_abs_logit:g}"
        )
    if report.top1_agreement < tolerance.min_top1:
        report.failures.append(
            f"top-1 agreement {report.top1_agreement:.2%} < {tolerance.min_top1:.0%}"
        )
    if report.greedy_agreement < tolerance.min_greedy:
        report.failures.append(
            f"greedy agreement {report.greedy_agreement:.2%} < {tolerance.min_greedy:.0%}"
        )
    return report
