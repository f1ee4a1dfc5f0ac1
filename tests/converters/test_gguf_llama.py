"""Causal LMs to GGUF: the tiny Llama exported to every precision, checked against torch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from kdedge.converters import gguf_llama
from kdedge.converters.export import export_bundle
from kdedge.errors import ConfigError
from kdedge.llm import prompts
from tests.llm.tiny import build_tiny_llama

FORMATS = ("gguf-f16", "gguf-q8_0", "gguf-q4_k_m")


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llm") / "model")


@pytest.fixture(scope="module")
def exported(tiny_llm, tmp_path_factory):
    out = tmp_path_factory.mktemp("llm-export") / "bundle"
    return export_bundle(tiny_llm, FORMATS, out), out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_every_precision_passes_parity(exported):
    report, bundle = exported
    assert report.task == "generate" and report.out_dir == bundle
    assert [r.name for r in report.results] == list(FORMATS)
    for r in report.results:
        assert r.status == "passed" and r.shipped, f"{r.name}: {r.reason}"
        p = r.parity
        assert p.probe_size >= 5 and p.tokenizer_agreement == 1.0
        assert p.max_abs_logit <= p.tolerance.max_abs_logit
        assert p.greedy_agreement >= p.tolerance.min_greedy and p.tokens_per_s > 0
    f16 = report.results[0].parity
    assert f16.max_abs_logit < 0.01 and f16.greedy_exact == 1.0
    details = {r.name: r.details for r in report.results}
    assert details["gguf-q8_0"]["tensor_types"].get("Q8_0", 0) > 0
    # hidden size 64 is not a multiple of 256: Q4_K_M falls back and says so
    q4 = report.results[2]
    assert q4.details["fallbacks"] and any("instead of" in w for w in q4.warnings)
    sizes = {r.name: r.size_bytes for r in report.results}
    assert sizes["gguf-q8_0"] < sizes["gguf-f16"]


def test_manifest_describes_a_generation_bundle(exported, tiny_llm):
    from kdedge.runtimes.bundle import Manifest, load_bundle

    _, bundle = exported
    manifest = load_bundle(bundle)
    assert manifest.task == "generate" and manifest.labels == ()
    assert manifest.max_length == 512 == manifest.generation["context_length"]
    gen = manifest.generation
    assert gen["system_prompt"] == prompts.SYSTEM_PROMPT
    assert gen["user_template"] == prompts.USER_TEMPLATE
    assert gen["chat_template"] == (tiny_llm / "chat_template.jinja").read_text()
    assert gen["stop"] == ["<|im_end|>"] and gen["eos_token"] == "<|im_end|>"
    assert gen["max_new_tokens"] == 256
    assert [a.name for a in manifest.artifacts] == list(FORMATS)
    assert all(a.parity["passed"] and a.backend == "llamacpp" for a in manifest.artifacts)
    assert Manifest.from_dict(manifest.to_dict()) == manifest
    assert manifest.provenance["source_sha256"]
    # the bundle tokenizer is the model's own
    from tokenizers import Tokenizer

    ours = Tokenizer.from_file(str(bundle / manifest.tokenizer.path))
    text = "<|im_start|>user\nVolume 12 costs $9.99?<|im_end|>\n"
    from transformers import AutoTokenizer

    assert ours.encode(text).ids == AutoTokenizer.from_pretrained(tiny_llm)(text)["input_ids"]


def test_gguf_metadata_and_tokenizer(exported):
    _, bundle = exported
    reader = gguf.GGUFReader(str(bundle / "gguf-f16" / "model.gguf"))

    def field(key):
        return reader.fields[key].contents()

    assert field("general.architecture") == "llama"
    assert field("llama.attention.head_count") == 4 and field("llama.attention.head_count_kv") == 2
    assert field("llama.rope.dimension_count") == 16 and field("llama.vocab_size") == 400
    assert field("llama.rope.freq_base") == 10000.0 and field("llama.context_length") == 512
    assert field("tokenizer.ggml.model") == "gpt2" and field("tokenizer.ggml.pre") == "smollm"
    assert field("tokenizer.ggml.bos_token_id") == 1 and field("tokenizer.ggml.eos_token_id") == 2
    assert field("tokenizer.ggml.add_bos_token") is False
    types = field("tokenizer.ggml.token_type")
    assert types[:3] == [gguf.TokenType.CONTROL] * 3 and set(types[3:]) == {gguf.TokenType.NORMAL}
    assert "<|im_start|>" in field("tokenizer.chat_template")
    names = {t.name for t in reader.tensors}
    assert "token_embd.weight" in names and "output.weight" not in names  # tied embeddings


def test_f16_greedy_text_equals_torch(exported, tiny_llm):
    """Free-running greedy decoding by llama.cpp and by transformers' generate give one text."""
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    from kdedge.runtimes.backends.llamacpp import greedy_cases

    _, bundle = exported
    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    model = AutoModelForCausalLM.from_pretrained(tiny_llm).eval()
    for question in ("Is One Piece vol. 107 in stock?", "Où est ma commande 4521 ?"):
        text = (
            f"<|im_start|>system\n{prompts.SYSTEM_PROMPT}<|im_end|>\n"
            f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
        )
        ids = tok.encode(text).ids
        with torch.inference_mode():
            out = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                do_sample=False,
                max_new_tokens=24,
                pad_token_id=2,
            )
        torch_ids = out[0, len(ids) :].tolist()
        case = {"text": text, "ids": ids, "continuation": torch_ids}
        got = greedy_cases(bundle / "gguf-f16" / "model.gguf", [case], 24)["cases"][0]
        llama_ids = got["generated"][: len(torch_ids)]  # generate stops at EOS, the worker not
        assert got["tokens"] == ids
        assert tok.decode(llama_ids) == tok.decode(torch_ids)
        assert llama_ids == torch_ids


