"""Seeded, label-stratified train/validation/test splits that survive tiny classes."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

from kdedge.data.io import clip, parse_source
from kdedge.data.records import Example
from kdedge.errors import ConfigError, DataError


def check_fractions(fractions: Mapping[str, float]) -> None:
    """Raise :class:`ConfigError` unless every fraction is > 0 and they sum to 1 (±1e-6)."""
    if not fractions:
        raise ConfigError("split fractions are empty. Fix: e.g. train=0.8 validation=0.1 test=0.1")
    for name, value in fractions.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ConfigError(
                f"split fraction {name}={clip(value)} must be a number > 0. "
                "Fix: e.g. train=0.8 validation=0.1 test=0.1"
            )
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        shown = ", ".join(f"{name}={value:g}" for name, value in fractions.items())
        raise ConfigError(
            f"split fractions must sum to 1, got {total:.6g} ({shown}). "
            "Fix: e.g. train=0.8 validation=0.1 test=0.1"
        )


def stratified_split(
    examples: Sequence[Example], fractions: Mapping[str, float], seed: int
) -> dict[str, list[Example]]:
    """Split labeled ``examples`` into ``fractions`` (e.g. train/validation/test), per label.

    Deterministic for a given ``seed``. Each class is shuffled and cut by largest remainder,
    so every split gets its share of every class that is big enough; leftover rows go where
    the global split sizes are furthest below target. The anchor split (``"train"`` when
    present, else the first) keeps at least one row of every class, so a class of one row
    lands in train. Rows keep their input order within each split.
    """
    check_fractions(fractions)
    names = list(fractions)
    by_label: dict[str, list[int]] = {}
    for i, example in enumerate(examples):
        if example.label is None:
            path, line = parse_source(example.source)
            raise DataError(
                f"cannot stratify an unlabeled row ({clip(example.text)}). Fix: give every "
                "row a label, or pass unlabeled rows as unlabeled data",
                path=path,
                line=line,
                field="label",
            )
        by_label.setdefault(example.label, []).append(i)

    # Done by hand rather than with scikit-learn: this is short, and sklearn's stratified
    # splitters raise on classes with fewer members than splits, which real data has.
    rng = random.Random(seed)
    alloc = _allocate({label: len(rows) for label, rows in by_label.items()}, fractions, rng)
    parts: dict[str, list[int]] = {name: [] for name in names}
    for label in sorted(by_label):
        rows = list(by_label[label])
        random.Random(f"{seed}/{label}").shuffle(rows)  # per-class stream: stable if classes change
        start = 0
        for name in names:
            count = alloc[label][name]
            parts[name].extend(rows[start : start + count])
            start += count
    return {name: [examples[i] for i in sorted(parts[name])] for name in names}


def _allocate(
    sizes: Mapping[str, int], fractions: Mapping[str, float], rng: random.Random
) -> dict[str, dict[str, int]]:
    """Rows per (class, split): per-class floors, then leftovers by largest remainder."""
    names = list(fractions)
    anchor = "train" if "train" in fractions else names[0]
    total = sum(sizes.values())
    targets = _largest_remainder(total, fractions)
    alloc = {
        label: {n: _floor(size * fractions[n]) for n in names} for label, size in sizes.items()
    }
    left = {label: size - sum(alloc[label].values()) for label, size in sizes.items()}
    placed = {n: sum(alloc[label][n] for label in sizes) for n in names}

    # Biggest remainder first; on a tie, a split that has no row of the class yet wins (so
    # small classes reach validation/test when they can), then the seed decides, so that no
    # split systematically loses the small classes.
    candidates = sorted(
        (
            round(_floor(size * fractions[n]) - size * fractions[n], 9),
            alloc[label][n] > 0,
            rng.random(),
            label,
            n,
        )
        for label, size in sorted(sizes.items())
        for n in names
    )
    for *_, label, name in candidates:
        if left[label] > 0 and placed[name] < targets[name]:
            alloc[label][name] += 1
            left[label] -= 1
            placed[name] += 1
    for *_, label, name in candidates:  # rounding can leave a few rows: biggest remainder
        if left[label] > 0:
            alloc[label][name] += 1
            left[label] -= 1

    for label, counts in alloc.items():  # every class keeps a row in the anchor split
        if counts[anchor] == 0 and sizes[label] > 0:
            donor = max((n for n in names if n != anchor), key=lambda n: counts[n])
            counts[donor] -= 1
            counts[anchor] += 1
    return alloc


def _largest_remainder(total: int, fractions: Mapping[str, float]) -> dict[str, int]:
    exact = {name: total * value for name, value in fractions.items()}
    counts = {name: _floor(value) for name, value in exact.items()}
    order = sorted(exact, key=lambda name: -(exact[name] - counts[name]))
    for name in order[: total - sum(counts.values())]:
        counts[name] += 1
    return counts


def _floor(value: float) -> int:
    return math.floor(value + 1e-9)  # 100 * 0.29 is 28.999999999999996, meant as 29
