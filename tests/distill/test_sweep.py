"""kdedge sweep, the OOS router threshold, offline transfer sets and the cache's cost ledger."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from kdedge.data.augment import augment
from kdedge.data.io import load_examples, load_unlabeled, write_examples
from kdedge.data.records import Example
from kdedge.distill.oos import fit_oos_threshold, oos_metrics
from kdedge.distill.sweep import cost_sentence, load_sweep, run_sweep
from kdedge.errors import ConfigError

# --- OOS at the router threshold ---------------------------------------------------------


def test_router_threshold_turns_low_confidence_into_oos():
    # Label 2 is OOS. Rows 0-3 are in scope and confident; rows 4-5 are OOS rows the
    # argmax calls in scope, but with low confidence.
    probs = np.array(
        [
            [0.9, 0.05, 0.05],
            [0.05, 0.9, 0.05],
            [0.8, 0.1, 0.1],
            [0.1, 0.8, 0.1],
            [0.4, 0.35, 0.25],
            [0.3, 0.45, 0.25],
        ]
    )
    gold = np.array([0, 1, 0, 1, 2, 2])
    argmax = oos_metrics(probs, gold, 2)
    assert argmax.oos_recall == 0.0 and argmax.in_scope_accuracy == 1.0
    threshold = fit_oos_threshold(probs, gold, 2)
    assert 0.45 < threshold <= 0.8
    routed = oos_metrics(probs, gold, 2, threshold)
    assert routed.oos_recall == 1.0 and routed.oos_precision == 1.0
    assert routed.in_scope_accuracy == 1.0 and routed.routed_away == pytest.approx(2 / 6)
    # Too high a threshold costs in-scope accuracy: below-threshold in-scope rows are wrong.
    greedy = oos_metrics(probs, gold, 2, 0.85)
    assert greedy.in_scope_accuracy == 0.5 and greedy.oos_precision == pytest.approx(2 / 4)


def test_oos_metrics_need_oos_rows():
    with pytest.raises(ConfigError, match="no out-of-scope rows"):
        oos_metrics(np.eye(3), np.array([0, 1, 1]), 2)
    with pytest.raises(ConfigError, match="not a column"):
        oos_metrics(np.eye(3), np.array([0, 1, 2]), 5)


# --- offline augmentation ----------------------------------------------------------------


def _rows() -> list[Example]:
    return [
        Example("where is my order today", "track"),
        Example("track my parcel please now", "track"),
        Example("i want to return this book", "return"),
        Example("how do i send it back", "return"),
        Example("hi", "greet"),
    ]


def test_augment_is_seeded_new_and_unlabeled():
    made, report = augment(_rows(), per_text=3, seed=7, exclude=["where is my order"])
    again, _ = augment(_rows(), per_text=3, seed=7, exclude=["where is my order"])
    assert [e.text for e in made] == [e.text for e in again]
    texts = [e.text for e in made]
    assert len(texts) == len(set(texts)) == report.written
    assert not set(texts) & {e.text for e in _rows()} and "where is my order" not in texts
    assert all(e.label is None and e.slice.startswith("augment:") for e in made)
    assert sum(report.per_op.values()) == report.written
    assert report.written + report.skipped == 3 * len(_rows())
    assert report.skipped >= 3  # "hi" is too short for any edit


def test_splice_joins_texts_of_different_labels():
    made, _ = augment(_rows()[:4], per_text=4, ops=["splice"], seed=1)
    assert made
    for e in made:
        head = e.text.split()[0]
        source = next(r for r in _rows() if r.text.split()[0] == head)
        tail_source = [r for r in _rows() if e.text.endswith(r.text.split()[-1])]
        assert any(r.label != source.label for r in tail_source)


def test_augment_errors():
    with pytest.raises(ConfigError, match="unknown augmentation op"):
        augment(_rows(), ops=["paraphrase"])
    with pytest.raises(ConfigError, match="per_text"):
        augment(_rows(), per_text=0)
    with pytest.raises(ConfigError, match="nothing to augment"):
        augment([])


# --- sweep files ---------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_sweep_file_variants_grid_and_paths(tmp_path):
    path = _write(
        tmp_path,
        """
