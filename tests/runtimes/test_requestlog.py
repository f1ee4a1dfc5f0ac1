"""Tiered request logs: what each tier holds, that texts stay out, and payload accounting."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from kdedge.errors import ConfigError
from kdedge.runtimes.fallback import FallbackAnswer
from kdedge.runtimes.prediction import Prediction
from kdedge.runtimes.requestlog import TieredLog, tier_of

LABELS = ("order", "refund", "fraud")
SECRET = "my card 4111 1111 1111 1111 was stolen"


def prediction(route="answer", reason="confident", **kw):
    probs = np.array([0.7, 0.2, 0.1])
    return Prediction(
        label="order",
        confidence=0.7,
        probs=probs,
        labels=LABELS,
        route=route,
        reason=reason,
        student_label="order",
        id="abc",
        artifact="onnx-int8",
        **kw,
    )


TEACHER = FallbackAnswer(
    label="fraud",
    text=None,
    source="openai:m@h",
    latency_ms=120.0,
    attempts=2,
    prompt_tokens=50,
    completion_tokens=5,
    cost=0.001,
    raw='{"label": "fraud"}',
)


def test_each_tier_adds_detail_and_texts_stay_out():
    sink = io.StringIO()
    log = TieredLog(sink)
    log.record(prediction(), SECRET)
    log.record(prediction("clarify", "low_confidence"), SECRET)
    log.record(prediction("fallback", "risk_label", fallback=TEACHER, risk=0.8), SECRET)
    compact, low, fallback = (json.loads(line) for line in sink.getvalue().splitlines())
    assert compact["tier"] == "compact" and "top_k" not in compact
    assert low["tier"] == "low_confidence" and low["top_k"][0] == ["order", 0.7]
    assert fallback["tier"] == "fallback" and fallback["teacher"]["label"] == "fraud"
    assert "raw" not in fallback["teacher"]
    assert SECRET not in sink.getvalue()
    stats = log.stats()
    assert stats["events"] == 3
    sizes = {t: s["avg_bytes"] for t, s in stats["tiers"].items()}
    assert sizes["compact"] < sizes["low_confidence"] < sizes["fallback"]
    assert stats["bytes"] == len(sink.getvalue().encode())


def test_incident_mode_logs_everything():
    lines = []
    log = TieredLog(lines.append, mode="incident")
    log.record(prediction("fallback", "risk_rule", fallback=TEACHER, risk_hits=("stolen",)), SECRET)
    event = json.loads(lines[0])
    assert event["tier"] == "incident" and event["text"] == SECRET
    assert set(event["probs"]) == set(LABELS) and event["teacher"]["raw"]
    assert event["risk_hits"] == ["stolen"]


def test_a_failed_fallback_is_logged_at_the_fallback_tier():
    p = prediction("clarify", "fallback_failed", fallback_error="timeout")
    assert tier_of(p) == "fallback"
    event = TieredLog(io.StringIO()).record(p, "x")
    assert event["teacher_error"] == "timeout"


def test_a_log_file_is_appended_and_closed(tmp_path):
    path = tmp_path / "requests.jsonl"
    log = TieredLog(path)
    log.record(prediction(), "x")
    log.close()
    log2 = TieredLog(path)
    log2.record(prediction(), "x")
    log2.close()
    assert len(path.read_text().splitlines()) == 2
    with pytest.raises(ConfigError, match="closed"):
        log.record(prediction(), "x")


def test_bad_log_settings():
    with pytest.raises(ConfigError, match="log mode"):
        TieredLog(io.StringIO(), mode="verbose")
    with pytest.raises(ConfigError, match="cannot open request log"):
        TieredLog("/nonexistent-dir/x.jsonl")
