"""GGUF artifacts for BERT-family classifiers, run by llama.cpp with RANK pooling.

The file is written with the ``gguf`` library (its writer, key names and BERT tensor-name
map); quantized variants come from llama.cpp's own ``llama_model_quantize``, run in a
subprocess because llama.cpp aborts the process on a file it rejects.

The classifier head is where conversions go wrong: the tensor-name map sends HF's
``classifier`` to the *pooler* slot (``cls``) and has no entry for ``bert.pooler.dense``,
so a naive conversion silently drops the pooler. llama.cpp's RANK pooling computes
``cls.output(tanh(cls(h_CLS)))``, which is BERT's pooler followed by its classifier; the
head is therefore mapped explicitly here and checked before writing.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections import Counter
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from kdedge.converters.base import Converted, ConvertInput, Tolerance
from kdedge.distill.models import Classifier
from kdedge.errors import ConfigError, ModelError
from kdedge.runtimes.backends.llamacpp import run_worker

MODEL_FILE = "model.gguf"
SUPPORTED = ("bert",)
# HF head tensors -> GGUF names (RANK pooling: cls = pooler dense, cls.output = classifier)
HEAD = {
    "pooler.dense.weight": "cls.weight",
    "pooler.dense.bias": "cls.bias",
    "classifier.weight": "cls.output.weight",
    "classifier.bias": "cls.output.bias",
}
SKIP = ("embeddings.position_ids",)
# llama.cpp adds the token-type row to F32 activations with a plain add, which has no F16
# kernel: the file loads, then aborts on the first batch. Keep it F32.
KEEP_F32 = ("embeddings.token_type_embeddings.weight",)


def _state(clf: Classifier) -> dict[str, np.ndarray]:
    model = clf.model
    if model.config.model_type not in SUPPORTED:
        raise ConfigError(
            f"GGUF export supports {', '.join(SUPPORTED)} classifiers; "
            f"{clf.path} is '{model.config.model_type}'. Use onnx or openvino for it"
        )
    state = {}
    for name, tensor in model.state_dict().items():
        short = name.removeprefix("bert.")
        if short not in SKIP:
            state[short] = tensor.detach().float().cpu().numpy()
    missing = [k for k in HEAD if k not in state]
    if missing:
        raise ModelError(
            f"{clf.path}: the classifier head is incomplete (missing {', '.join(missing)}); "
            "llama.cpp's RANK pooling needs BERT's pooler and classifier"
        )
    return state


def _vocab(writer: gguf.GGUFWriter, clf: Classifier, model_dir: Path) -> None:
    """WordPiece vocabulary in llama.cpp's spelling: a word-initial piece gains U+2581 (the
    phantom space llama.cpp's tokenizer expects), a ``##`` continuation loses its marks,
    special tokens stay as they are."""
    tok = clf.tokenizer
    by_id = {i: t for t, i in tok.get_vocab().items()}
    special = set(tok.all_special_tokens)
    tokens, types = [], []
    for i in range(len(by_id)):
        token = by_id.get(i, f"[unused{i}]")
        if token in special:
            tokens.append(token)
            unknown = token == tok.unk_token
            types.append(gguf.TokenType.UNKNOWN if unknown else gguf.TokenType.CONTROL)
        else:
            tokens.append(token[2:] if token.startswith("##") else "\u2581" + token)
            types.append(gguf.TokenType.NORMAL)
    writer.add_token_type_count(clf.model.config.type_vocab_size)
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf_log = logging.getLogger("gguf")
    level = gguf_log.level
    gguf_log.setLevel(logging.ERROR)  # it notes that GGUF has no key for [CLS]: expected
    try:
        gguf.SpecialVocab(model_dir, load_merges=False, n_vocab=len(tokens)).add_to_gguf(writer)
    finally:
        gguf_log.setLevel(level)


def write_gguf(inp: ConvertInput, path: Path, *, f16: bool) -> Path:
    """Write the classifier as GGUF: matrices in F16 (or F32), vectors in F32."""
    clf = inp.classifier
    cfg = clf.model.config
    state = _state(clf)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, cfg.num_hidden_layers)
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    writer.add_name(Path(str(clf.path or "kdedge-student")).name)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_layer_norm_eps(cfg.layer_norm_eps)
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.RANK)
    writer.add_classifier_output_labels(list(clf.labels.names))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)
    with _tokenizer_dir(clf) as model_dir:
        _vocab(writer, clf, model_dir)
    for name, array in state.items():
        target = HEAD.get(name) or names.get_name(name, try_suffixes=(".weight", ".bias"))
        if target is None or (name not in HEAD and target.startswith("cls")):
            raise ModelError(f"{clf.path}: no GGUF name for tensor '{name}'; not a plain BERT")
        if f16 and array.ndim == 2 and name not in KEEP_F32:
            array = array.astype(np.float16)
        writer.add_tensor(target, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@contextlib.contextmanager
def _tokenizer_dir(clf: Classifier) -> Iterator[Path]:
    """A folder with the tokenizer files gguf.SpecialVocab reads: the model directory, or a
    temp copy when the classifier lives only in memory."""
    if clf.path is not None and (Path(clf.path) / "tokenizer_config.json").is_file():
        yield Path(clf.path)
        return
    with tempfile.TemporaryDirectory(prefix="kdedge-tok-") as tmp:
        clf.tokenizer.save_pretrained(tmp)
        yield Path(tmp)


def tensor_types(path: Path) -> dict[str, str]:
    """Tensor name -> GGML type name, read back from the file."""
    reader = gguf.GGUFReader(str(path))
    return {t.name: t.tensor_type.name for t in reader.tensors}


def quantize(source: Path, target: Path, ftype: str) -> None:
    """Run llama.cpp's quantizer in a subprocess (it aborts on inputs it rejects)."""
    proc = run_worker("quantize", str(source), str(target), ftype)
    if proc.returncode != 0 or not target.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ModelError(
            f"llama.cpp could not quantize {source.name} to {ftype} "
            f"(exit {proc.returncode}): {' | '.join(tail)}"
        )


