"""prepare_dataset end to end, and reading a prepared directory back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import kdedge.data.prepare as prepare_module
from kdedge.data import LabelSet, PrepareReport, load_examples, load_prepared, prepare_dataset
from kdedge.errors import ConfigError, DataError

LABELS = ("billing", "order_status", "refund")


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def labeled(prefix: str, per_label: int = 20) -> list[dict[str, object]]:
    return [
        {"text": f"{prefix} {label} question number {i}", "label": label}
        for label in LABELS
        for i in range(per_label)
    ]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if p.name.endswith(".tmp"))


def test_prepare_from_train_only(tmp_path: Path) -> None:
    rows = labeled("train")
    rows += [
        {"text": "TRAIN billing question number 0!", "label": "refund"},  # conflicting dup
        {"text": "train billing question number 1", "label": "billing"},  # plain dup
        {"text": "?!", "label": "billing"},  # empty once normalised
        {"text": "mail me at jane@example.com about 4111 1111 1111 1111", "label": "billing"},
        {"text": "call +1 555 010 1234 re order #48213397", "label": "order_status"},
    ]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    out = tmp_path / "prepared"
    report = prepare_dataset(train, out_dir=out, seed=1)

    assert isinstance(report, PrepareReport)
    assert report.labels == LABELS
    assert sum(report.counts.values()) == 62
    assert report.counts == {"train": 50, "validation": 6, "test": 6}
    assert (report.duplicates, report.conflicts, report.empty, report.leaked) == (2, 1, 1, 0)
    assert report.pii == {"email": 1, "phone": 1, "card": 1, "order_id": 1}
    assert report.split == {"train": 0.8, "validation": 0.1, "test": 0.1}
    for split, counts in report.label_counts.items():
        assert set(counts) == set(LABELS)
        assert sum(counts.values()) == report.counts[split]
        assert min(counts.values()) >= 1
    assert sorted(p.name for p in out.iterdir()) == [
        "labels.json",
        "prepare_report.json",
        "test.jsonl",
        "train.jsonl",
        "validation.jsonl",
    ]
    assert report.files["train"] == str(out / "train.jsonl")
    saved = json.loads((out / "prepare_report.json").read_text())
    assert saved == report.to_dict()
    assert saved["labels"] == list(LABELS)

    data = load_prepared(out)
    assert data.labels == LabelSet(LABELS)
    assert [len(data.train), len(data.validation), len(data.test)] == [50, 6, 6]
    assert data.unlabeled == []
    texts = " ".join(ex.text for ex in data.train + data.validation + data.test)
    assert "jane@example.com" not in texts
    assert "<EMAIL>" in texts
    assert "<CARD>" in texts


def test_prepare_is_deterministic(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", labeled("t"))
    prepare_dataset(train, out_dir=tmp_path / "a", seed=5)
    prepare_dataset(train, out_dir=tmp_path / "b", seed=5)
    for name in ("train.jsonl", "validation.jsonl", "test.jsonl", "labels.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_leaks_are_removed_from_train_never_from_test(tmp_path: Path) -> None:
    train_rows = labeled("x", per_label=10)
    test_rows = [
        {"text": "X billing question number 3.", "label": "billing"},  # same as a train row
        {"text": "x refund question number 4", "label": "billing"},  # same text, other label
        *[{"text": f"fresh {label}", "label": label} for label in LABELS],
    ]
    val_rows = [
        {"text": "fresh billing", "label": "billing"},  # also in test: dropped from validation
        {"text": "x order_status question number 5", "label": "order_status"},  # leak
        *[{"text": f"val {label}", "label": label} for label in LABELS],
    ]
    report = prepare_dataset(
        write_jsonl(tmp_path / "train.jsonl", train_rows),
        validation_path=write_jsonl(tmp_path / "val.jsonl", val_rows),
        test_path=write_jsonl(tmp_path / "test.jsonl", test_rows),
        out_dir=tmp_path / "out",
    )
    assert report.leaked == 4
    assert report.counts == {"train": 27, "validation": 4, "test": 5}
    assert report.split == {}
    data = load_prepared(tmp_path / "out")
    assert [ex.text for ex in data.test] == [row["text"] for row in test_rows]
    assert "fresh billing" not in {ex.text for ex in data.validation}
    train_texts = {ex.text for ex in data.train}
    assert "x billing question number 3" not in train_texts
    assert "x refund question number 4" not in train_texts
    assert "x order_status question number 5" not in train_texts


def test_only_test_file_splits_train_into_train_and_validation(tmp_path: Path) -> None:
    test_rows = [{"text": f"held out {label}", "label": label} for label in LABELS]
    report = prepare_dataset(
        write_jsonl(tmp_path / "train.jsonl", labeled("t", per_label=30)),
        test_path=write_jsonl(tmp_path / "test.jsonl", test_rows),
        out_dir=tmp_path / "out",
    )
    assert report.split == pytest.approx({"train": 8 / 9, "validation": 1 / 9})
    assert report.counts == {"train": 80, "validation": 10, "test": 3}


def test_only_validation_file_splits_train_into_train_and_test(tmp_path: Path) -> None:
    val_rows = [{"text": f"held out {label}", "label": label} for label in LABELS]
    report = prepare_dataset(
        write_jsonl(tmp_path / "train.jsonl", labeled("t", per_label=30)),
        validation_path=write_jsonl(tmp_path / "val.jsonl", val_rows),
        out_dir=tmp_path / "out",
        split=(0.7, 0.1, 0.2),
    )
    assert report.split == pytest.approx({"train": 7 / 9, "test": 2 / 9})
    assert report.counts["validation"] == 3


def test_unknown_label_in_test_data_is_an_error_at_file_line(tmp_path: Path) -> None:
    test_rows = [
        {"text": "fine", "label": "billing"},
        {"text": "what is this", "label": "shipping"},
    ]
    test = write_jsonl(tmp_path / "test.jsonl", test_rows)
    out = tmp_path / "out"
    with pytest.raises(DataError) as info:
        prepare_dataset(
            write_jsonl(tmp_path / "train.jsonl", labeled("t")), test_path=test, out_dir=out
        )
    error = info.value
    assert f"{test}:2" in str(error)
    assert (error.line, error.field) == (2, "label")
    assert "'shipping'" in str(error)
    assert "'billing'" in str(error)
    assert not out.exists()


def test_unlabeled_files_are_scrubbed_deduped_and_stripped_of_labels(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", labeled("t"))
    first = write_jsonl(
        tmp_path / "u1.jsonl",
        [
            {"text": "an unlabeled question"},
            {"text": "T billing question number 2"},  # already labeled: dropped
            {"text": "has a label", "label": "not_in_the_label_set"},
        ],
    )
    second = tmp_path / "u2.csv"
    second.write_text("text\nAn unlabeled question?\nmail x@y.org\n", encoding="utf-8")
    out = tmp_path / "out"
    report = prepare_dataset(train, out_dir=out, unlabeled_paths=[first, second])
    assert report.counts["unlabeled"] == 3
    assert report.duplicates == 2
    assert report.pii["email"] == 1
    assert report.inputs["unlabeled"] == [str(first), str(second)]
    unlabeled = load_examples(out / "unlabeled.jsonl", require_labels=False)
    assert [(ex.text, ex.label) for ex in unlabeled] == [
        ("an unlabeled question", None),
        ("has a label", None),
        ("mail <EMAIL>", None),
    ]
    assert len(load_prepared(out).unlabeled) == 3

    # a later run without unlabeled data must not leave the old file behind
    report = prepare_dataset(train, out_dir=out)
    assert "unlabeled" not in report.counts
    assert "unlabeled" not in report.files
    assert not (out / "unlabeled.jsonl").exists()
    assert load_prepared(out).unlabeled == []


def test_unlabeled_file_needs_no_labels_but_train_does(tmp_path: Path) -> None:
    unlabeled = write_jsonl(tmp_path / "u.jsonl", [{"text": "no label"}])
    with pytest.raises(DataError, match="unlabeled data") as info:
        prepare_dataset(unlabeled, out_dir=tmp_path / "out")
    assert f"{unlabeled}:1" in str(info.value)


def test_scrub_and_dedupe_can_be_turned_off(tmp_path: Path) -> None:
    rows = [*labeled("t"), *labeled("t", per_label=2), {"text": "a@b.io", "label": "refund"}]
    report = prepare_dataset(
        write_jsonl(tmp_path / "train.jsonl", rows),
        out_dir=tmp_path / "out",
        scrub=False,
        dedupe=False,
    )
    assert sum(report.counts.values()) == len(rows)
    assert report.duplicates == report.leaked == 0
    assert sum(report.pii.values()) == 0
    data = load_prepared(tmp_path / "out")
    assert "a@b.io" in {ex.text for ex in data.train + data.validation + data.test}


def test_weights_and_slices_survive(tmp_path: Path) -> None:
    rows = [{**row, "weight": 2.0, "slice": "web"} for row in labeled("t")]
    prepare_dataset(write_jsonl(tmp_path / "train.jsonl", rows), out_dir=tmp_path / "out")
    data = load_prepared(tmp_path / "out")
    assert {(ex.weight, ex.slice) for ex in data.train + data.test} == {(2.0, "web")}


def test_dataset_empty_after_cleaning(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": "...", "label": "a"}] * 3)
    with pytest.raises(DataError, match="no rows left after cleaning") as info:
        prepare_dataset(train, out_dir=tmp_path / "out")
    assert info.value.path == str(train)


def test_train_emptied_by_leaks(tmp_path: Path) -> None:
    rows = [{"text": "same", "label": "a"}]
    with pytest.raises(DataError, match="1 also in validation/test"):
        prepare_dataset(
            write_jsonl(tmp_path / "train.jsonl", rows),
            validation_path=write_jsonl(tmp_path / "val.jsonl", rows),
            test_path=write_jsonl(tmp_path / "test.jsonl", [{"text": "x", "label": "a"}]),
            out_dir=tmp_path / "out",
        )


def test_given_validation_emptied_by_test_overlap(tmp_path: Path) -> None:
    rows = [{"text": "same", "label": "a"}]
    val = write_jsonl(tmp_path / "val.jsonl", rows)
    with pytest.raises(DataError, match="no rows left") as info:
        prepare_dataset(
            write_jsonl(
                tmp_path / "train.jsonl",
                [{"text": "other", "label": "a"}, {"text": "more", "label": "b"}],
            ),
            validation_path=val,
            test_path=write_jsonl(tmp_path / "test.jsonl", rows),
            out_dir=tmp_path / "out",
        )
    assert info.value.path == str(val)


def test_too_few_rows_to_split(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", labeled("t", per_label=1))
    with pytest.raises(DataError, match="split is empty: 3 labeled rows are too few"):
        prepare_dataset(train, out_dir=tmp_path / "out")


@pytest.mark.parametrize(
    ("split", "needle"),
    [
        ((0.8, 0.2), "three fractions"),
        ((0.8, 0.1, -0.1), "three fractions"),
        ((0.8, 0.1, 0.2), "sum to 1"),
        ((0.9, 0.1, 0.0), "gives test a fraction of 0"),
    ],
)
def test_bad_split_is_a_config_error(tmp_path: Path, split: tuple[float, ...], needle: str) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", labeled("t"))
    with pytest.raises(ConfigError, match=needle):
        prepare_dataset(train, out_dir=tmp_path / "out", split=split)


def test_zero_fraction_is_fine_when_that_split_is_given(tmp_path: Path) -> None:
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": "held", "label": "billing"}])
    report = prepare_dataset(
        write_jsonl(tmp_path / "train.jsonl", labeled("t")),
        test_path=test,
        out_dir=tmp_path / "out",
        split=(0.9, 0.1, 0.0),
    )
    assert report.counts["test"] == 1


def test_failed_write_leaves_no_temp_files_and_no_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", labeled("t"))
    out = tmp_path / "out"
    prepare_dataset(train, out_dir=out)
    real = prepare_module.write_examples

    def rows_then_fail(examples):
        yield from list(examples)[:1]
        raise OSError("disk full")

    def failing(path, examples):
        if Path(path).name == "validation.jsonl":
            examples = rows_then_fail(examples)
        real(path, examples)

    monkeypatch.setattr(prepare_module, "write_examples", failing)
    with pytest.raises(OSError, match="disk full"):
        prepare_dataset(train, out_dir=out)
    assert leftovers(tmp_path) == []
    assert not (out / "prepare_report.json").exists()  # the old report no longer vouches
    assert len(load_examples(out / "validation.jsonl")) == 6  # old file intact


@pytest.mark.parametrize("missing", ["train.jsonl", "test.jsonl", "labels.json"])
def test_load_prepared_names_the_missing_file(tmp_path: Path, missing: str) -> None:
    out = tmp_path / "out"
    prepare_dataset(write_jsonl(tmp_path / "train.jsonl", labeled("t")), out_dir=out)
    (out / missing).unlink()
    with pytest.raises(DataError) as info:
        load_prepared(out)
    assert info.value.path == str(out / missing)
    assert "kdedge prepare" in str(info.value)


def test_load_prepared_of_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="kdedge prepare"):
        load_prepared(tmp_path / "nowhere")


def test_load_prepared_rejects_hand_edited_labels(tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_dataset(write_jsonl(tmp_path / "train.jsonl", labeled("t")), out_dir=out)
    with (out / "test.jsonl").open("a") as handle:
        handle.write(json.dumps({"text": "new", "label": "shipping"}) + "\n")
    with pytest.raises(DataError) as info:
        load_prepared(out)
    assert f"{out / 'test.jsonl'}:7" in str(info.value)


def test_one_label_is_refused(tmp_path: Path) -> None:
    rows = [{"text": f"where is order {i}", "label": "order"} for i in range(20)]
    with pytest.raises(DataError, match="needs at least 2 labels"):
        prepare_dataset(write_jsonl(tmp_path / "train.jsonl", rows), out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_prepared_folder_with_one_label_is_refused(tmp_path: Path) -> None:
    from kdedge.data.prepare import load_prepared

    rows = [{"text": "where is my order", "label": "order"}]
    for split in ("train", "validation", "test"):
        write_jsonl(tmp_path / f"{split}.jsonl", rows)
    (tmp_path / "labels.json").write_text('{"labels": ["order"]}')
    with pytest.raises(DataError, match="needs at least 2 labels"):  # what teach/distill read
        load_prepared(tmp_path)
