"""benchmarks/runtime.py runs end to end on a tiny bundle and reports every arm."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.runtimes.tiny_bundle import build_tiny_bundle

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "runtime.py"


def test_runtime_benchmark_reports_every_arm(tmp_path):
    bundle = build_tiny_bundle(tmp_path / "bundle")
    out = tmp_path / "report.json"
    args = [sys.executable, str(SCRIPT), "--bundle", str(bundle), "--artifact", "onnx"]
    args += ["--import-runs", "1", "--cold-runs", "1", "--rounds", "16", "--out", str(out)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["bytecode_cached"] is True
    current = report["current"]
    assert set(current["import"]["median_ms"]) == {
        "bare_python",
        "import_kdedge_runtimes",
        "from_kdedge_runtimes_import_load",
        "engine_floor_imports",
    }
    cold = current["cold_start"]
    assert cold["minimal_by_hand_ms"] > cold["bare_python_ms"] > 0
    over = current["overhead"]
    assert set(over["median_us"]) == {
        "session_run",
        "tokenize_and_session_run",
        "runtime_predict_unrouted",
        "runtime_predict_routed",
    }
    parts = over["in_call_median_us"]
    assert set(parts) == {"tokenize", "session_run", "softmax", "router", "result"}
    assert all(v > 0 for v in parts.values())
