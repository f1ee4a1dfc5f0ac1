"""Stage 1 of TinyBERT-style distillation: match the teacher's inside, not only its output.

The student's embedding output and each of its layers' hidden states are projected to
the teacher's width by learned linear maps and pulled towards the mapped teacher layers
(MSE over real tokens); attention maps are matched too, averaged over heads when the head
counts differ. Stage 1 needs no labels, so it runs on all available text (labeled and
unlabeled). Stage 2 is ordinary output KD (:func:`kdedge.distill.trainer.fit`).

The inputs are texts or, for cross-encoders (rerankers), (query, passage) pairs, which are
tokenized as pairs with their ``token_type_ids``.

Under ``torchrun`` / ``accelerate launch`` each rank takes its share of every global batch,
the student and projections are one DDP module, and each loss is rescaled by the rank's
share of the batch's tokens (token pairs for attention), so the averaged gradient is the
global batch's, as in :func:`kdedge.distill.trainer.fit`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from kdedge.distill import distributed
from kdedge.distill.batching import TokenTable, device_batches, shuffled_buckets
from kdedge.distill.device import Placement, explain_device_errors
from kdedge.distill.events import EventLog
from kdedge.distill.inference import encode
from kdedge.distill.losses import attention_mse, hidden_mse
from kdedge.distill.models import Classifier, quiet_transformers
from kdedge.distill.optim import adamw
from kdedge.errors import ConfigError
from kdedge.progress import Tracker, silent


def uniform_feature_map(teacher_layers: int, student_layers: int) -> list[int]:
    """TinyBERT's uniform map: student layer i learns teacher layer (i+1)*n/k - 1.

    For 3 of 6 layers that is [1, 3, 5]: each student layer stands in for two teacher
    layers, so it is asked for the output of the second.
    """
    return [(i + 1) * teacher_layers // student_layers - 1 for i in range(student_layers)]


class _Stage1Student(nn.Module):
    """The student with its projections, returning both stage-1 losses from ``forward``,
    so one DDP module syncs every trained parameter."""

    def __init__(
        self, student: nn.Module, projections: nn.ModuleList, feature_map: Sequence[int]
    ) -> None:
        super().__init__()
        self.student, self.projections = student, projections
        self.feature_map = list(feature_map)
        self.hidden_pairs = [(0, 0)] + [(i + 1, t + 1) for i, t in enumerate(feature_map)]

    def forward(
        self, input_ids, attention_mask, teacher_hidden, teacher_attentions, **types
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.student(
            input_ids=input_ids,
            attention_mask=attention_mask,
            **types,
            output_hidden_states=True,
            output_attentions=True,
        )
        feature = sum(
            hidden_mse(self.projections[k](out.hidden_states[s]), teacher_hidden[t], attention_mask)
            for k, (s, t) in enumerate(self.hidden_pairs)
        ) / len(self.hidden_pairs)
        attention = sum(
            attention_mse(out.attentions[i], teacher_attentions[t], attention_mask)
            for i, t in enumerate(self.feature_map)
        ) / len(self.feature_map)
        return feature, attention


def _token_shares(
    lengths: Sequence[int], mine: Sequence[int], rows: Sequence[int], world: int
) -> tuple[float, float]:
    """Factors for this rank's feature and attention means (tokens, token pairs)."""

    def total(which, power):
        return sum(lengths[i] ** power for i in which)

    return world * total(mine, 1) / total(rows, 1), world * total(mine, 2) / total(rows, 2)


def _eager(model: Any) -> None:
    """Attention maps need the eager attention path (SDPA does not return them)."""
    with contextlib.suppress(Exception):  # transformers <5 falls back to eager by itself
        model.set_attn_implementation("eager")


