"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path

import click

device_option = click.option(
    "--device",
    type=click.Choice(["auto", "cuda", "mps", "cpu"]),
    default="auto",
    show_default=True,
    help="Where to run: auto picks CUDA, then Apple MPS, then CPU.",
)
precision_option = click.option(
    "--precision",
    type=click.Choice(["auto", "bf16", "fp32"]),
    default="auto",
    show_default=True,
    help="auto = bf16 autocast on CUDA, fp32 elsewhere.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
resume_option = click.option(
    "--resume", is_flag=True, help="Continue an interrupted run in --out from its last epoch."
)
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace an existing --out.")


def compute_options(command):
    """--device, --precision, --quiet and --json: the options of every command that computes."""
    for option in (json_option, quiet_option, precision_option, device_option):
        command = option(command)
    return command


def runtime_options(command):
    """How ``predict`` and ``serve`` open a bundle: artifact, backend, threads, policy."""
    options = (
        click.option(
            "--no-verify", is_flag=True, help="Skip the sha256 check of the loaded files."
        ),
        click.option(
            "--policy",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Router policy JSON (or a `kdedge route fit` report)  [default: the manifest's]",
        ),
        click.option("--threads", type=click.IntRange(1), help="Inference threads  [default: all]"),
        click.option(
            "--backend",
            type=click.Choice(["onnxruntime", "openvino", "llamacpp"]),
            help="Only consider artifacts of this backend.",
        ),
        click.option(
            "--artifact", help="Run this artifact (e.g. onnx-int8)  [default: best for this host]"
        ),
    )
    for option in options:
        command = option(command)
    return command


def teacher_options(command):
    """Where fallbacks go: an OpenAI-compatible server or another `kdedge serve`."""
    options = (
        click.option(
            "--teacher-timeout",
            type=click.FloatRange(0.1),
            default=10.0,
            show_default=True,
            help="Seconds per teacher attempt (retries come on top).",
        ),
        click.option(
            "--teacher-key-env",
            default="OPENAI_API_KEY",
            show_default=True,
            help="Environment variable holding the API key (never logged or saved).",
        ),
        click.option("--teacher-model", help="Model name for an OpenAI-compatible teacher."),
        click.option(
            "--teacher",
            "teacher_url",
            metavar="URL",
            help="Teacher for fallbacks: an OpenAI-compatible base URL, or "
            "kdedge+http://HOST:PORT for another `kdedge serve`.",
        ),
    )
    for option in options:
        command = option(command)
    return command


def open_teacher(url: str | None, model: str | None, key_env: str, timeout: float):
    """The fallback target the teacher options describe, or None."""
    if not url:
        return None
    from kdedge.runtimes.fallback import open_fallback

    return open_fallback(url, model=model, api_key_env=key_env or None, timeout=timeout)


def open_runtime(
    bundle,
    *,
    artifact: str | None,
    backend: str | None,
    threads: int | None,
    policy: Path | None,
    no_verify: bool,
    teacher_url: str | None,
    teacher_model: str | None,
    teacher_key_env: str,
    teacher_timeout: float,
    log=None,
):
    """The runtime that :func:`runtime_options` and :func:`teacher_options` describe.

    If loading fails, the teacher client and ``log`` opened for it are closed again.
    """
    from kdedge.runtimes.loader import load

    teacher = open_teacher(teacher_url, teacher_model, teacher_key_env, teacher_timeout)
    try:
        return load(
            bundle,
            artifact=artifact,
            backend=backend,
            threads=threads,
            policy=policy,
            fallback=teacher,
            log=log,
            verify=not no_verify,
        )
    except BaseException:
        for resource in (teacher, log):
            if resource is not None:
                resource.close()
        raise