def storage_report(
    path: Path, ftype: str, main_types: tuple[str, ...]
) -> tuple[dict[str, Any], list[str]]:
    """How a written GGUF stores its tensors (for the artifact's details), and a warning
    when llama.cpp kept matrices in another type than the one asked for."""
    types = tensor_types(path)
    fallbacks = _fallbacks(types, main_types)
    warnings = []
    if fallbacks:
        kinds = Counter(fallbacks.values())
        warnings.append(
            f"{len(fallbacks)} matrices stored as "
            + ", ".join(f"{k} ({n})" for k, n in kinds.items())
            + f" instead of {'/'.join(main_types)} (llama.cpp's choice for shapes "
            "or sensitive tensors)"
        )
    details = {
        "writer": f"gguf {version('gguf')}",
        "quantizer": None if ftype == "F16" else "llama_model_quantize",
        "tensor_types": dict(Counter(types.values())),
        "fallbacks": fallbacks,
    }
    return details, warnings


def _fallbacks(types: dict[str, str], wanted: tuple[str, ...]) -> dict[str, str]:
    """Matrices llama.cpp stored in another type than the requested one."""
    return {
        name: kind
        for name, kind in types.items()
        if name.endswith(".weight") and kind not in (*wanted, "F32") and "norm" not in name
    }


class _Gguf:
    format, backend = "gguf", "llamacpp"
    needs_calibration = False
    target_hints: tuple[str, ...] = ("cpu", "apple-m", "lambda")
    ftype = "F16"  # llama.cpp file type name; F16 is written directly
    main_types: tuple[str, ...] = ("F16",)

    def convert(self, inp: ConvertInput, out_dir: Path) -> Converted:
        path = out_dir / MODEL_FILE
        if self.ftype == "F16":
            write_gguf(inp, path, f16=True)
        else:
            source = inp.scratch("gguf-f32") / "model-f32.gguf"
            if not source.is_file():
                write_gguf(inp, source, f16=False)
            quantize(source, path, self.ftype)
        details, warnings = storage_report(path, self.ftype, self.main_types)
        return Converted([path], {**details, "pooling": "rank"}, warnings)


class GgufF16(_Gguf):
    name, precision = "gguf-f16", "f16"
    tolerance = Tolerance(max_abs_logit=0.05, min_agreement=0.99, max_accuracy_drop=0.2)


class GgufQ8_0(_Gguf):
    name, precision, ftype, main_types = "gguf-q8_0", "q8_0", "Q8_0", ("Q8_0",)
    tolerance = Tolerance(max_abs_logit=0.5, min_agreement=0.97, max_accuracy_drop=0.5)


class GgufQ4KM(_Gguf):
    name, precision, ftype, main_types = "gguf-q4_k_m", "q4_k_m", "Q4_K_M", ("Q4_K", "Q6_K")
    tolerance = Tolerance(max_abs_logit=3.0, min_agreement=0.85, max_accuracy_drop=3.0)