def _rope_pairs(x: torch.Tensor, base: float) -> torch.Tensor:
    """llama.cpp's RoPE from its definition: rotate (x0, x1), (x2, x3)... by pos * theta_i."""
    seq, dim = x.shape[-2], x.shape[-1]
    theta = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angle = torch.arange(seq, dtype=torch.float64)[:, None] * theta[None, :]
    cos, sin = angle.cos(), angle.sin()
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def test_qk_permutation_turns_rotate_half_into_pairs():
    """Attention scores with HF's RoPE on HF rows equal llama.cpp's RoPE on permuted rows,
    and differ without the permutation."""
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    n_head, n_kv, head_dim, hidden, seq, base = 4, 2, 16, 64, 12, 10000.0
    gen = torch.Generator().manual_seed(0)
    wq = torch.randn(n_head * head_dim, hidden, generator=gen, dtype=torch.float64)
    wk = torch.randn(n_kv * head_dim, hidden, generator=gen, dtype=torch.float64)
    x = torch.randn(seq, hidden, generator=gen, dtype=torch.float64)
    config = LlamaConfig(
        hidden_size=hidden, num_attention_heads=n_head, num_key_value_heads=n_kv, rope_theta=base
    )
    cos, sin = LlamaRotaryEmbedding(config)(x[None], torch.arange(seq)[None])
    q = (x @ wq.T).view(seq, n_head, head_dim).transpose(0, 1)[None]
    k = (x @ wk.T).view(seq, n_kv, head_dim).transpose(0, 1)[None]
    q_hf, k_hf = apply_rotary_pos_emb(q, k, cos.double(), sin.double())
    group = n_head // n_kv
    hf_scores = q_hf[0] @ k_hf[0].repeat_interleave(group, 0).transpose(1, 2)

    def pair_scores(wq_rows: np.ndarray, wk_rows: np.ndarray) -> torch.Tensor:
        qs = (x @ torch.from_numpy(wq_rows).T).view(seq, n_head, head_dim).transpose(0, 1)
        ks = (x @ torch.from_numpy(wk_rows).T).view(seq, n_kv, head_dim).transpose(0, 1)
        qs, ks = _rope_pairs(qs, base), _rope_pairs(ks, base)
        return qs @ ks.repeat_interleave(group, 0).transpose(1, 2)

    permuted = pair_scores(
        gguf_llama.permute_qk(wq.numpy(), n_head), gguf_llama.permute_qk(wk.numpy(), n_kv)
    )
    # HF computes cos/sin in float32: agreement to its precision, on scores of ~100s
    assert (permuted - hf_scores).abs().max() < 1e-3
    assert (pair_scores(wq.numpy(), wk.numpy()) - hf_scores).abs().max() > 10


def test_export_without_permutation_fails_parity(tiny_llm, tmp_path, monkeypatch):
    """End to end: the f16 parity gate catches q/k rows left in HF's layout. The random
    model's attention is nearly uniform, so q/k are scaled up until RoPE matters."""
    from transformers import AutoModelForCausalLM

    sharp = _copy(tiny_llm, tmp_path / "sharp")
    model = AutoModelForCausalLM.from_pretrained(sharp)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(12)
            layer.self_attn.k_proj.weight.mul_(12)
        model.model.embed_tokens.weight.mul_(10)
    model.save_pretrained(sharp)

    good = export_bundle(sharp, ["gguf-f16"], tmp_path / "good").results[0]
    assert good.status == "passed", good.reason
    monkeypatch.setattr(gguf_llama, "permute_qk", lambda weight, n_head: weight)
    report = export_bundle(sharp, ["gguf-f16"], tmp_path / "bad")
    bad = report.results[0]
    assert bad.status == "failed" and not bad.shipped
    assert "|Δlogit|" in bad.reason and bad.parity.max_abs_logit > 10 * good.parity.max_abs_logit
    assert report.out_dir is None and not (tmp_path / "bad").exists()


