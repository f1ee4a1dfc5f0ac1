"""Issue #7 speed ladder: the plain KD loop against kdedge's, one change at a time.

Every arm trains its own copy of the same student (teacher layers 0, 2, 4) with the same
KD loss on cached-style soft targets, round after round in a random order, so the ratios
come from one run on one (shared) machine. The rungs:

  plain      random batches padded on the host to the batch maximum, copied each step,
             AdamW's default per-tensor update, eager (what the anchor in issue #7 ran)
  +buckets   length-bucketed batches (kdedge.distill.batching.shuffled_buckets)
  +resident  tokens, labels, soft targets and batch indices on the device (TokenTable,
             device_batches): no host padding, no copy per step
  +fused     fused AdamW: kdedge's training loop as `kdedge distill` runs it
  +compile   torch.compile (``--compile MODE``; widths rounded to multiples of 8)

Labeling compares teacher forward passes in input order (host padding per batch) with
kdedge's length-sorted ``predict_logits``. FLOPs per sample come from FlopCounterMode on
each arm's own batches ("computed", padding included); "useful" counts every arm at the
least-padded arm's FLOPs per sample. The ceiling is a matmul measured here in the loop's
dtype.

    python benchmarks/train_speed.py --teacher runs/clinc150_cpu/teacher \
        --data runs/clinc150_cpu/data --device cpu --batch-size 64 --rounds 7 --steps 8 \
        --out docs/results/train_speed_cpu.json
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from kdedge.atomic import atomic_write_text
from kdedge.bench.paired import paired_speedup
from kdedge.data.prepare import load_prepared
from kdedge.distill.batching import (
    TokenTable,
    device_batches,
    shuffled_buckets,
    sorted_batches,
)
from kdedge.distill.device import resolve
from kdedge.distill.distillation import StudentSpec, build_student
from kdedge.distill.flops import matmul_ceiling, step_flops
from kdedge.distill.inference import encode, pad_batch, predict_logits
from kdedge.distill.losses import LossConfig, distillation_loss
from kdedge.distill.models import load_classifier

ARMS = ("plain", "+buckets", "+resident", "+fused", "+compile")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Arm:
    """One student, optimizer and batch stream configured by the rung it stands on."""

    def __init__(self, name, student, ids, pad_id, gold, soft, batch_size, placement, compile):
        rung = ARMS.index(name)
        self.name, self.placement = name, placement
        self.device = placement.device
        self.model = copy.deepcopy(student).to(self.device).train()
        self.resident = rung >= 2
        fused = rung >= 3
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, fused=fused or None)
        self.forward = (
            torch.compile(self.model, mode=compile) if rung >= 4 and compile else self.model
        )
        self.ids, self.pad_id = ids, pad_id
        self.tokens = TokenTable(ids, pad_id, self.device, multiple=8 if rung >= 4 else 1)
        self.gold_cpu, self.soft_cpu = gold, soft
        self.gold, self.soft = gold.to(self.device), soft.to(self.device)
        generator = torch.Generator().manual_seed(0)
        lengths = [len(r) for r in ids]
        if rung >= 1:
            self.batches = shuffled_buckets(lengths, batch_size, generator)
        else:
            order = torch.randperm(len(ids), generator=generator).tolist()
            self.batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        self.batches = [b for b in self.batches if len(b) == batch_size]  # equal work per step
        if not self.batches:
            raise SystemExit(f"{len(ids)} training texts make no full batch of {batch_size}")
        # Resident arms copy every batch's row indices to the device once, as the trainer
        # does each epoch; the plain arm builds and copies each batch when it runs it.
        self.indexes = device_batches(self.batches, self.device) if self.resident else []
        self.cursor = 0
        self.loss = LossConfig(alpha=0.7, temperature=2.0)

    def inputs(self, rows, index=None):
        if self.resident:
            if index is None:
                index = torch.tensor(rows, device=self.device)
            input_ids, mask = self.tokens.batch(rows, index)
            return (
                input_ids,
                mask,
                self.gold.index_select(0, index),
                self.soft.index_select(0, index),
            )
        input_ids, mask = pad_batch([self.ids[i] for i in rows], self.pad_id, self.device)
        index = torch.tensor(rows)
        return (
            input_ids,
            mask,
            self.gold_cpu[index].to(self.device),
            self.soft_cpu[index].to(self.device),
        )

    def step(self, rows, index=None) -> None:
        input_ids, mask, y, t = self.inputs(rows, index)
        with self.placement.autocast():
            logits = self.forward(input_ids=input_ids, attention_mask=mask).logits
        terms = distillation_loss(logits, y, t, self.loss)
        terms.total.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def run(self, steps: int) -> float:
        """Samples per second over ``steps`` steps."""
        _sync(self.device)
        t0 = time.perf_counter()
        n = 0
        for _ in range(steps):
            k = self.cursor % len(self.batches)
            self.cursor += 1
            self.step(self.batches[k], self.indexes[k] if self.resident else None)
            n += len(self.batches[k])
        _sync(self.device)
        return n / (time.perf_counter() - t0)

    def flops_per_sample(self, batches: int = 4) -> float:
        total = samples = 0
        for rows in self.batches[:batches]:
            input_ids, mask, _, _ = self.inputs(rows)
            with self.placement.autocast():
                total += step_flops(self.model, input_ids, mask)
            samples += len(rows)
        return total / samples

    def padding_efficiency(self) -> float:
        # Host padding to the batch maximum computes what the table gives at multiple 1.
        return self.tokens.padding_efficiency(self.batches)


def labeling(teacher, texts, placement, batch_size, rounds):
    """Teacher samples/s: input order with host padding vs kdedge's sorted predict_logits."""
    model, tok = teacher.model.to(placement.device).eval(), teacher.tokenizer
    max_length = teacher.max_length

    @torch.inference_mode()
    def plain() -> float:
        t0 = time.perf_counter()
        for i in range(0, len(texts), batch_size):
            enc = tok(
                texts[i : i + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            with placement.autocast():
                logits = model(**{k: v.to(placement.device) for k, v in enc.items()}).logits
            logits.float().cpu()
        return len(texts) / (time.perf_counter() - t0)

    def kdedge() -> float:
        t0 = time.perf_counter()
        predict_logits(model, tok, texts, placement, max_length=max_length, batch_size=batch_size)
        return len(texts) / (time.perf_counter() - t0)

    arms = {"plain": plain, "kdedge": kdedge}
    samples = {name: [] for name in arms}
    for r in range(rounds + 1):
        for name in random.Random(r).sample(list(arms), len(arms)):
            rate = arms[name]()
            if r:  # round 0 warms up
                samples[name].append(rate)
    ids = encode(tok, texts, max_length)
    tokens = TokenTable(ids, tok.pad_token_id)
    in_order = [
        list(range(i, min(i + batch_size, len(ids)))) for i in range(0, len(ids), batch_size)
    ]
    padding = {
        "plain": tokens.padding_efficiency(in_order),
        "kdedge": tokens.padding_efficiency(sorted_batches(tokens.lengths, batch_size)),
    }
    rows = random.Random(0).sample(range(len(texts)), min(batch_size, len(texts)))
    input_ids, mask = pad_batch([ids[i] for i in rows], tok.pad_token_id, placement.device)
    with placement.autocast():
        flops = step_flops(model, input_ids, mask, backward=False) / len(rows)
    return {
        "texts": len(texts),
        "batch_size": batch_size,
        "samples_per_sec": {k: round(float(np.median(v)), 1) for k, v in samples.items()},
        "speedup": paired_speedup(samples["kdedge"], samples["plain"], higher_is_better=True),
        "padding_efficiency": {k: round(v, 4) for k, v in padding.items()},
        "forward_flops_per_sample_random_batch": flops,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--teacher", required=True, type=Path, help="fine-tuned teacher directory")
    p.add_argument("--data", required=True, type=Path, help="a folder from `kdedge prepare`")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=8, help="timed steps per arm per round")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--compile", default=None, help="add the +compile arm with this mode")
    p.add_argument("--label-texts", type=int, default=4096)
    p.add_argument("--label-batch-size", type=int, default=512)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    if args.rounds < 3:
        p.error("--rounds must be at least 3: the speed-ups are medians of per-round ratios")
    if args.batch_size < 1 or args.steps < 1:
        p.error("--batch-size and --steps must be positive")

    from kdedge.bench.host import describe

    placement = resolve(args.device)
    teacher = load_classifier(args.teacher)
    student = build_student(teacher, StudentSpec(layers=3)).model
    data = load_prepared(args.data)
    texts = [e.text for e in data.train]
    ids = encode(teacher.tokenizer, texts, teacher.max_length)
    n_labels = len(teacher.labels)
    gold = torch.tensor(teacher.labels.indices([e.label for e in data.train]))
    soft = torch.softmax(
        torch.randn(len(texts), n_labels, generator=torch.Generator().manual_seed(0)), -1
    )
    names = [a for a in ARMS if a != "+compile" or args.compile]
    arms = {
        n: Arm(
            n,
            student,
            ids,
            teacher.tokenizer.pad_token_id,
            gold,
            soft,
            args.batch_size,
            placement,
            args.compile,
        )
        for n in names
    }
    for arm in arms.values():  # warm-up (and compilation) outside the timed rounds
        arm.run(max(2, args.steps // 2))
    rates: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        for n in random.Random(r).sample(names, len(names)):
            rates[n].append(arms[n].run(args.steps))
    dtype = torch.bfloat16 if placement.precision == "bf16" else torch.float32
    ceiling = matmul_ceiling(placement.device, dtype)
    flops = {n: arm.flops_per_sample() for n, arm in arms.items()}
    useful = min(flops.values())  # the least-padded arm's work: what every arm must do
    train = {}
    for n, arm in arms.items():
        median = float(np.median(rates[n]))
        train[n] = {
            "samples_per_sec": round(median, 1),
            "speedup_vs_plain": paired_speedup(rates[n], rates["plain"], higher_is_better=True),
            "padding_efficiency": round(arm.padding_efficiency(), 4),
            "flops_per_sample": flops[n],
            "achieved_flops": median * flops[n],
            "fraction_of_ceiling": round(median * flops[n] / ceiling, 4),
            "useful_fraction_of_ceiling": round(median * useful / ceiling, 4),
        }
    result = {
        "host": describe(),
        "device": placement.name,
        "precision": placement.precision,
        "torch_threads": torch.get_num_threads(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "matmul_ceiling_flops": ceiling,
        "train": train,
        "labeling": labeling(
            teacher,
            texts[: args.label_texts],
            placement,
            args.label_batch_size,
            max(3, args.rounds // 2),
        ),
    }
    print(f"matmul ceiling ({dtype}): {ceiling / 1e12:.3f} TFLOP/s on {placement.name}")
    print(
        "| arm | samples/s | vs plain (95% CI) | padding eff. | GFLOP/sample "
        "| computed % of ceiling | useful % of ceiling |"
    )
    print("|---|---|---|---|---|---|---|")
    for n, row in train.items():
        s = row["speedup_vs_plain"]
        print(
            f"| {n} | {row['samples_per_sec']:,.0f} | {s['speedup']:.2f}x "
            f"({s['ci95'][0]:.2f}-{s['ci95'][1]:.2f}) | {row['padding_efficiency']:.2f} "
            f"| {row['flops_per_sample'] / 1e9:.3f} | {100 * row['fraction_of_ceiling']:.1f}% "
            f"| {100 * row['useful_fraction_of_ceiling']:.1f}% |"
        )
    lab = result["labeling"]
    print(
        f"labeling: plain {lab['samples_per_sec']['plain']:,.0f} samples/s, kdedge "
        f"{lab['samples_per_sec']['kdedge']:,.0f} ({lab['speedup']['speedup']:.2f}x)"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
