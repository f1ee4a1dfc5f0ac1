"""Content-addressed cache of teacher logits, so experiments pay only for the student.

Key = sha256(teacher fingerprint, tokenizer fingerprint, max length, text). Values are
float32 logit vectors with their own sha256, checked on every read. Storage is one SQLite
file: each batch is committed as one transaction, so a killed labeling job loses at most
the batch in flight and resumes where it stopped. (SQLite is in the standard library and
gives atomic, concurrent-reader-safe writes; no cache library does content addressing
with verification for us.)
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdedge.errors import ConfigError, ModelError

CACHE_FILE = "teacher_logits.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS logits (
    key TEXT PRIMARY KEY,
    teacher TEXT NOT NULL,
    num_labels INTEGER NOT NULL,
    value BLOB NOT NULL,
    checksum TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('schema', '1');
"""


@dataclass(frozen=True)
class TeacherKey:
    """What makes two teacher outputs interchangeable."""

    teacher: str  # model fingerprint
    tokenizer: str  # tokenizer fingerprint
    max_length: int

    def for_text(self, text: str) -> str:
        payload = f"{self.teacher}\0{self.tokenizer}\0{self.max_length}\0{text}"
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class LogitCache:
    """A persistent ``text -> logits`` map per teacher. Use as a context manager."""

    def __init__(self, directory: str | Path) -> None:
        given = Path(directory)
        if given.name == CACHE_FILE:  # the cache file itself, as `ls` shows it: fine too
            given = given.parent
        elif given.is_file():
            raise ConfigError(
                f"teacher cache {given} is a file, not a cache folder. "
                f"Fix: pass the folder that holds (or will hold) {CACHE_FILE}"
            )
        self.path = given / CACHE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path)
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ModelError(
                f"teacher-label cache {self.path} is not a readable SQLite file ({exc}). "
                "Fix: delete it; the next `kdedge label` rebuilds it"
            ) from exc

    def __enter__(self) -> LogitCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def get_many(self, keys: Sequence[str], num_labels: int) -> dict[str, np.ndarray]:
        """Cached logits for the keys present; corrupted rows raise :class:`ModelError`."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):  # SQLite caps the number of parameters
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, num_labels, value, checksum FROM logits WHERE key IN ({marks})", chunk
            )
            for key, n, blob, checksum in rows:
                if hashlib.sha256(blob).hexdigest() != checksum or n != num_labels:
                    raise ModelError(
                        f"teacher-label cache {self.path}: entry {key[:12]} is corrupted "
                        f"(checksum or shape mismatch). Fix: `kdedge label --refresh` "
                        "or delete the cache file"
                    )
                found[key] = np.frombuffer(blob, dtype=np.float32).copy()
        return found

    def put_many(self, teacher: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Store logits in one transaction."""
        rows = []
        for key, logits in items:
            blob = np.ascontiguousarray(logits, dtype=np.float32).tobytes()
            rows.append(
                (key, teacher, int(logits.shape[-1]), blob, hashlib.sha256(blob).hexdigest())
            )
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO logits VALUES (?, ?, ?, ?, ?)", rows)

    def record_cost(self, teacher: str, seconds: float, texts: int) -> None:
        """Add a labeling pass's wall time to the teacher's running cost per text."""
        total_s, total_n = self._cost_totals(teacher)
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                (f"cost:{teacher}", f"{total_s + seconds} {total_n + texts}"),
            )

    def seconds_per_text(self, teacher: str) -> float | None:
        """Measured teacher seconds per text (all passes so far), or None if never measured."""
        total_s, total_n = self._cost_totals(teacher)
        return total_s / total_n if total_n else None

    def _cost_totals(self, teacher: str) -> tuple[float, int]:
        row = self._db.execute(
            "SELECT value FROM meta WHERE name = ?", (f"cost:{teacher}",)
        ).fetchone()
        if row is None:
            return 0.0, 0
        seconds, texts = row[0].split()
        return float(seconds), int(texts)

    def delete_teacher(self, teacher: str) -> int:
        with self._db:
            return self._db.execute("DELETE FROM logits WHERE teacher = ?", (teacher,)).rowcount

    def count(self, teacher: str | None = None) -> int:
        if teacher is None:
            return self._db.execute("SELECT COUNT(*) FROM logits").fetchone()[0]
        return self._db.execute(
            "SELECT COUNT(*) FROM logits WHERE teacher = ?", (teacher,)
        ).fetchone()[0]


def open_as_writer(
    stack: contextlib.ExitStack,
    directory: str | Path,
    teacher: str,
    keys: Sequence[str],
    width: int,
    *,
    main: bool,
    refresh: bool = False,
) -> tuple[LogitCache | None, dict[str, np.ndarray]]:
    """The cache in ``directory`` held open by ``stack`` and the rows it has for ``keys``,
    on the one process that writes it (``main``: rank 0 of a multi-process run); ``(None,
    {})`` on the others, which only compute and send. ``refresh`` first drops ``teacher``'s
    rows."""
    if not main:
        return None, {}
    cache = stack.enter_context(LogitCache(directory))
    if refresh:
        cache.delete_teacher(teacher)
    return cache, cache.get_many(keys, width)