data = "data"
workdir = "out"
baseline = "hard"
[base]
teachers = ["t1"]
epochs = 2
temperature = 2.0
[[variants]]
name = "hard"
alpha = 0.0
[[variants]]
name = "ensemble"
teachers = ["t1", "/abs/t2"]
transfer = ["extra.jsonl"]
[grid]
temperature = [1.0, 4.0]
""",
    )
    sweep = load_sweep(path, grid=["alpha=0.5,0.9"])
    names = [v.name for v in sweep.variants]
    assert names[:2] == ["hard", "ensemble"] and len(names) == 6
    assert "temperature=4.0,alpha=0.9" in names
    by_name = {v.name: v.settings for v in sweep.variants}
    assert by_name["hard"].alpha == 0.0 and by_name["hard"].epochs == 2
    assert by_name["hard"].teachers == (str(tmp_path / "t1"),)
    assert by_name["ensemble"].teachers == (str(tmp_path / "t1"), "/abs/t2")
    assert by_name["ensemble"].transfer == (str(tmp_path / "extra.jsonl"),)
    assert by_name["temperature=1.0,alpha=0.5"].temperature == 1.0
    assert sweep.data == tmp_path / "data" and sweep.workdir == tmp_path / "out"
    assert [v.name for v in sweep.select(["ensemble"]).variants] == ["ensemble"]
    with pytest.raises(ConfigError, match="unknown variant"):
        sweep.select(["nope"])


@pytest.mark.parametrize(
    ("text", "grid", "message"),
    [
        ('data = "d"\n[base]\nteachers = ["t"]\nalpah = 1\n', (), "unknown key.*alpah"),
        ('data = "d"\n[[variants]]\nname = "a"\n', (), "names no teachers"),
        ('data = "d"\n[base]\nteachers = ["t"]\n', (), "no variants"),
        ('data = "d"\n[base]\nteachers = ["t"]\n', ("temperature",), "must look like"),
        (
            'data = "d"\n[base]\nteachers=["t"]\n[[variants]]\nname="a"\n[[variants]]\nname="a"\n',
            (),
            "unique",
        ),
        (
            'data = "d"\nbaseline = "x"\n[base]\nteachers=["t"]\n[[variants]]\nname="a"\n',
            (),
            "baseline 'x'",
        ),
        ('[base]\nteachers = ["t"]\n', (), "needs `data"),
        ('data = "d"\nextra = 1\n', (), "unknown key"),
        ("data = [", (), "not valid TOML"),
    ],
)
def test_sweep_file_errors(tmp_path, text, grid, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(_write(tmp_path, text), grid=grid)


def test_missing_sweep_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_sweep(tmp_path / "none.toml")


# --- a real sweep on the tiny teacher ---------------------------------------------------------


def test_sweep_reuses_the_cache_prices_it_and_resumes(tmp_path, tiny_teacher, data_dir):
    from kdedge.distill.device import resolve

    train = load_examples(data_dir / "train.jsonl")
    held_out = load_unlabeled([data_dir / "validation.jsonl", data_dir / "test.jsonl"])
    made, _ = augment(train, per_text=1, seed=0)
    leaked = Example(held_out[0].text)  # a validation/test text must never be trained on
    write_examples(tmp_path / "transfer.jsonl", [*made, leaked])
    path = _write(
        tmp_path,
        f"""
