"""Import contracts, checked in a fresh interpreter so nothing else has loaded the modules."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "optimum", "click", "rich")


def loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "module",
    [
        "kdedge",
        "kdedge.runtimes",
        "kdedge.errors",
        "kdedge.runtimes.generate",
        "kdedge.runtimes.api",
        "kdedge.runtimes.backends.llamacpp",
        "kdedge.runtimes.rerank",
        "kdedge.runtimes.loader",
        "kdedge.tasks",
        "kdedge.rerank.metrics",
    ],
)
def test_runtime_imports_stay_small(module):
    modules = loaded_after(f"import {module}")
    bad = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert not bad, f"import {module} pulled in {bad}"


def test_loading_a_bundle_of_any_task_needs_no_torch():
    """The loader reads the task registry; no family's opener may reach torch."""
    modules = loaded_after(
        "from kdedge.tasks import TASKS\nfor task in TASKS.values():\n    task.entry('open')"
    )
    bad = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert not bad, f"the runtime openers pulled in {bad}"


def test_data_layer_needs_no_torch():
    modules = loaded_after("import kdedge.data, kdedge.distill.metrics, kdedge.distill.calibration")
    assert not {m.split(".")[0] for m in modules} & {"torch", "transformers"}


def test_cli_help_does_not_import_torch():
    modules = loaded_after(
        "from click.testing import CliRunner\nfrom kdedge.cli import cli\n"
        "CliRunner().invoke(cli, ['--help'])"
    )
    assert "torch" not in modules