def test_student_meta_added_tokens_and_provenance(tiny_llm, tmp_path):
    """A customised student: its prompt from kdedge.json, a non-special added token written
    as USER_DEFINED (and tokenized alike by llama.cpp), its source in the provenance."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    student = _copy(tiny_llm, tmp_path / "student")
    tokenizer = AutoTokenizer.from_pretrained(student)
    tokenizer.add_tokens(["MangaAssist"])
    model = AutoModelForCausalLM.from_pretrained(student)
    model.resize_token_embeddings(len(tokenizer))
    model.save_pretrained(student)
    tokenizer.save_pretrained(student)
    system = "You are MangaAssist. Answer from the catalog evidence only."
    meta = {
        "role": "student",
        "source": {"gguf": "/models/base.gguf", "sha256": "ab" * 32},
        "prompt": {"system": system, "user_template": "Q: {question}\nE: {evidence}"},
    }
    (student / "kdedge.json").write_text(json.dumps(meta))

    report = export_bundle(student, ["gguf-f16"], tmp_path / "bundle")
    result = report.results[0]
    assert result.status == "passed", result.reason
    assert result.parity.tokenizer_agreement == 1.0
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["generation"]["system_prompt"] == system
    assert manifest["generation"]["user_template"] == "Q: {question}\nE: {evidence}"
    assert manifest["provenance"]["role"] == "student"
    assert manifest["provenance"]["source"] == meta["source"]
    reader = gguf.GGUFReader(str(tmp_path / "bundle" / "gguf-f16" / "model.gguf"))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    assert types[tokens.index("MangaAssist")] == gguf.TokenType.USER_DEFINED
    # and back: the rebuilt tokenizer keeps it an ordinary added token
    from kdedge.llm.models import tokenizer_from_gguf

    rebuilt = tokenizer_from_gguf(tmp_path / "bundle" / "gguf-f16" / "model.gguf")
    text = "Hi MangaAssist, 12 volumes?"
    assert rebuilt(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert "MangaAssist" in rebuilt.get_vocab() and "MangaAssist" not in rebuilt.all_special_tokens


def test_generation_models_export_only_to_gguf(tiny_llm, tmp_path):
    with pytest.raises(ConfigError, match="gguf-f16 / gguf-q8_0 / gguf-q4_k_m"):
        export_bundle(tiny_llm, ["gguf-q8_0", "onnx"], tmp_path / "b")
    with pytest.raises(ConfigError, match="--eval-data apply to classifiers"):
        export_bundle(tiny_llm, ["gguf-q8_0"], tmp_path / "b", eval_data=tmp_path / "x.jsonl")
    assert not (tmp_path / "b").exists()


def test_unsupported_architecture_is_one_line(tiny_llm, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = tmp_path / "gpt2"
    GPT2LMHeadModel(
        GPT2Config(vocab_size=400, n_positions=64, n_embd=32, n_layer=1, n_head=2)
    ).save_pretrained(gpt2)
    with pytest.raises(ConfigError, match=r"this one is 'gpt2' \(GPT2LMHeadModel\)") as err:
        export_bundle(gpt2, ["gguf-f16"], tmp_path / "b")
    assert "\n" not in str(err.value)
    config = {"model_type": "llama", "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}
    with pytest.raises(ConfigError, match="rope_scaling"):
        gguf_llama.check_supported(config, "m")
    with pytest.raises(ConfigError, match="attention_bias"):
        gguf_llama.check_supported({"model_type": "llama", "attention_bias": True}, "m")


def test_pre_tokenizer_names():
    from tokenizers import pre_tokenizers

    def spec(pre):
        return json.loads(pre.__getstate__())

    smollm = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(False)]
    )
    assert gguf_llama.pre_tokenizer_name(spec(smollm)) == "smollm"
    assert gguf_llama.pre_tokenizer_name(spec(pre_tokenizers.ByteLevel(False))) == "gpt2"
    with pytest.raises(ConfigError, match=r"Metaspace\(.*\); kdedge writes 'smollm'"):
        gguf_llama.pre_tokenizer_name(spec(pre_tokenizers.Metaspace()))
    with pytest.raises(ConfigError, match="add_prefix_space=True"):
        gguf_llama.pre_tokenizer_name(spec(pre_tokenizers.ByteLevel(add_prefix_space=True)))


def test_cli_export_json(tiny_llm, tmp_path):
    from kdedge.cli import cli

    out = tmp_path / "cli-bundle"
    result = CliRunner().invoke(
        cli, ["export", str(tiny_llm), "-f", "gguf-q8_0", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["task"] == "generate" and data["failed"] == []
    artifact = data["artifacts"][0]
    assert artifact["name"] == "gguf-q8_0" and artifact["parity"]["passed"]
    assert {"top1_agreement", "greedy_agreement", "tokens_per_s"} <= set(artifact["parity"])
    assert (out / "gguf-q8_0" / "model.gguf").is_file()


def test_cli_table_for_generators(exported, capsys):
    from kdedge.cli.export import _render

    _render(exported[0])
    out = capsys.readouterr()
    assert "torch fp32" in out.out and "greedy" in out.out
    assert out.out.count("pass") == 3
    assert "gguf-q4_k_m:" in out.err and "instead of" in out.err  # the fallback warning
