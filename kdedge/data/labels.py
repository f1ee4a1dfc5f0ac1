"""The ordered label list that travels with every model (``labels.json``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kdedge.atomic import atomic_write_text
from kdedge.errors import DataError, ModelError

LABELS_FILE = "labels.json"


@dataclass(frozen=True)
class LabelSet:
    """Class names in index order. Index ``i`` of every logit vector is ``names[i]``."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.names:
            raise DataError("the label set is empty: the data has no labeled rows")
        if len(set(self.names)) != len(self.names):
            raise DataError(f"duplicate labels in label set: {list(self.names)}")

    @classmethod
    def from_labels(cls, labels: Iterable[str | None]) -> LabelSet:
        """Sorted unique non-empty labels; sorting makes the order reproducible."""
        return cls(tuple(sorted({lab for lab in labels if lab})))

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    @property
    def _index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise DataError(
                f"unknown label '{name}'; the model knows {len(self.names)} labels: "
                f"{', '.join(self.names[:12])}{' ...' if len(self.names) > 12 else ''}"
            ) from None

    def indices(self, names: Sequence[str]) -> list[int]:
        lookup = self._index
        return [lookup[n] if n in lookup else self.index(n) for n in names]

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / LABELS_FILE
        atomic_write_text(path, json.dumps({"labels": list(self.names)}, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> LabelSet:
        path = Path(directory) / LABELS_FILE
        if not path.is_file():
            raise ModelError(f"{path} is missing: every kdedge model directory carries its labels")
        try:
            names = json.loads(path.read_text(encoding="utf-8"))["labels"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            msg = f"{path} is corrupted ({exc}); re-run the stage that wrote it"
            raise ModelError(msg) from exc
        return cls(tuple(names))
