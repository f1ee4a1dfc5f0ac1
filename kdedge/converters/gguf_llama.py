"""GGUF artifacts for Llama-family causal LMs (SmolLM2, TinyLlama...), run by llama.cpp.

The file is written with the ``gguf`` library (its writer, key helpers and LLAMA tensor-name
map); Q8_0 / Q4_K_M come from llama.cpp's own quantizer on an F32 file (see
:func:`kdedge.converters.gguf.quantize`). What no library does for us, and is written here:

- query/key rows: HF stores each head's rotary halves as ``[x0..x(d/2-1) | x(d/2)..]``
  (rotate-half RoPE), llama.cpp rotates adjacent pairs ``(x0, x1), (x2, x3)...``; the rows
  of ``q_proj`` / ``k_proj`` are reordered per head so that both compute the same
  attention scores (:func:`permute_qk`; ``k`` uses the KV head count);
- the tokenizer: GPT-2 byte-level BPE written as llama.cpp's ``gpt2`` model, with the
  ``tokenizer.ggml.pre`` name that reproduces the HF pre-tokenizer (:data:`PRE_TOKENIZERS`,
  shared with :func:`kdedge.llm.models.tokenizer_from_gguf` for the opposite direction).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from tokenizers import pre_tokenizers

from kdedge.converters.base import Converted
from kdedge.converters.gguf import quantize, storage_report
from kdedge.converters.parity_llm import GenerationTolerance
from kdedge.errors import ConfigError, ModelError

MODEL_FILE = "model.gguf"
SUPPORTED = ("llama",)
FORMATS = ("gguf-f16", "gguf-q8_0", "gguf-q4_k_m")
# Per precision: next-token |Δlogit|, top-1 agreement (7 probes: 0.85 allows one near-tie
# flip), teacher-forced greedy agreement. On SmolLM2-135M (imported from its Q4_1 GGUF):
# f16 0.044 / 100% / 100%, q8_0 1.13 / 100% / 96%, q4_k_m 3.7 / 57% / 83%; the original
# Q4_1 file on the very same weights 0.70 / 100% / 97% (llama.cpp's quantized matmuls alone);
# f16 with q/k rows left unpermuted 17.1 / 0% / 16%.
TOLERANCES = {
    "f16": GenerationTolerance(max_abs_logit=0.25, min_top1=0.85, min_greedy=0.95),
    "q8_0": GenerationTolerance(max_abs_logit=2.0, min_top1=0.7, min_greedy=0.9),
    "q4_k_m": GenerationTolerance(max_abs_logit=6.0, min_top1=0.5, min_greedy=0.75),
}


def _smollm() -> Any:
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )


# llama.cpp pre-tokenizer name -> the HF pre-tokenizer that splits text the same way
PRE_TOKENIZERS: dict[str, Callable[[], Any]] = {
    "smollm": _smollm,
    "gpt2": lambda: pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
}


def _canonical(spec: Any) -> Any:
    """A pre-tokenizer's JSON without the fields that change offsets, not ids."""
    if isinstance(spec, dict):
        return {k: _canonical(v) for k, v in spec.items() if k != "trim_offsets"}
    if isinstance(spec, list):
        return [_canonical(v) for v in spec]
    return spec


def _describe(spec: dict[str, Any] | None) -> str:
    if not spec:
        return "none"
    if spec.get("type") == "Sequence":
        return "Sequence[" + ", ".join(_describe(s) for s in spec["pretokenizers"]) + "]"
    args = ", ".join(f"{k}={v}" for k, v in spec.items() if k not in ("type", "trim_offsets"))
    return f"{spec['type']}({args})"


def pre_tokenizer_name(spec: dict[str, Any] | None) -> str:
    """The ``tokenizer.ggml.pre`` value matching a tokenizer.json ``pre_tokenizer`` entry."""
    found = _canonical(spec)
    for name, make in PRE_TOKENIZERS.items():
        if _canonical(json.loads(make().__getstate__())) == found:
            return name
    raise ConfigError(
        f"llama.cpp has no pre-tokenizer matching {_describe(spec)}; kdedge writes "
        "'smollm' (Digits + ByteLevel) and 'gpt2' (ByteLevel) byte-level BPE tokenizers"
    )


def check_supported(config: Mapping[str, Any], where: str | Path) -> None:
    """Raise a one-line ConfigError for a model (its config.json) this writer cannot express."""
    kind = config.get("model_type")
    if kind not in SUPPORTED:
        arch = ", ".join(config.get("architectures") or []) or "unknown"
        raise ConfigError(
            f"{where}: GGUF export of generation models supports Llama-family models "
            f"({', '.join(SUPPORTED)}: SmolLM2, TinyLlama...); this one is '{kind}' ({arch})"
        )
    scaling = config.get("rope_scaling")
    if scaling and scaling.get("rope_type", scaling.get("type")) not in (None, "default"):
        raise ConfigError(
            f"{where}: rope_scaling {scaling} is not supported by kdedge's GGUF writer; "
            "export a model with plain RoPE"
        )
    for flag in ("attention_bias", "mlp_bias"):
        if config.get(flag):
            raise ConfigError(f"{where}: {flag}=true is not a plain Llama; GGUF export refuses it")


