"""Export a causal LM (response model) to GGUF with a ``generate`` manifest."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kdedge.atomic import atomic_dir
from kdedge.converters.base import ExportOptions
from kdedge.converters.bundling import (
    ArtifactResult,
    ExportReport,
    NothingShipped,
    build_artifacts,
    check_tokenizer,
    convert_one,
    gate_summary,
    provenance,
)
from kdedge.converters.parity_llm import NEW_TOKENS
from kdedge.converters.registry import FormatSpec
from kdedge.distill.models import read_meta, size_on_disk
from kdedge.errors import ConfigError
from kdedge.extras import require
from kdedge.llm import prompts
from kdedge.llm.models import read_config
from kdedge.progress import Tracker, silent
from kdedge.runtimes.bundle import TOKENIZER, Artifact, FileEntry, Manifest, write_manifest
from kdedge.runtimes.generation_router import DEFAULT_ROUTER as GENERATION_ROUTER
from kdedge.runtimes.tokenizer import Tokenizer

# The llama.cpp context the runtime opens (at most the model's own) and the answer budget.
DEFAULT_CONTEXT = 2048
MAX_NEW_TOKENS = 256


def _generation(model: Any, tokenizer: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``generation`` section: prompt, chat template, context, stop tokens."""
    prompt = meta.get("prompt") or {}
    template = prompt.get("user_template", prompts.USER_TEMPLATE)
    if "{question}" not in template:
        raise ConfigError(
            f"kdedge.json prompt.user_template {template[:60]!r} has no {{question}} "
            "placeholder; fix the student's kdedge.json"
        )
    eos = model.generation_config.eos_token_id
    eos_ids = [*(eos if isinstance(eos, list) else [eos]), tokenizer.eos_token_id]
    stop = [tokenizer.convert_ids_to_tokens(int(i)) for i in eos_ids if i is not None]
    return {
        "system_prompt": prompt.get("system", prompts.SYSTEM_PROMPT),
        "user_template": template,
        "chat_template": tokenizer.chat_template,
        "context_length": min(DEFAULT_CONTEXT, int(model.config.max_position_embeddings)),
        "max_new_tokens": MAX_NEW_TOKENS,
        "stop": list(dict.fromkeys(stop)),
        "eos_token": tokenizer.eos_token,
    }


def export_generate(
    model_dir: Path,
    specs: Sequence[FormatSpec],
    out_dir: Path,
    *,
    eval_data: str | Path | None = None,
    calibration_data: str | Path | None = None,
    keep_failed: bool = False,
    select_within: float | None = None,
    options: ExportOptions | None = None,
    track: Tracker = silent,
) -> ExportReport:
    """GGUF artifacts of a causal LM, each proved against torch, in a ``generate`` bundle.

    ``eval_data``, ``calibration_data`` and ``select_within`` apply to classifiers and are
    refused; ``options`` has nothing for GGUF.
    """
    given = {"--eval-data": eval_data, "--calibration-data": calibration_data}
    unused = [flag for flag, value in given.items() if value is not None]
    if select_within is not None:
        unused.append("--select")
    if unused:
        raise ConfigError(
            f"{', '.join(unused)} apply to classifiers; {model_dir} is a generation model. "
            "Fix: drop them (measure answers with `kdedge llm eval`)"
        )
    formats = [s.name for s in specs]
    require("gguf", "gguf", "Exporting generation models")
    from kdedge.converters import gguf_llama, parity_llm
    from kdedge.llm.models import load_causal_lm

    converters = [gguf_llama.generator_converter(f) for f in formats]
    gguf_llama.check_supported(read_config(model_dir) or {}, model_dir)
    model, tokenizer = load_causal_lm(model_dir)
    meta = read_meta(model_dir)
    generation = _generation(model, tokenizer, meta)
    context = generation["context_length"]
    texts = [
        t
        for t in parity_llm.probe_texts(tokenizer, generation["system_prompt"])
        if len(tokenizer(t)["input_ids"]) + NEW_TOKENS <= context
    ]
    if not texts:
        raise ConfigError(
            f"{model_dir}: no parity probe fits the {context}-token context; "
            "the model's max_position_embeddings is too small for chat prompts"
        )
    report: ExportReport | None = None
    try:
        with (
            tempfile.TemporaryDirectory(prefix="kdedge-export-") as scratch,
            atomic_dir(out_dir) as staging,
        ):
            tokenizer.backend_tokenizer.save(str(staging / TOKENIZER))
            check_tokenizer(tokenizer, Tokenizer(staging / TOKENIZER, context), texts)
            ref = parity_llm.reference(model, tokenizer, texts)
            f32 = Path(scratch) / "gguf-f32"
            name = model_dir.resolve().name

            def one(conv: Any) -> tuple[ArtifactResult, Artifact | None]:
                return convert_one(
                    conv,
                    staging,
                    lambda folder: conv.convert(model, tokenizer, folder, f32, name),
                    lambda path: parity_llm.check(path, ref, conv.tolerance),
                )

            results, artifacts = build_artifacts(converters, staging, one, keep_failed, track)
            for r in results:
                r.shipped = r.name in artifacts
            report = ExportReport(
                model_dir=model_dir,
                out_dir=None,
                torch_size_bytes=size_on_disk(model_dir),
                torch_accuracy=None,
                results=results,
                task="generate",
            )
            if not artifacts:
                raise NothingShipped
            manifest = Manifest(
                task="generate",
                labels=(),
                max_length=context,
                temperature=1.0,
                artifacts=tuple(artifacts.values()),
                tokenizer=FileEntry.of(staging, TOKENIZER),
                router=dict(GENERATION_ROUTER),
                gates=gate_summary(model_dir, meta),
                provenance=provenance(model_dir, meta, {}),
                generation=generation,
            )
            write_manifest(staging, manifest)
            report.out_dir = out_dir
    except NothingShipped:
        pass
    assert report is not None
    return report
