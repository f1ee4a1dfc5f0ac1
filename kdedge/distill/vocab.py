"""Vocabulary trimming: keep only the embedding rows a domain's text uses.

A student distilled for one domain sees a small part of its teacher's vocabulary, yet the
word-embedding matrix is often half of its parameters (all-MiniLM-L6-v2: 30,522 WordPiece
tokens x 384 = 11.7M of 22.7M). :func:`trim_vocabulary` keeps the special tokens, every
token the given texts produce, and (by default) every single-character token with its
``##x`` continuation, so unseen words still split into characters rather than ``[UNK]``.

WordPiece matches greedily, longest first, over a vocabulary; a subset that still holds
every piece the greedy search picked for a text makes it pick the same pieces again. The
trimmed tokenizer therefore maps each kept text to the same token sequence (renumbered), and
the trimmed model gives identical outputs on it. Only WordPiece (BERT-family) tokenizers
are supported.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from kdedge.distill.inference import encode
from kdedge.distill.models import Classifier
from kdedge.errors import ConfigError, ModelError

# Config fields that hold token ids and must follow the renumbering.
_CONFIG_TOKEN_IDS = ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id")
# Tokenizer settings carried over to the rebuilt transformers tokenizer.
_TOKENIZER_SETTINGS = (
    "do_lower_case",
    "strip_accents",
    "tokenize_chinese_chars",
    "clean_up_tokenization_spaces",
    "padding_side",
    "truncation_side",
    "model_input_names",
)


@dataclass(frozen=True)
class VocabReport:
    """What trimming kept. ``from_*`` are disjoint and add up to ``kept_size``.

    ``unk_rate_*`` is the fraction of the texts' tokens (special tokens aside) that are
    ``[UNK]``, before and after trimming.
    """

    original_size: int
    kept_size: int
    from_texts: int
    from_specials: int
    from_chars: int
    embedding_params_before: int
    embedding_params_after: int
    unk_rate_before: float
    unk_rate_after: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trim_vocabulary(
    clf: Classifier,
    texts: Sequence[str],
    *,
    keep_min_count: int = 1,
    keep_single_chars: bool = True,
) -> tuple[Classifier, VocabReport]:
    """Return a copy of ``clf`` whose vocabulary and word embeddings keep only:

    - the special and added tokens;
    - every token that tokenizing ``texts`` (``clf.max_length``, truncated) produces at least
      ``keep_min_count`` times;
    - with ``keep_single_chars``, every single-character token and its ``##x`` form.

    Kept tokens keep their relative order. ``clf`` itself is not modified. With
    ``keep_min_count=1`` the texts tokenize to the same sequences as before (renumbered), so
    the outputs on them are identical; a higher count drops rare tokens, and texts that used
    them tokenize differently.
    """
    if keep_min_count < 1:
        raise ConfigError(f"keep_min_count must be at least 1, got {keep_min_count}")
    tok = clf.tokenizer
    state = _wordpiece_state(tok)
    _check_untied(clf.model)
    embeddings = clf.model.get_input_embeddings()
    if not isinstance(embeddings, nn.Embedding):
        raise ModelError(
            f"{type(clf.model).__name__}'s input embeddings are a {type(embeddings).__name__}, "
            "not an nn.Embedding; vocabulary trimming cannot resize them"
        )
    texts = list(texts)
    vocab: dict[str, int] = tok.get_vocab()
    id_to_token = {i: t for t, i in vocab.items()}
    n_rows = embeddings.num_embeddings
    if any(i >= n_rows for i in id_to_token):
        raise ModelError(
            f"the tokenizer has ids up to {max(id_to_token)} but the model has only {n_rows} "
            "embedding rows; tokenizer and model do not belong together"
        )

    # 1. special and added tokens (and token ids the config refers to)
    specials = set(tok.all_special_ids)
    specials.update(a["id"] for a in state["added_tokens"])
    specials.update(_post_processor_ids(state.get("post_processor")))
    for key in _CONFIG_TOKEN_IDS:
        value = getattr(clf.model.config, key, None)
        if isinstance(value, int) and value in id_to_token:
            specials.add(value)

    # 2. tokens the texts use
    ids = encode(tok, texts, clf.max_length) if texts else []
    counts = Counter(i for row in ids for i in row)
    used = {i for i, c in counts.items() if c >= keep_min_count}
    if keep_min_count == 1:
        # Words that end in [UNK] emit none of their pieces, but the greedy search walked
        # through them; keeping those pieces makes it fail at the same place again.
        unk_rows = [t for t, row in zip(texts, ids, strict=True) if tok.unk_token_id in row]
        used.update(vocab[p] for p in _partial_pieces(tok, unk_rows, state["model"]))
    from_texts = used - specials

    # 3. single characters, so unseen words split into characters instead of [UNK]
    chars: set[int] = set()
    if keep_single_chars:
        prefix = state["model"].get("continuing_subword_prefix") or "##"
        chars = {
            i
            for t, i in vocab.items()
            if len(t) == 1 or (t.startswith(prefix) and len(t) == len(prefix) + 1)
        }
    from_chars = chars - specials - used

    kept = sorted(specials | used | chars)
    remap = {old: new for new, old in enumerate(kept)}
    new_tok = _rebuild_tokenizer(tok, state, remap, id_to_token)

    model = copy.deepcopy(clf.model)
    config = model.config
    pad = getattr(config, "pad_token_id", None)
    new_pad = remap.get(pad) if isinstance(pad, int) else None
    old_weight = embeddings.weight.detach()
    new_emb = nn.Embedding(
        len(kept),
        embeddings.embedding_dim,
        padding_idx=new_pad if embeddings.padding_idx is not None else None,
        device=old_weight.device,
        dtype=old_weight.dtype,
    )
    with torch.no_grad():
        new_emb.weight.copy_(old_weight[kept])
    model.set_input_embeddings(new_emb)
    config.vocab_size = len(kept)
    for key in _CONFIG_TOKEN_IDS:
        value = getattr(config, key, None)
        if isinstance(value, int):
            setattr(config, key, remap.get(value))

    new_ids = encode(new_tok, texts, clf.max_length) if texts else []
    if keep_min_count == 1:
        expected = [[remap[i] for i in row] for row in ids]
        if new_ids != expected:
            bad = next(t for t, a, b in zip(texts, new_ids, expected, strict=True) if a != b)
            raise ModelError(
                f"vocabulary trimming changed the tokenization of {bad!r}; this is a bug, "
                "please report it (and run without --trim-vocab meanwhile)"
            )
    report = VocabReport(
        original_size=len(vocab),
        kept_size=len(kept),
        from_texts=len(from_texts),
        from_specials=len(specials),
        from_chars=len(from_chars),
        embedding_params_before=embeddings.weight.numel(),
        embedding_params_after=new_emb.weight.numel(),
        unk_rate_before=unk_rate(ids, tok),
        unk_rate_after=unk_rate(new_ids, new_tok),
    )
    meta = {**copy.deepcopy(clf.meta), "vocab_trim": report.to_dict()}
    return Classifier(model, new_tok, clf.labels, meta, None), report


def unk_rate(ids: Sequence[Sequence[int]], tokenizer: Any) -> float:
    """Fraction of [UNK] among the tokens that are not special tokens ([CLS], [SEP], ...)."""
    unk = tokenizer.unk_token_id
    other_specials = set(tokenizer.all_special_ids) - {unk}
    total = n_unk = 0
    for row in ids:
        for i in row:
            if i == unk:
                n_unk += 1
                total += 1
            elif i not in other_specials:
                total += 1
    return n_unk / total if total else 0.0


def _wordpiece_state(tok: Any) -> dict[str, Any]:
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise ConfigError(
            f"vocabulary trimming needs a fast (tokenizers-backed) tokenizer; "
            f"{type(tok).__name__} is a slow one. Run without --trim-vocab"
        )
    state = json.loads(backend.to_str())
    kind = state.get("model", {}).get("type")
    if kind != "WordPiece":
        raise ConfigError(
            f"vocabulary trimming currently supports WordPiece (BERT-family) tokenizers; this "
            f"model's tokenizer is {kind or 'unknown'}. Run without --trim-vocab"
        )
    return state


def _check_untied(model: Any) -> None:
    get_out = getattr(model, "get_output_embeddings", None)
    out = get_out() if get_out is not None else None
    if out is not None:
        tied = out.weight is model.get_input_embeddings().weight
        raise ConfigError(
            f"{type(model).__name__} has an output layer over the vocabulary"
            + (" tied to its input embeddings" if tied else "")
            + "; vocabulary trimming supports encoders with a classification head only. "
            "Run without --trim-vocab"
        )


def _post_processor_ids(proc: dict[str, Any] | None) -> set[int]:
    ids: set[int] = set()
    if not proc:
        return ids
    kind = proc.get("type")
    if kind == "TemplateProcessing":
        for spec in proc.get("special_tokens", {}).values():
            ids.update(spec["ids"])
    elif kind in ("BertProcessing", "RobertaProcessing"):
        ids.update(proc[k][1] for k in ("cls", "sep"))
    elif kind == "Sequence":
        for sub in proc.get("processors", []):
            ids |= _post_processor_ids(sub)
    return ids


def _remap_post_processor(proc: dict[str, Any] | None, remap: dict[int, int]) -> None:
    if not proc:
        return
    kind = proc.get("type")
    if kind == "TemplateProcessing":
        for spec in proc.get("special_tokens", {}).values():
            spec["ids"] = [remap[i] for i in spec["ids"]]
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for key in ("cls", "sep"):
            token, old = proc[key]
            proc[key] = [token, remap[old]]
    elif kind == "Sequence":
        for sub in proc.get("processors", []):
            _remap_post_processor(sub, remap)


def _partial_pieces(tok: Any, texts: Iterable[str], model: dict[str, Any]) -> set[str]:
    """The pieces greedy WordPiece matches in each word of ``texts``, also for words that
    end up as [UNK] because some later piece is missing."""
    backend = tok.backend_tokenizer
    vocab: dict[str, int] = model["vocab"]
    prefix = model.get("continuing_subword_prefix") or "##"
    max_chars = int(model.get("max_input_chars_per_word") or 100)
    pieces: set[str] = set()
    for text in texts:
        normalized = backend.normalizer.normalize_str(text) if backend.normalizer else text
        words = (
            backend.pre_tokenizer.pre_tokenize_str(normalized)
            if backend.pre_tokenizer
            else [(w, None) for w in normalized.split()]
        )
        for word, _ in words:
            if len(word) > max_chars:
                continue
            start = 0
            while start < len(word):
                end, match = len(word), None
                while start < end:
                    piece = word[start:end] if start == 0 else prefix + word[start:end]
                    if piece in vocab:
                        match = piece
                        break
                    end -= 1
                if match is None:
                    break
                pieces.add(match)
                start = end
    return pieces


def _rebuild_tokenizer(
    tok: Any, state: dict[str, Any], remap: dict[int, int], id_to_token: dict[int, str]
) -> Any:
    from tokenizers import Tokenizer

    state = copy.deepcopy(state)
    model_vocab = state["model"]["vocab"]
    state["model"]["vocab"] = {
        id_to_token[old]: new for old, new in remap.items() if id_to_token[old] in model_vocab
    }
    for added in state["added_tokens"]:
        added["id"] = remap[added["id"]]
    _remap_post_processor(state.get("post_processor"), remap)
    padding = state.get("padding")
    if padding and padding.get("pad_id") is not None:
        pad_token = padding.get("pad_token")
        pad_old = tok.get_vocab().get(pad_token, padding["pad_id"])
        padding["pad_id"] = remap[pad_old]
    backend = Tokenizer.from_str(json.dumps(state))
    kwargs = {k: tok.init_kwargs[k] for k in _TOKENIZER_SETTINGS if k in tok.init_kwargs}
    kwargs.update(tok.special_tokens_map)
    new = type(tok)(tokenizer_object=backend, model_max_length=tok.model_max_length, **kwargs)
    new.name_or_path = tok.name_or_path
    return new
