"""`kdedge predict`, `serve`, `route fit` and `route simulate` from the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from tests.cli.test_cli import run


def test_predict_table_and_json(exported):
    bundle = str(exported[1])
    code, out, err = run(["predict", bundle, "where is my order please", "hello"])
    assert code == 0, err
    assert "route" in out and "fastest passing artifact" in err
    code, out, _ = run(["predict", bundle, "hello", "--json", "--artifact", "openvino"])
    result = json.loads(out)
    assert result["artifact"] == "openvino" and result["label"]


def test_predict_from_a_file(exported, data_dir, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("hello\n\nwhere is my order\n")
    code, out, _ = run(["predict", str(exported[1]), "--file", str(texts), "--json", "--no-route"])
    assert code == 0 and len(json.loads(out)) == 2
    code, out, _ = run(
        ["predict", str(exported[1]), "--file", str(data_dir / "test.jsonl"), "--json"]
    )
    assert code == 0 and len(json.loads(out)) > 10


def test_predict_errors_are_one_line(exported, tmp_path):
    code, _, err = run(["predict", str(exported[1])])
    assert code == 2 and "nothing to predict" in err
    code, _, err = run(["predict", str(tmp_path), "hi"])
    assert code == 2 and "no manifest.json" in err
    code, _, err = run(["predict", str(exported[1]), "hi", "--artifact", "tflite"])
    assert code == 2 and "no artifact 'tflite'" in err


def test_route_fit_then_simulate(exported, data_dir, tmp_path):
    report = tmp_path / "fit.json"
    code, out, err = run(
        [
            "route",
            "fit",
            str(exported[1]),
            "--data",
            str(data_dir / "validation.jsonl"),
            "--test-data",
            str(data_dir / "test.jsonl"),
            "--target-fallback-rate",
            "0.2",
            "--max-clarify-rate",
            "0.2",
            "--risk-label",
            "escalation",
            "--risk-pattern",
            "lawyer",
            "--out",
            str(report),
            "-q",
        ]
    )
    assert code == 0, err
    assert "two-stage router" in out and "plain threshold" in out
    fit = json.loads(report.read_text())
    assert fit["policy"]["risk_labels"] == ["escalation"]
    assert fit["fit"]["metrics"]["fallback_rate"] <= 0.2
    assert set(fit["fit"]["test"]) >= {"router", "plain_threshold"}
    code, out, _ = run(
        ["predict", str(exported[1]), "my lawyer", "--policy", str(report), "--json"]
    )
    assert json.loads(out)["reason"] == "risk_rule"
    code, out, _ = run(
        [
            "route",
            "simulate",
            "--report",
            str(report),
            "--requests-per-day",
            "1e6",
            "--student-cost",
            "0.0002",
            "--teacher-cost",
            "0.003",
            "--json",
        ]
    )
    sim = json.loads(out)
    assert code == 0 and set(sim) == {"router", "plain_threshold", "student_only"}
    assert sim["student_only"]["teacher_calls_per_day"] == 0


def test_route_fit_apply_writes_the_policy_into_the_manifest(bundle_copy, data_dir):
    code, _, err = run(
        [
            "route",
            "fit",
            str(bundle_copy),
            "--data",
            str(data_dir / "validation.jsonl"),
            "--target-accuracy",
            "0.5",
            "--risk-label",
            "escalation",
            "--apply",
            "-q",
        ]
    )
    assert code == 0, err
    router = json.loads((bundle_copy / "manifest.json").read_text())["router"]
    assert router["risk_labels"] == ["escalation"] and "oos_label" in router
    code, _, err = run(["inspect", str(bundle_copy)])  # hashes still verify
    assert code == 0, err


def test_route_errors(exported, data_dir):
    code, _, err = run(
        ["route", "fit", str(exported[1]), "--data", str(data_dir / "validation.jsonl")]
    )
    assert code == 2 and "exactly one target" in err
    code, _, err = run(
        [
            "route",
            "fit",
            str(exported[1]),
            "--data",
            str(data_dir / "validation.jsonl"),
            "--target-accuracy",
            "0.9",
            "--risk-label",
            "billing",
        ]
    )
    assert code == 2 and "billing" in err
    code, _, err = run(
        [
            "route",
            "simulate",
            "--requests-per-day",
            "1",
            "--student-cost",
            "0",
            "--teacher-cost",
            "0",
        ]
    )
    assert code == 2 and "either --report or --fallback-rate" in err


def test_route_simulate_prints_the_seed_overrun():
    code, out, _ = run(
        [
            "route",
            "simulate",
            "--fallback-rate",
            "0.05",
            "--fallback-rate",
            "0.18",
            "--requests-per-day",
            "10e6",
            "--student-cost",
            "0.0002",
            "--teacher-cost",
            "0.003",
        ]
    )
    assert code == 0
    assert "$3,500.00" in out and "$7,400.00" in out and "+117,000.00" in out


def test_serve_answers_then_stops_on_sigterm(exported):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kdedge.cli",
            "serve",
            str(exported[1]),
            "--port",
            "0",
            "--artifact",
            "onnx",
            "--log",
            "-",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stderr.readline()
        deadline = time.time() + 60
        while "serving" not in line and time.time() < deadline and proc.poll() is None:
            line = proc.stderr.readline()
        assert "serving onnx" in line, line
        url = line.split(" on ")[1].split(" ")[0]
        request = urllib.request.Request(url + "/predict", data=b'{"text": "hello"}')
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["label"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        rest = proc.stderr.read()
        assert '"tier":"' in rest and "stopped" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