def permute_qk(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder each head's rows from HF's rotate-half RoPE layout to llama.cpp's pairs."""
    rows, cols = weight.shape
    head_dim = rows // n_head
    split = weight.reshape(n_head, 2, head_dim // 2, cols)
    return split.swapaxes(1, 2).reshape(rows, cols)


def _hf_tokenizer_json(tokenizer: Any) -> dict[str, Any]:
    return json.loads(tokenizer.backend_tokenizer.to_str())


def _added_by_encoding(tokenizer: Any) -> tuple[bool, bool]:
    """(add_bos, add_eos): what the HF tokenizer adds around a plain text."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    add_bos = len(full) > len(plain) and bos is not None and full[0] == bos
    add_eos = len(full) > len(plain) and eos is not None and full[-1] == eos
    if len(full) - len(plain) != int(add_bos) + int(add_eos):
        raise ConfigError(
            f"the tokenizer wraps texts as {full} (plain {plain}); llama.cpp can only add "
            "a BOS and/or EOS token. Fix the tokenizer's post-processor"
        )
    return add_bos, add_eos


def _vocab(writer: gguf.GGUFWriter, tokenizer: Any, n_vocab: int) -> None:
    """Tokens, types, merges, special ids, add_bos/add_eos and the chat template."""
    spec = _hf_tokenizer_json(tokenizer)
    model = spec["model"]
    if model.get("type") != "BPE":
        raise ConfigError(
            f"the tokenizer is {model.get('type')}, not byte-level BPE; kdedge's Llama GGUF "
            "writer handles GPT-2 style BPE tokenizers (SmolLM2's kind)"
        )
    if spec.get("normalizer") not in (None, {"type": "Sequence", "normalizers": []}):
        raise ConfigError(
            f"the tokenizer normalizes text ({spec['normalizer'].get('type')}), which "
            "llama.cpp's gpt2 tokenizer does not; export a tokenizer without a normalizer"
        )
    pre = pre_tokenizer_name(spec.get("pre_tokenizer"))
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    if len(by_id) > n_vocab or max(by_id) >= n_vocab:
        raise ModelError(
            f"the tokenizer has {len(by_id)} tokens but the model only {n_vocab} embedding "
            "rows; the model directory is inconsistent"
        )
    added = {a["id"]: a["special"] for a in spec.get("added_tokens", [])}
    tokens, types = [], []
    for i in range(n_vocab):
        if i not in by_id:  # embedding rows past the tokenizer (padded vocab)
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added[i] else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for kind in ("bos", "eos", "unk", "pad"):
        token_id = getattr(tokenizer, f"{kind}_token_id", None)
        if token_id is not None:
            getattr(writer, f"add_{kind}_token_id")(token_id)
    add_bos, add_eos = _added_by_encoding(tokenizer)
    writer.add_add_bos_token(add_bos)
    writer.add_add_eos_token(add_eos)
    if isinstance(tokenizer.chat_template, str):
        writer.add_chat_template(tokenizer.chat_template)


def write_gguf(model: Any, tokenizer: Any, path: Path, *, f16: bool, name: str) -> Path:
    """Write a Llama-family causal LM as GGUF: matrices F16 (or F32), vectors F32."""
    cfg = model.config
    check_supported(cfg.to_dict(), name)
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_head
    n_vocab = model.get_input_embeddings().weight.shape[0]
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_name(name)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    if head_dim * n_head != cfg.hidden_size:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(cfg.rope_theta))
    writer.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)
    _vocab(writer, tokenizer, n_vocab)
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    for hf_name, tensor in model.state_dict().items():
        if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue
        target = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise ModelError(f"{name}: no GGUF name for tensor '{hf_name}'; not a plain Llama")
        array = tensor.detach().float().cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            array = permute_qk(array, n_head)
        elif hf_name.endswith("k_proj.weight"):
            array = permute_qk(array, n_kv)
        if f16 and array.ndim == 2:
            array = array.astype(np.float16)
        writer.add_tensor(target, array)
    gguf_log = logging.getLogger("gguf")
    level = gguf_log.level
    gguf_log.setLevel(logging.ERROR)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
        gguf_log.setLevel(level)
    return path


@dataclass(frozen=True)
class LlamaGguf:
    """One GGUF precision of a generator; names and llama.cpp types come from the registry's
    classifier converter of the same format, so ``gguf-q8_0`` means the same file type."""

    name: str
    precision: str
    ftype: str
    main_types: tuple[str, ...]
    tolerance: GenerationTolerance
    format: str = "gguf"
    backend: str = "llamacpp"
    target_hints: tuple[str, ...] = ("cpu", "apple-m", "lambda")

    def convert(
        self, model: Any, tokenizer: Any, out_dir: Path, scratch: Path, name: str
    ) -> Converted:
        path = out_dir / MODEL_FILE
        if self.ftype == "F16":
            write_gguf(model, tokenizer, path, f16=True, name=name)
        else:
            source = scratch / "model-f32.gguf"
            if not source.is_file():
                scratch.mkdir(parents=True, exist_ok=True)
                write_gguf(model, tokenizer, source, f16=False, name=name)
            quantize(source, path, self.ftype)
        details, warnings = storage_report(path, self.ftype, self.main_types)
        details["architecture"] = "llama"
        return Converted([path], details, warnings)


def generator_converter(name: str) -> LlamaGguf:
    """The generator variant of registry format ``name`` (its dependencies checked)."""
    from kdedge.converters.registry import load_converter

    if name not in FORMATS:
        raise ConfigError(
            f"'{name}' cannot export a generation model; generation models export to "
            + " / ".join(FORMATS)
        )
    base: Any = load_converter(name)
    return LlamaGguf(
        name=base.name,
        precision=base.precision,
        ftype=base.ftype,
        main_types=tuple(base.main_types),
        tolerance=TOLERANCES[base.precision],
    )