data = "{data_dir}"
workdir = "sweep"
cache = "cache"
oos_label = "out_of_scope"
baseline = "hard"
[base]
teachers = ["{tiny_teacher}"]
layers = 1
epochs = 2
lr = 3e-3
batch_size = 16
temperature = 2.0
[[variants]]
name = "hard"
alpha = 0.0
[[variants]]
name = "kd"
[[variants]]
name = "kd_transfer"
transfer = ["transfer.jsonl"]
""",
    )
    sweep = load_sweep(path)
    placement = resolve("cpu")
    report = run_sweep(sweep, placement)
    rows = {r["name"]: r for r in report.rows}
    assert [r["kind"] for r in report.rows] == ["teacher", "student", "student", "student"]
    hard, kd, transfer = rows["hard"], rows["kd"], rows["kd_transfer"]
    assert hard["labeling"] is None and hard["gap_closed"] in (0.0, None)
    # The first KD run pays for every text; the second reuses all of them and only pays
    # for the new transfer texts (the leaked held-out text was dropped).
    assert kd["labeling"]["cache_misses"] > 0 and kd["labeling"]["cache_hits"] == 0
    assert transfer["transfer_rows"] == len(made)
    assert transfer["labeling"]["cache_misses"] == len(made)
    assert transfer["labeling"]["cache_hits"] == kd["labeling"]["texts"]
    assert transfer["labeling"]["saved_seconds"] > 0
    for r in (hard, kd, transfer):
        assert 0 <= r["router"]["threshold"] < 1 and r["layers"] == 1
        assert r["argmax"]["threshold"] == 0.0
        assert set(r["router"]) >= {"in_scope_accuracy", "oos_recall", "oos_precision"}
    cost = report.cost
    assert cost["runs"] == 3 and cost["teacher_seconds_saved"] > 0
    assert cost["seconds_without_cache"] > cost["seconds_with_cache"]
    assert "The cache saved" in cost_sentence(cost)
    md = (sweep.workdir / "sweep_report.md").read_text()
    assert "| kd_transfer | 1 |" in md and "router threshold" in md
    saved = json.loads((sweep.workdir / "sweep_report.json").read_text())
    assert len(saved["rows"]) == 4

    # A second run reuses finished variants without training.
    again = run_sweep(sweep.select(["kd"]), placement)
    assert [r.get("resumed") for r in again.rows if r["kind"] == "student"] == [True]
    assert again.rows[-1]["router"] == kd["router"]

    # `only` trains the named variant but the report keeps the whole sweep's finished rows.
    one = run_sweep(sweep, placement, only=["kd"])
    assert [r["name"] for r in one.rows] == [r["name"] for r in report.rows]
    assert json.loads((sweep.workdir / "sweep_report.json").read_text())["rows"] == one.rows
    assert one.not_run == [] and one.cost["runs"] == 3

    # In a fresh workdir the variants not trained yet are named, not silently dropped.
    fresh = dataclasses.replace(sweep, workdir=tmp_path / "fresh")
    first = run_sweep(fresh, placement, only=["hard"])
    assert [r["name"] for r in first.rows if r["kind"] == "student"] == ["hard"]
    assert first.not_run == ["kd", "kd_transfer"]
    assert "Not run yet: kd, kd_transfer." in (fresh.workdir / "sweep_report.md").read_text()


def test_sweep_cli(tmp_path, tiny_teacher, data_dir):
    from click.testing import CliRunner

    from kdedge.cli import cli

    path = _write(
        tmp_path,
        f"""
