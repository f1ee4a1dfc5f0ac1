"""The ``kdedge`` command: a thin Click shell over the library.

Subcommands are imported only when invoked, so ``kdedge --help`` starts fast and never
imports torch.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from kdedge import __version__

COMMANDS = {
    "quickstart": (
        "kdedge.cli.quickstart",
        "Distill a real intent classifier on the bundled data.",
    ),
    "prepare": ("kdedge.cli.prepare", "Validate, PII-scrub, dedupe and split a labeled dataset."),
    "teach": ("kdedge.cli.teach", "Fine-tune a teacher classifier from a local base encoder."),
    "label": ("kdedge.cli.label", "Run teacher(s) once over the data into the logit cache."),
    "augment": ("kdedge.cli.augment", "Make an offline transfer set of edited, unlabeled text."),
    "distill": ("kdedge.cli.distill", "Distill teacher(s) into a smaller student."),
    "sweep": ("kdedge.cli.sweep", "Many students from one teacher-label cache; an ablation table."),
    "calibrate": ("kdedge.cli.calibrate", "Fit a temperature on a holdout; ECE before/after."),
    "evaluate": ("kdedge.cli.evaluate", "Metrics and release gates on labeled data."),
    "run": ("kdedge.cli.run", "Run every stage from one TOML recipe."),
    "export": (
        "kdedge.cli.export",
        "Convert to ONNX / OpenVINO / GGUF, prove parity, write a bundle.",
    ),
    "inspect": ("kdedge.cli.inspect", "Show and verify a bundle's manifest."),
    "predict": (
        "kdedge.cli.predict",
        "Predict with a bundle, torch-free: label, confidence, route.",
    ),
    "serve": ("kdedge.cli.serve", "Serve a bundle over HTTP: /predict, /healthz, /metrics."),
    "bench": ("kdedge.cli.bench", "Latency, cold start, memory per artifact and target."),
    "route": ("kdedge.cli.route", "Fit router thresholds on a holdout; price them at a traffic."),
    "llm": (
        "kdedge.cli.llm",
        "Response distillation: collect, gate, build, distill, eval a GGUF LLM student.",
    ),
    "rerank": (
        "kdedge.cli.rerank",
        "Reranker distillation: candidates, teach, label, distill, evaluate a cross-encoder.",
    ),
}


class LazyGroup(click.Group):
    """A group whose commands live in modules imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[name][0])
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kdedge")
def cli() -> None:
    """kdedge: distill a big teacher into a small, calibrated student and prove it is safe to ship.

    \b
    Start here:
      kdedge quickstart                 # the whole flow on bundled data (~5 min on a laptop CPU)
      kdedge run examples/recipes/mangaassist.toml
    Every stage is also its own command; add --help to any of them for an example.
    Errors exit with status 2, failed release gates with status 1.
    """


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit status 2."""
    from kdedge.errors import KdedgeError

    try:
        cli.main(standalone_mode=False)
    except KdedgeError as exc:
        from kdedge.cli.console import print_error

        print_error(str(exc))
        if os.environ.get("KDEDGE_DEBUG"):
            raise
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
