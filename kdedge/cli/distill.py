"""``kdedge distill``."""

from __future__ import annotations

from pathlib import Path

import click

from kdedge.cli.console import emit_json, megabytes, rich_tracker, stdout
from kdedge.cli.options import compute_options, overwrite_option, resume_option
from kdedge.cli.render import render_training


def _ints(value: str | None) -> tuple[int, ...] | None:
    from kdedge.errors import ConfigError

    if not value:
        return None
    try:
        return tuple(int(x) for x in value.split(","))
    except ValueError:
        raise ConfigError(
            f"--layer-map {value!r} must be comma-separated integers like 0,2,4"
        ) from None


def _rules(values: tuple[str, ...]):
    from kdedge.distill.labeling import RiskRule
    from kdedge.errors import ConfigError

    rules = []
    for value in values:
        pattern, sep, label = value.rpartition("=")
        if not sep or not pattern or not label:
            raise ConfigError(
                f"--rule {value!r} must look like 'REGEX=label', e.g. 'chargeback=escalation'"
            )
        rules.append(RiskRule(pattern, label))
    return rules


@click.command("distill")
@click.option(
    "--teacher",
    "teachers",
    multiple=True,
    required=True,
    help="Teacher model directory (repeat for an ensemble: mean of softened probabilities).",
)
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path),
    help="A folder written by `kdedge prepare`.",
)
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Student output folder."
)
@click.option("--layers", type=int, help="Keep this many teacher layers  [default: half]")
@click.option("--layer-map", help="Teacher layers to keep, e.g. 0,2,4.")
@click.option("--student-model", help="Start from this pretrained checkpoint instead.")
@click.option(
    "--trim-vocab",
    is_flag=True,
    help="Keep only the embedding rows the data uses (smaller student; WordPiece tokenizers)",
)
@click.option("--alpha", default=0.7, show_default=True, help="Weight of KD; 0 = hard labels only.")
@click.option("--temperature", "-T", default=4.0, show_default=True, help="KD temperature.")
@click.option(
    "--rare-weight",
    default=0.0,
    show_default=True,
    help="Weight of the class-weighted rare-class CE (seed hybrid: 0.2 with --alpha 0.35).",
)
@click.option(
    "--feature-epochs",
    default=0,
    show_default=True,
    help="Stage-1 hidden-state/attention distillation epochs before output KD.",
)
@click.option(
    "--rule",
    "rules",
    multiple=True,
    help="High-risk override 'REGEX=label' applied to the teacher's soft labels.",
)
@click.option("--no-unlabeled", is_flag=True, help="Ignore the prepared unlabeled texts.")
@click.option(
    "--transfer",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Extra unlabeled text (JSONL/CSV) that only the teachers label, e.g. from "
    "`kdedge augment`; repeat for several files.",
)
@click.option(
    "--calibrated-teachers",
    is_flag=True,
    help="Soften each teacher's calibrated probabilities (logits over its `kdedge calibrate` "
    "temperature) instead of its raw ones.",
)
@click.option(
    "--gates", type=click.Path(path_type=Path), help="Gates TOML for checkpoint selection."
)
@click.option("--epochs", default=8, show_default=True)
@click.option("--lr", default=1e-4, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--compile",
    "compile_mode",
    type=click.Choice(["default", "reduce-overhead", "max-autotune"]),
    help="torch.compile the student (reduce-overhead = CUDA graphs); pays off on GPUs "
    "for long runs  [default: eager]",
)
@click.option("--cache", type=click.Path(path_type=Path), help="Logit cache  [default: DATA/cache]")
@compute_options
@resume_option
@overwrite_option
def command(
    teachers,
    data,
    out,
    layers,
    layer_map,
    student_model,
    trim_vocab,
    alpha,
    temperature,
    rare_weight,
    feature_epochs,
    rules,
    no_unlabeled,
    transfer,
    calibrated_teachers,
    gates,
    epochs,
    lr,
    batch_size,
    seed,
    compile_mode,
    cache,
    device,
    precision,
    resume,
    overwrite,
    quiet,
    as_json,
):
    """Distill teacher(s) into a smaller student; the checkpoint that passes the gates ships.

    \b
    Examples:
      kdedge distill --teacher teacher/ --data data/ --out student/ --layers 3
      kdedge distill --teacher t1/ --teacher t2/ --data data/ --out student/ \\
          --alpha 0.35 --rare-weight 0.2 --rule 'chargeback|lawyer=escalation'
      kdedge distill --teacher teacher/ --data data/ --out student/ --feature-epochs 3
      torchrun --nproc_per_node 4 -m kdedge distill --teacher teacher/ --data data/ \
          --out student/ --batch-size 256     # 4 GPUs; --batch-size is the global batch
    Teacher logits come from the cache (`kdedge label`), so only the student is trained.
    Under torchrun / accelerate launch every process trains on its share of each batch
    and rank 0 writes (docs/distributed.md).
    """
    from kdedge.base_models import resolve_model
    from kdedge.data.io import load_unlabeled
    from kdedge.distill.device import resolve
    from kdedge.distill.distillation import StudentSpec, distill
    from kdedge.distill.gates import Gates
    from kdedge.distill.losses import LossConfig
    from kdedge.distill.trainer import TrainConfig

    result = distill(
        [resolve_model(t) for t in teachers],
        data,
        out,
        placement=resolve(device, precision),
        student=StudentSpec(
            layers=layers,
            layer_map=_ints(layer_map),
            model=resolve_model(student_model) if student_model else None,
            trim_vocab=trim_vocab,
        ),
        loss=LossConfig(alpha=alpha, temperature=temperature, rare_weight=rare_weight),
        config=TrainConfig(
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            seed=seed,
            min_epochs=min(3, epochs),
            compile=compile_mode,
        ),
        cache_dir=cache,
        rules=_rules(rules),
        use_unlabeled=not no_unlabeled,
        transfer=load_unlabeled(transfer),
        calibrated_teachers=calibrated_teachers,
        feature_epochs=feature_epochs,
        gates=Gates.from_toml(gates) if gates else None,
        resume=resume,
        overwrite=overwrite,
        track=rich_tracker(quiet),
    )
    if as_json:
        emit_json(result.to_dict())
        return
    if result.labeling:
        lab = result.labeling
        stdout.print(
            f"teacher labels: cache hits {lab.cache_hits}, misses {lab.cache_misses}"
            + (f", rule overrides {result.rule_overrides}" if rules else "")
            + (f", transfer texts {result.transfer_rows}" if transfer else "")
        )
    for h in result.feature_history:
        stdout.print(
            f"stage 1 epoch {h['epoch']}: feature MSE {h['loss_feature']:.4f}, "
            f"attention MSE {h['loss_attention']:.5f}"
        )
    render_training(result.train, "Student")
    stdout.print(
        f"student: {result.parameters / 1e6:.1f} M parameters, {megabytes(result.size_bytes)}"
    )
