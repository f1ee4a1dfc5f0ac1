"""Every command: --help shows an example; error paths give one line and exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kdedge.cli import COMMANDS, cli, main


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def _entry(ctx: click.Context) -> None:
    """Call the real console entry point, which owns error formatting and exit codes."""
    sys.argv = ["kdedge", *ctx.args]
    main()


def run(args: list[str]) -> tuple[int, str, str]:
    """Run ``kdedge ARGS`` in-process; return (exit code, stdout, stderr)."""
    result = CliRunner().invoke(_entry, args, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_help_shows_an_example(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    assert "kdedge " + name in result.output


def test_top_level_help_lists_commands_without_importing_torch():
    import subprocess
    import sys

    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom kdedge.cli import cli\n"
        "r = CliRunner().invoke(cli, ['--help'])\nassert r.exit_code == 0\n"
        "assert 'quickstart' in r.output and 'distill' in r.output\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_malformed_file_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hi", "label": "a"}\n{"text": "oops", label: b}\n')
    code, _, err = run(["prepare", str(bad), "--out", str(tmp_path / "out")])
    assert code == 2
    assert f"{bad}:2" in err and "error:" in err
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_missing_model_directory(tmp_path, data_dir):
    code, _, err = run(
        [
            "distill",
            "--teacher",
            str(tmp_path / "nope"),
            "--data",
            str(data_dir),
            "--out",
            str(tmp_path / "s"),
        ]
    )
    assert code == 2 and "does not exist" in err


def test_unavailable_device(tmp_path, data_dir, tiny_teacher):
    code, _, err = run(
        ["evaluate", str(tiny_teacher), "--data", str(data_dir / "test.jsonl"), "--device", "cuda"]
    )
    assert code == 2 and "CUDA" in err and "--device" in err


def test_unknown_label_in_test_data(tmp_path, tiny_teacher):
    test = tmp_path / "test.jsonl"
    test.write_text(
        '{"text": "where is my order", "label": "order_tracking"}\n'
        '{"text": "teleport me", "label": "teleportation"}\n'
    )
    code, _, err = run(["evaluate", str(tiny_teacher), "--data", str(test)])
    assert code == 2 and f"{test}:2" in err and "teleportation" in err


def test_empty_dataset(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    code, _, err = run(["prepare", str(empty), "--out", str(tmp_path / "out")])
    assert code == 2 and "no rows" in err


def test_bad_recipe_key(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[data]\ntrain = "x.jsonl"\ntrian = 1\n[teacher]\nbase = "minilm"\n')
    code, _, err = run(["run", str(recipe)])
    assert code == 2 and "trian" in err and "valid keys" in err


def test_prepare_json_output(tmp_path, raw_data):
    code, out, _ = run(
        [
            "prepare",
            str(raw_data["train"]),
            "--test",
            str(raw_data["test"]),
            "--out",
            str(tmp_path / "d"),
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(out)
    assert set(report["counts"]) >= {"train", "validation", "test"}
    assert (tmp_path / "d" / "labels.json").is_file()


def test_label_then_distill_hits_the_cache(tmp_path, data_dir, tiny_teacher):
    cache = tmp_path / "cache"
    code, out, _ = run(
        [
            "label",
            "--teacher",
            str(tiny_teacher),
            "--data",
            str(data_dir),
            "--cache",
            str(cache),
            "--device",
            "cpu",
            "--json",
        ]
    )
    assert code == 0
    first = json.loads(out)
    assert first["cache_misses"] == first["texts"] - (first["texts"] - first["cache_misses"])
    assert first["cache_hits"] == 0 and first["cache_misses"] > 0
    code, out, _ = run(
        [
            "distill",
            "--teacher",
            str(tiny_teacher),
            "--data",
            str(data_dir),
            "--out",
            str(tmp_path / "student"),
            "--layers",
            "2",
            "--epochs",
            "2",
            "--lr",
            "3e-3",
            "--batch-size",
            "16",
            "--cache",
            str(cache),
            "--device",
            "cpu",
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(out)
    assert report["labeling"]["cache_misses"] == 0 and report["labeling"]["cache_hits"] > 0
    assert (tmp_path / "student" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "student" / "labels.json").read_text())["labels"]


def test_calibrate_and_evaluate_gates_exit_code(tmp_path, data_dir, tiny_teacher):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_teacher, model)
    code, out, _ = run(
        ["calibrate", str(model), "--data", str(data_dir / "validation.jsonl"), "--json"]
    )
    assert code == 0 and json.loads(out)["temperature"] > 0
    assert (model / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    strict = tmp_path / "strict.toml"
    strict.write_text("[gates]\naccuracy = { min = 0.999 }\n")
    code, out, _ = run(
        [
            "evaluate",
            str(model),
            "--data",
            str(data_dir / "test.jsonl"),
            "--gates",
            str(strict),
            "--latency-samples",
            "3",
            "--json",
        ]
    )
    assert code == 1
    assert json.loads(out)["passed"] is False
    lenient = tmp_path / "lenient.toml"
    lenient.write_text("[gates]\naccuracy = { min = 0.0 }\n")
    code, _, _ = run(
        [
            "evaluate",
            str(model),
            "--data",
            str(data_dir / "test.jsonl"),
            "--gates",
            str(lenient),
            "--latency-samples",
            "0",
        ]
    )
    assert code == 0


def test_cli_module_exists_for_every_command():
    for module, _ in COMMANDS.values():
        assert (Path(__file__).parents[2] / (module.replace(".", "/") + ".py")).is_file()


def test_python_dash_m_runs_the_cli():
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "kdedge", "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "python -m kdedge" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "kdedge", "sweep", "missing.toml"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "missing.toml" in bad.stderr


def _one_line_error(args):
    code, out, err = run(args)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    return err


def test_inputs_that_used_to_give_tracebacks_are_one_line_errors(tmp_path):
    """Issue #19: RecursionError, UnicodeDecodeError, TypeError and one-label data."""
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"text": "hi", "label": "a"}\n' + "[" * 100_000 + "\n")
    assert f"{deep}:2" in _one_line_error(["prepare", str(deep), "--out", str(tmp_path / "o")])
    one = tmp_path / "one.jsonl"
    one.write_text("".join(f'{{"text": "row {i}", "label": "a"}}\n' for i in range(20)))
    err = _one_line_error(["prepare", str(one), "--out", str(tmp_path / "o1")])
    assert "at least 2 labels" in err
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'# caf\xe9\n[data]\ntrain = "x.jsonl"\n[teacher]\nbase = "minilm"\n')
    assert "not valid UTF-8" in _one_line_error(["run", str(latin)])
    typed = tmp_path / "typed.toml"
    typed.write_text('[data]\ntrain = "x.jsonl"\n[teacher]\nbase = "minilm"\nrules = 3\n')
    assert "rules must be a list" in _one_line_error(["run", str(typed)])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("labels", [1, 2, 3]),
        ("labels", "order_tracking"),
        ("tokenizer.path", 7),
        ("tokenizer.path", None),
        ("tokenizer.max_length", -1),
        ("artifacts.0.files", []),
        ("schema_version", 0),
        ("calibration.temperature", 0),
    ],
)
def test_a_malformed_manifest_is_one_line_naming_the_field(tmp_path, field, value):
    from tests.runtimes.tiny_bundle import build_tiny_bundle

    bundle = build_tiny_bundle(tmp_path / "b")
    manifest = json.loads((bundle / "manifest.json").read_text())
    node, *path = manifest, *field.split(".")
    for key in path[:-1]:
        node = node[int(key) if key.isdigit() else key]
    node[path[-1]] = value
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    shown = field.replace(".0.", "[0].")
    err = _one_line_error(["predict", str(bundle), "where is my order"])
    assert f"field '{shown}" in err  # 'labels[0]' for labels given as numbers