@quiet_transformers()
def feature_distill(
    student: Classifier,
    teacher: Classifier,
    texts: Sequence[str] | Sequence[tuple[str, str]],
    placement: Placement,
    *,
    feature_map: Sequence[int] | None = None,
    epochs: int = 3,
    batch_size: int = 32,
    lr: float = 1e-4,
    attention_weight: float = 1.0,
    seed: int = 0,
    log: EventLog | None = None,
    track: Tracker = silent,
) -> list[dict[str, Any]]:
    """Train ``student.model`` in place on hidden-state and attention MSE. Returns epoch logs.

    ``texts`` holds strings, or (query, passage) pairs for a cross-encoder.
    """
    s_cfg, t_cfg = student.model.config, teacher.model.config
    n_s, n_t = s_cfg.num_hidden_layers, t_cfg.num_hidden_layers
    feature_map = list(feature_map) if feature_map is not None else uniform_feature_map(n_t, n_s)
    if len(feature_map) != n_s or not all(0 <= i < n_t for i in feature_map):
        raise ConfigError(
            f"feature map {feature_map} must give one teacher layer (0..{n_t - 1}) "
            f"for each of the student's {n_s} layers"
        )
    if not texts:
        raise ConfigError("feature distillation needs text; the data is empty")
    device = placement.device
    torch.manual_seed(seed)  # projections and dropout draw from the global generator
    for model in (student.model, teacher.model):
        _eager(model)
    teacher.model.to(device).eval()
    student.model.to(device).train()
    # One projection for the embeddings and one per student layer; identity when widths match.
    projections = nn.ModuleList(
        nn.Linear(s_cfg.hidden_size, t_cfg.hidden_size, bias=False) for _ in range(n_s + 1)
    ).to(device)
    if s_cfg.hidden_size == t_cfg.hidden_size:
        for proj in projections:
            nn.init.eye_(proj.weight)
    procs = distributed.current()
    # The head and pooler take no part in the stage-1 losses: DDP must be told.
    stage1 = distributed.prepare_model(
        _Stage1Student(student.model, projections, feature_map), unused_parameters=True
    )
    params = list(stage1.parameters())
    optimizer = adamw(params, lr)
    # Each model reads its own ids: a student with a trimmed vocabulary numbers the same
    # tokens differently, but the sequences must correspond position by position.
    ids, types = _encode_inputs(student.tokenizer, texts, student.max_length)
    teacher_ids, teacher_types = _encode_inputs(teacher.tokenizer, texts, teacher.max_length)
    mismatch = next(
        (t for t, s, u in zip(texts, ids, teacher_ids, strict=True) if len(s) != len(u)), None
    )
    if mismatch is not None:
        raise ConfigError(
            "feature distillation needs the student and teacher to tokenize identically "
            f"(as many tokens per text), but they split {mismatch!r} differently; use a student "
            "built from the teacher (layer map), or skip stage 1"
        )
    tokens = TokenTable(ids, student.tokenizer.pad_token_id, device)
    teacher_tokens = TokenTable(teacher_ids, teacher.tokenizer.pad_token_id, device)
    # Segment ids of pairs (0 = query, 1 = passage), padded with 0; None for single texts.
    type_tables = [
        TokenTable(t, 0, device) if t is not None else None for t in (types, teacher_types)
    ]
    history: list[dict[str, Any]] = []
    generator = torch.Generator().manual_seed(seed)
    with explain_device_errors(placement), distributed.explain_peer_errors("stage 1"):
        for epoch in range(1, epochs + 1):
            batches = shuffled_buckets(tokens.lengths, batch_size, generator, min_rows=procs.world)
            mine = [distributed.shard_rows(rows, procs) for rows in batches]
            sums = torch.zeros(3, device=device)  # feature, attention (row-weighted), rows
            t0 = time.perf_counter()
            for i, (rows, index) in enumerate(
                track(
                    zip(mine, device_batches(mine, device), strict=True),
                    f"stage 1 features epoch {epoch}/{epochs}",
                    total=len(batches),
                )
            ):
                input_ids, mask = tokens.batch(rows, index)
                teacher_input, _ = teacher_tokens.batch(rows, index)
                s_types, t_types = (
                    {"token_type_ids": t.batch(rows, index)[0]} if t is not None else {}
                    for t in type_tables
                )
                with torch.no_grad(), placement.autocast():
                    t_out = teacher.model(
                        input_ids=teacher_input,
                        attention_mask=mask,
                        **t_types,
                        output_hidden_states=True,
                        output_attentions=True,
                    )
                with placement.autocast():
                    feature, attention = stage1(
                        input_ids, mask, t_out.hidden_states, t_out.attentions, **s_types
                    )
                scale = (1.0, 1.0)
                if procs.distributed:
                    scale = _token_shares(tokens.lengths, rows, batches[i], procs.world)
                loss = feature * scale[0] + attention_weight * attention * scale[1]
                loss.backward()
                distributed.clip_grad_norm(stage1, 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                sums[:2] += torch.stack([feature, attention]).detach().float() * len(rows)
                sums[2] += len(rows)  # no host sync per step: sums stay on the device
            feature_sum, attention_sum, seen = distributed.all_sum(
                sums, "summing stage-1 losses"
            ).tolist()
            record = {
                "stage": "features",
                "epoch": epoch,
                "loss_feature": round(feature_sum / seen, 6),
                "loss_attention": round(attention_sum / seen, 6),
                "samples_per_sec": round(seen / (time.perf_counter() - t0), 1),
            }
            history.append(record)
            if log is not None and procs.main:
                log.emit("distill_epoch_end", **record)
            if _stage1_converged(history):
                break
    student.model.to("cpu")
    teacher.model.to("cpu")
    return history


def _encode_inputs(
    tokenizer: Any, texts: Sequence[str] | Sequence[tuple[str, str]], max_length: int
) -> tuple[list[list[int]], list[list[int]] | None]:
    """Token ids (and segment ids for pairs) per input, truncated to ``max_length``."""
    if not texts or isinstance(texts[0], str):
        return encode(tokenizer, texts, max_length), None
    enc = tokenizer(
        [q for q, _ in texts],
        [p for _, p in texts],
        truncation=True,
        max_length=max_length,
        padding=False,
    )
    return enc["input_ids"], enc.get("token_type_ids")


def _stage1_converged(history: Sequence[dict[str, Any]], min_gain: float = 0.02) -> bool:
    """Seed rule: feature and attention losses each improved < 2% for 2 epochs in a row."""
    if len(history) < 3:
        return False

    def small(prev: dict, cur: dict) -> bool:
        return all(
            prev[k] <= 0 or (prev[k] - cur[k]) / prev[k] < min_gain
            for k in ("loss_feature", "loss_attention")
        )

    return small(history[-3], history[-2]) and small(history[-2], history[-1])