data = "{data_dir}"
workdir = "sweep"
oos_label = "out_of_scope"
teacher_rows = false
[base]
teachers = ["{tiny_teacher}"]
layers = 1
epochs = 1
batch_size = 16
""",
    )
    result = CliRunner().invoke(
        cli, ["sweep", str(path), "--grid", "temperature=1,3", "--device", "cpu", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "temperature=1" in result.output and "temperature=3" in result.output
    assert "The cache saved" in result.output
    bad = CliRunner().invoke(
        cli, ["sweep", str(path), "--grid", "temperature=1", "--only", "nope", "--device", "cpu"]
    )
    assert bad.exit_code != 0 and "unknown variant" in str(bad.exception)


def test_augment_cli_writes_a_transfer_set(tmp_path, data_dir):
    from click.testing import CliRunner

    from kdedge.cli import cli

    out = tmp_path / "transfer.jsonl"
    args = [
        "augment",
        "--data",
        str(data_dir / "train.jsonl"),
        "--exclude",
        str(data_dir / "test.jsonl"),
        "--out",
        str(out),
        "--per-text",
        "2",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and out.is_file()
    rows = load_unlabeled([out])
    assert rows and all(e.label is None for e in rows)
    again = CliRunner().invoke(cli, args)
    assert again.exit_code != 0 and "already exists" in str(again.exception)


def test_distill_cli_takes_a_transfer_set(tmp_path, tiny_teacher, data_dir):
    from click.testing import CliRunner

    from kdedge.cli import cli

    extra = [Example("hello where is my book parcel"), Example("joke about returns please")]
    held_out = load_unlabeled([data_dir / "test.jsonl"])[:1]  # dropped: never trained on
    write_examples(tmp_path / "transfer.jsonl", [*extra, *held_out])
    out = tmp_path / "student"
    args = ["distill", "--teacher", str(tiny_teacher), "--data", str(data_dir), "--out", str(out)]
    args += ["--layers", "1", "--epochs", "1", "--batch-size", "16", "--device", "cpu", "-q"]
    args += ["--transfer", str(tmp_path / "transfer.jsonl"), "--cache", str(tmp_path / "cache")]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["transfer_rows"] == 2 and (out / "config.json").is_file()


def test_calibrated_teachers_soften_calibrated_probabilities():
    from kdedge.distill.labeling import combine
    from kdedge.distill.probability import softmax

    # Teacher 0 is under-confident (calibration T 0.5), teacher 1 over-confident (T 2).
    logits = np.array([[[1.0, 0.0, 0.0]], [[4.0, 0.0, 0.0]]], dtype=np.float32)
    raw, _ = combine(logits, 2.0)
    calibrated, _ = combine(logits, 2.0, calibration=[0.5, 2.0])
    # After calibration both teachers hold the same logits [2, 0, 0], softened at T=2.
    assert calibrated[0] == pytest.approx(softmax(np.array([[2.0, 0.0, 0.0]]), 2.0)[0], abs=1e-6)
    assert not np.allclose(raw, calibrated)
    with pytest.raises(ConfigError, match="one positive calibration temperature per teacher"):
        combine(logits, 2.0, calibration=[1.0])


def test_uncalibrated_teacher_is_a_clear_error(tmp_path, tiny_base, data_dir):
    from kdedge.distill.distillation import calibration_temperature

    with pytest.raises(ConfigError, match=r"is not calibrated.*kdedge calibrate"):
        calibration_temperature(tiny_base)


def test_sweep_retrains_a_variant_whose_settings_changed(tmp_path, tiny_teacher, data_dir):
    from kdedge.distill.device import resolve
    from kdedge.distill.evaluation import calibrate_model

    teacher = tmp_path / "teacher"  # a copy: calibrating writes into the model directory
    shutil.copytree(tiny_teacher, teacher)
    calibrate_model(teacher, data_dir / "validation.jsonl", resolve("cpu"), plot=False)
    text = f"""
data = "{data_dir}"
workdir = "sweep"
oos_label = "out_of_scope"
teacher_rows = false
[base]
teachers = ["{teacher}"]
layers = 1
epochs = 1
batch_size = 16
[[variants]]
name = "kd"
"""
    first = run_sweep(load_sweep(_write(tmp_path, text)), resolve("cpu"))
    assert not first.rows[0].get("resumed")
    same = run_sweep(load_sweep(_write(tmp_path, text)), resolve("cpu"))
    assert same.rows[0]["resumed"]
    changed = run_sweep(
        load_sweep(_write(tmp_path, text + "calibrated_teachers = true\n")), resolve("cpu")
    )
    assert not changed.rows[0].get("resumed")
    assert changed.rows[0]["settings"]["calibrated_teachers"] is True


def test_stored_settings_compare_with_normalised_paths():
    from kdedge.distill.sweep import RunSettings, _comparable

    a = RunSettings(teachers=("runs/x/../t",), transfer=("d/./f.jsonl",))
    b = RunSettings(teachers=("runs/t",), transfer=("d/f.jsonl",))
    assert _comparable(dataclasses.asdict(a)) == _comparable(dataclasses.asdict(b))
    assert _comparable(dataclasses.asdict(a)) != _comparable(
        dataclasses.asdict(RunSettings(teachers=("runs/u",)))
    )


def test_a_malformed_transfer_file_names_file_and_line_and_writes_nothing(
    tmp_path, tiny_teacher, data_dir
):
    from click.testing import CliRunner

    from kdedge.cli import cli
    from kdedge.errors import DataError

    bad = tmp_path / "transfer.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": oops}\n', encoding="utf-8")
    out = tmp_path / "student"
    args = ["distill", "--teacher", str(tiny_teacher), "--data", str(data_dir), "--out", str(out)]
    args += ["--layers", "1", "--epochs", "1", "--device", "cpu", "-q", "--transfer", str(bad)]
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, DataError)
    assert f"{bad}:2" in str(result.exception) and "\n" not in str(result.exception)
    assert not out.exists()
