"""``prepare``: raw labeled/unlabeled files in, clean leak-free splits and a report out.

Output directory layout (all written atomically, the report last)::

    train.jsonl  validation.jsonl  test.jsonl  [unlabeled.jsonl]  labels.json
    prepare_report.json
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from kdedge.atomic import atomic_write_text
from kdedge.data.clean import PII_KINDS, normalize_text, scrub_pii
from kdedge.data.clean import dedupe as dedupe_examples
from kdedge.data.io import check_labels, load_examples, write_examples
from kdedge.data.labels import LABELS_FILE, LabelSet
from kdedge.data.records import Example
from kdedge.data.split import stratified_split
from kdedge.errors import ConfigError, DataError

SPLITS = ("train", "validation", "test")
UNLABELED = "unlabeled"
REPORT_FILE = "prepare_report.json"


def split_file(name: str) -> str:
    """File name of split ``name`` inside a prepared directory, e.g. ``train.jsonl``."""
    return f"{name}.jsonl"


@dataclass(frozen=True)
class PrepareReport:
    """What :func:`prepare_dataset` read, removed and wrote."""

    out_dir: str
    files: dict[str, str]  # "train", "validation", "test", ["unlabeled"], "labels", "report"
    labels: tuple[str, ...]
    counts: dict[str, int]  # rows per split, "unlabeled" included
    label_counts: dict[str, dict[str, int]]  # split -> label -> rows (zeros included)
    duplicates: int  # duplicate rows removed (within a file, and unlabeled rows seen labeled)
    conflicts: int  # removed duplicates whose label differed from the kept row's
    empty: int  # rows whose text was empty once normalised
    leaked: int  # rows removed because their text is in a held-out split (test wins)
    pii: dict[str, int]  # placeholders inserted, per kind
    inputs: dict[str, list[str]] = field(default_factory=dict)
    split: dict[str, float] = field(default_factory=dict)  # fractions used to split train
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        data = asdict(self)
        data["labels"] = list(self.labels)
        return data


@dataclass(frozen=True)
class PreparedData:
    """A prepared directory read back: three labeled splits, unlabeled rows, the labels."""

    train: list[Example]
    validation: list[Example]
    test: list[Example]
    unlabeled: list[Example]
    labels: LabelSet

    def all_texts(self) -> list[str]:
        """Every text of every split: what `kdedge label` caches, so that any later
        `distill` on this data finds all of its teacher logits in the cache."""
        return [e.text for e in (*self.train, *self.unlabeled, *self.validation, *self.test)]


@dataclass
class _Tally:
    duplicates: int = 0
    conflicts: int = 0
    empty: int = 0
    leaked: int = 0
    pii: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PII_KINDS, 0))


def prepare_dataset(
    train_path: str | Path,
    *,
    out_dir: str | Path,
    validation_path: str | Path | None = None,
    test_path: str | Path | None = None,
    unlabeled_paths: Iterable[str | Path] = (),
    split: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    scrub: bool = True,
    dedupe: bool = True,
) -> PrepareReport:
    """Load, scrub, dedupe, leak-check and split the data; write it to ``out_dir``.

    ``split`` is the (train, validation, test) fractions used for the splits not given as
    files; with only a test file, train is cut into train/validation in the ratio of the
    first two. Rows of validation/test whose normalised text is also in train are removed
    from train (and validation rows also in test from validation): held-out data wins.
    Unlabeled files lose their labels and any row already present in the labeled data.
    """
    fractions = _fractions(split, validation_path is not None, test_path is not None)
    unlabeled_paths = list(unlabeled_paths)
    tally = _Tally()
    given = {"train": train_path, "validation": validation_path, "test": test_path}
    data = {
        name: _clean(load_examples(path), tally, scrub=scrub, dedupe=dedupe)
        for name, path in given.items()
        if path is not None
    }
    if dedupe:
        _remove_leaks(data, tally)
    if not data["train"]:
        raise DataError(
            f"no rows left after cleaning ({tally.duplicates} duplicates, {tally.empty} with "
            f"empty text, {tally.leaked} also in validation/test). Fix: add training rows",
            path=train_path,
        )
    labels = LabelSet.from_labels(example.label for example in data["train"])
    _two_labels(labels, train_path)
    for name in ("validation", "test"):
        if name in data:
            check_labels(data[name], labels)
    if fractions:
        data.update(stratified_split(data.pop("train"), fractions, seed))
    for name in SPLITS:
        if data[name]:
            continue
        if given[name] is not None:
            raise DataError(
                "no rows left after cleaning (duplicates, empty text, or rows also in the "
                "test data). Fix: add rows to this file",
                path=given[name],
            )
        total = sum(len(rows) for rows in data.values())
        raise DataError(
            f"the {name} split is empty: {total} labeled rows are too few to split "
            f"{_show(fractions)}. Fix: add rows, or pass a {name} file",
            path=train_path,
        )

    unlabeled = _load_unlabeled(unlabeled_paths, data, tally, scrub=scrub, dedupe=dedupe)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / REPORT_FILE
    report_path.unlink(missing_ok=True)  # a stale report must not vouch for new files
    files: dict[str, str] = {}
    for name in SPLITS:
        write_examples(out / split_file(name), data[name])
        files[name] = str(out / split_file(name))
    if unlabeled:
        write_examples(out / split_file(UNLABELED), unlabeled)
        files[UNLABELED] = str(out / split_file(UNLABELED))
    else:
        (out / split_file(UNLABELED)).unlink(missing_ok=True)  # stale from an earlier run
    files["labels"] = str(labels.save(out))
    files["report"] = str(report_path)

    counts = {name: len(data[name]) for name in SPLITS}
    if unlabeled:
        counts[UNLABELED] = len(unlabeled)
    report = PrepareReport(
        out_dir=str(out),
        files=files,
        labels=labels.names,
        counts=counts,
        label_counts={name: _label_counts(data[name], labels) for name in SPLITS},
        duplicates=tally.duplicates,
        conflicts=tally.conflicts,
        empty=tally.empty,
        leaked=tally.leaked,
        pii=dict(tally.pii),
        inputs={
            "train": [str(train_path)],
            "validation": [str(validation_path)] if validation_path is not None else [],
            "test": [str(test_path)] if test_path is not None else [],
            UNLABELED: [str(path) for path in unlabeled_paths],
        },
        split=dict(fractions),
        seed=seed,
    )
    atomic_write_text(report_path, json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _two_labels(labels: LabelSet, where: Path) -> None:
    """A classifier needs at least 2 labels: with one, every answer is 100% confident."""
    if len(labels) < 2:
        raise DataError(
            f"the training data has only the label {labels.names[0]!r}; a classifier needs at "
            "least 2 labels (with one, every prediction is 100% confident). Fix: add rows of "
            "the other intents",
            path=where,
            field="label",
        )


def load_prepared(out_dir: str | Path) -> PreparedData:
    """Read a directory written by :func:`prepare_dataset`; labels are checked per split."""
    out = Path(out_dir)
    if not out.is_dir():
        raise DataError(
            "no prepared dataset here (not a directory). Fix: run `kdedge prepare` with this "
            "output directory first",
            path=out,
        )
    for name in (*(split_file(split) for split in SPLITS), LABELS_FILE):
        if not (out / name).is_file():
            raise DataError(
                f"{name} is missing: {out} is not a complete prepared dataset. Fix: run "
                "`kdedge prepare` into this directory again",
                path=out / name,
            )
    labels = LabelSet.load(out)
    _two_labels(labels, out / LABELS_FILE)
    splits = {name: load_examples(out / split_file(name)) for name in SPLITS}
    for rows in splits.values():
        check_labels(rows, labels)
    unlabeled_path = out / split_file(UNLABELED)
    unlabeled = (
        load_examples(unlabeled_path, require_labels=False) if unlabeled_path.is_file() else []
    )
    return PreparedData(**splits, unlabeled=unlabeled, labels=labels)


def _fractions(split: Sequence[float], has_validation: bool, has_test: bool) -> dict[str, float]:
    """The fractions to cut train into, renormalised; empty when nothing is to be split."""
    values = list(split)
    if len(values) != 3 or not all(
        isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in values
    ):
        raise ConfigError(
            f"split must be three fractions >= 0 (train, validation, test), got {values!r}. "
            "Fix: e.g. (0.8, 0.1, 0.1)"
        )
    if abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(
            f"split fractions must sum to 1, got {sum(values):.6g} ({values!r}). "
            "Fix: e.g. (0.8, 0.1, 0.1)"
        )
    wanted = dict(zip(SPLITS, values, strict=True))
    if has_validation:
        del wanted["validation"]
    if has_test:
        del wanted["test"]
    if len(wanted) == 1:
        return {}
    for name, value in wanted.items():
        if value <= 0:
            raise ConfigError(
                f"split gives {name} a fraction of 0 and no {name} file was given. Fix: give "
                f"{name} a fraction > 0, or pass a {name} file"
            )
    total = sum(wanted.values())
    return {name: value / total for name, value in wanted.items()}


def _clean(examples: list[Example], tally: _Tally, *, scrub: bool, dedupe: bool) -> list[Example]:
    if scrub:
        scrubbed = scrub_pii(examples)
        examples = scrubbed.examples
        for kind, count in scrubbed.counts.items():
            tally.pii[kind] += count
    if dedupe:
        result = dedupe_examples(examples)
        examples = result.examples
        tally.duplicates += result.removed
        tally.conflicts += result.conflicts
        tally.empty += result.empty
    return examples


def _load_unlabeled(
    paths: list[str | Path],
    labeled: dict[str, list[Example]],
    tally: _Tally,
    *,
    scrub: bool,
    dedupe: bool,
) -> list[Example]:
    """Unlabeled rows, labels dropped, cleaned, minus any text already in ``labeled``."""
    rows: list[Example] = []
    for path in paths:
        rows.extend(replace(ex, label=None) for ex in load_examples(path, require_labels=False))
    rows = _clean(rows, tally, scrub=scrub, dedupe=dedupe)
    if dedupe:
        seen = {normalize_text(ex.text) for split in labeled.values() for ex in split}
        kept = [ex for ex in rows if normalize_text(ex.text) not in seen]
        tally.duplicates += len(rows) - len(kept)
        rows = kept
    return rows


def _remove_leaks(data: dict[str, list[Example]], tally: _Tally) -> None:
    """Drop rows whose text is in a more held-out split: test beats validation beats train."""
    held: set[str] = set()
    for name in ("test", "validation", "train"):
        if name not in data:
            continue
        kept = [ex for ex in data[name] if normalize_text(ex.text) not in held]
        tally.leaked += len(data[name]) - len(kept)
        data[name] = kept
        held.update(normalize_text(ex.text) for ex in kept)


def _label_counts(examples: Sequence[Example], labels: LabelSet) -> dict[str, int]:
    counts = dict.fromkeys(labels.names, 0)
    for example in examples:
        if example.label is not None:
            counts[example.label] = counts.get(example.label, 0) + 1
    return counts


def _show(fractions: dict[str, float]) -> str:
    if not fractions:
        return "(no split)"
    return " / ".join(f"{name} {value:.2g}" for name, value in fractions.items())
