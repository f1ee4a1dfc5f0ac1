"""The store catalog: records loaded from JSONL, evidence lines for prompts, title retrieval.

One JSON object per line::

    {"id": "nana", "title": "Nana", "author": "Ai Yazawa", "volumes": 21,
     "formats": ["paperback"], "availability": {"paperback": "in_stock"},
     "price_usd": {"paperback": 9.99}, "genre": "josei", "age_rating": "16+",
     "aliases": ["NANA"]}

``genre``, ``age_rating`` and ``aliases`` are optional. ``formats`` lists every format the
store offers, so a format that is not listed is a format the store does not sell.

Retrieval matches titles, not topics: a question gets the records whose title, alias or
author name it contains, fuzzily. Every run of up to a name's length in words of the
normalised question is compared with every name by cosine similarity of scikit-learn's
character n-gram TF-IDF vectors (exact and partial titles, case, punctuation, accents and
small spelling slips all land close); a record counts when its best score reaches
``min_score``, so a question that names no catalog title gets no evidence.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdedge.data.io import read_jsonl
from kdedge.errors import DataError, MissingDependencyError

FORMATS = ("paperback", "hardcover", "digital", "box set")
AVAILABILITY = ("in_stock", "out_of_stock", "preorder")
RETRIEVE_MIN_SCORE = 0.75
AUTHOR_FACTOR = 0.9  # an author's name ranks below a title match of the same quality
_WORDS = re.compile(r"[a-z0-9]+")
_EVIDENCE_ID = re.compile(r"^\s*(?:[-*]\s*)?\[([^\]\s]+)\]")


def normalize(text: str) -> str:
    """Lower-case ASCII words: accents stripped, '&' read as 'and', apostrophes dropped."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = text.replace("&", " and ").replace("'", "").replace("\u2019", "")
    return " ".join(_WORDS.findall(text))


@dataclass(frozen=True)
class Offer:
    """One format of a title: whether it can be bought now and what one volume costs."""

    format: str
    availability: str
    price_usd: float


@dataclass(frozen=True)
class Record:
    """One catalog title. ``offers`` holds every format the store sells, in ``FORMATS`` order."""

    id: str
    title: str
    author: str
    volumes: int
    offers: tuple[Offer, ...]
    genre: str | None = None
    age_rating: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def formats(self) -> tuple[str, ...]:
        return tuple(o.format for o in self.offers)

    @property
    def availability(self) -> dict[str, str]:
        return {o.format: o.availability for o in self.offers}

    @property
    def price_usd(self) -> dict[str, float]:
        return {o.format: o.price_usd for o in self.offers}

    def offer(self, fmt: str) -> Offer | None:
        """The offer for ``fmt``, or None when the store does not sell that format."""
        return next((o for o in self.offers if o.format == fmt), None)

    @property
    def names(self) -> tuple[str, ...]:
        """Title, aliases and the part of the title before a colon ("Frieren" for "Frieren:
        Beyond Journey's End"), without duplicates."""
        names = [self.title, *self.aliases]
        head = self.title.split(":", 1)[0]
        if head != self.title and len(normalize(head)) >= 3:
            names.append(head)
        seen: dict[str, str] = {}
        for name in names:
            seen.setdefault(normalize(name), name)
        return tuple(seen.values())

    def evidence_line(self) -> str:
        """Every fact on one line, led by the id in brackets (how evidence is parsed back)."""
        parts = [f"[{self.id}] {self.title} by {self.author}", volumes_phrase(self.volumes)]
        about = ", ".join(
            x for x in (self.genre, self.age_rating and f"ages {self.age_rating}") if x
        )
        if about:
            parts.append(about)
        for o in self.offers:
            parts.append(f"{o.format}: {o.availability.replace('_', ' ')}, ${o.price_usd:.2f}")
        missing = [f for f in FORMATS if f not in self.formats]
        if missing:
            parts.append("not offered: " + ", ".join(missing))
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "author": self.author,
            "volumes": self.volumes,
            "formats": list(self.formats),
            "availability": self.availability,
            "price_usd": self.price_usd,
        }
        if self.genre is not None:
            row["genre"] = self.genre
        if self.age_rating is not None:
            row["age_rating"] = self.age_rating
        if self.aliases:
            row["aliases"] = list(self.aliases)
        return row


def volumes_phrase(n: int) -> str:
    """'1 volume', '21 volumes'."""
    return "1 volume" if n == 1 else f"{n} volumes"


class Catalog:
    """Records by id, with title lookup and retrieval of the records a text names."""

    def __init__(self, records: Iterable[Record], path: str | Path | None = None) -> None:
        self.records: tuple[Record, ...] = tuple(records)
        self.path = Path(path) if path is not None else None
        self._by_id = {r.id: r for r in self.records}
        if len(self._by_id) != len(self.records):
            raise DataError(
                "duplicate record ids in the catalog. Fix: give every record its own id"
            )
        self._index: _NameIndex | None = None

    @classmethod
    def load(cls, path: str | Path) -> Catalog:
        """Read a JSONL catalog; any bad line raises :class:`DataError` naming file and line."""
        path = Path(path)
        if not path.is_file():
            raise DataError(
                "catalog file not found. Fix: pass the path of a .jsonl catalog", path=path
            )
        records: list[Record] = []
        first_line: dict[str, int] = {}
        titles: dict[str, int] = {}
        for number, data in read_jsonl(path):
            record = _parse_record(data, path, number)
            if record.id in first_line:
                raise DataError(
                    f"duplicate id {record.id!r} (first on line {first_line[record.id]}). "
                    "Fix: give every record its own id",
                    path=path,
                    line=number,
                    field="id",
                )
            key = normalize(record.title)
            if key in titles:
                raise DataError(
                    f"title {record.title!r} repeats the title on line {titles[key]}. "
                    "Fix: merge the two records or tell the titles apart",
                    path=path,
                    line=number,
                    field="title",
                )
            first_line[record.id] = number
            titles[key] = number
            records.append(record)
        if not records:
            raise DataError(
                "the catalog has no records. Fix: add one JSON object per line", path=path
            )
        return cls(records, path)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._by_id

    def get(self, record_id: str) -> Record | None:
        return self._by_id.get(record_id)

    def __getitem__(self, record_id: str) -> Record:
        try:
            return self._by_id[record_id]
        except KeyError:
            raise KeyError(f"no catalog record with id {record_id!r}") from None

    def find(self, title: str, min_score: float = 0.85) -> Record | None:
        """The record whose title or alias is ``title`` (normalised), else the closest one
        scoring at least ``min_score``, else None."""
        key = normalize(title)
        for record in self.records:
            if any(normalize(n) == key for n in record.names):
                return record
        scored = self.scored(title, k=1, min_score=min_score, authors=False)
        return scored[0][0] if scored else None

    def retrieve(
        self, text: str, k: int = 3, min_score: float = RETRIEVE_MIN_SCORE
    ) -> list[Record]:
        """Up to ``k`` records that ``text`` names (title, alias or author), best first."""
        return [record for record, _ in self.scored(text, k=k, min_score=min_score)]

    def scored(
        self,
        text: str,
        k: int = 3,
        min_score: float = RETRIEVE_MIN_SCORE,
        authors: bool = True,
    ) -> list[tuple[Record, float]]:
        """:meth:`retrieve` with the scores; ties go to the longer matched name."""
        if self._index is None:
            self._index = _NameIndex(self.records)
        return self._index.search(text, k, min_score, authors)

    def resolve_evidence(self, items: Sequence[str | Record]) -> list[Record]:
        """Records for evidence given as records, ids, or evidence lines (``[id] ...``).

        A line without a known id falls back to the best title match in its text.
        """
        out: list[Record] = []
        for item in items:
            record: Record | None
            if isinstance(item, Record):
                record = item
            elif item in self._by_id:
                record = self._by_id[item]
            else:
                match = _EVIDENCE_ID.match(item)
                record = self._by_id.get(match.group(1)) if match else None
                if record is None:
                    found = self.retrieve(item, k=1)
                    record = found[0] if found else None
            if record is not None and record not in out:
                out.append(record)
        return out


class _NameIndex:
    """Character n-gram TF-IDF vectors of every title, alias and author name."""

    def __init__(self, records: Sequence[Record]) -> None:
        try:
            from sklearn.feature_extraction.text import TfidfVectorizer
        except ImportError as exc:  # pragma: no cover - sklearn is in the train extra
            raise MissingDependencyError("scikit-learn", "train", "Catalog retrieval") from exc
        self.records = records
        names: list[str] = []
        owners: list[int] = []
        factors: list[float] = []
        for i, record in enumerate(records):
            for name in record.names:
                names.append(normalize(name))
                owners.append(i)
                factors.append(1.0)
            author = normalize(record.author)
            if len(author) >= 5 and " " in author:  # "ONE" or "CLAMP" would match common words
                names.append(author)
                owners.append(i)
                factors.append(AUTHOR_FACTOR)
        self.names = names
        self.owners = owners
        self.factors = factors
        self.max_words = max(len(n.split()) for n in names)
        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
        self.matrix = self.vectorizer.fit_transform(names)

    def search(
        self, text: str, k: int, min_score: float, authors: bool
    ) -> list[tuple[Record, float]]:
        words = normalize(text).split()
        if not words or k < 1:
            return []
        windows = sorted(
            {
                " ".join(words[i : i + n])
                for n in range(1, min(self.max_words + 1, len(words)) + 1)
                for i in range(len(words) - n + 1)
            }
        )
        sims = (self.vectorizer.transform(windows) @ self.matrix.T).toarray().max(axis=0)
        best: dict[int, tuple[float, int]] = {}
        for j, sim in enumerate(sims):
            if not authors and self.factors[j] != 1.0:
                continue
            score = float(min(sim, 1.0)) * self.factors[j]
            owner = self.owners[j]
            key = (round(score, 6), len(self.names[j]))
            if score >= min_score and (owner not in best or key > best[owner]):
                best[owner] = key
        ranked = sorted(best.items(), key=lambda item: (-item[1][0], -item[1][1], item[0]))
        return [(self.records[i], score) for i, (score, _) in ranked[:k]]


def _parse_record(data: Any, path: Path, line: int) -> Record:
    def fail(message: str, field: str | None = None) -> DataError:
        return DataError(message, path=path, line=line, field=field)

    for name in ("id", "title", "author"):
        value = data.get(name)
        if not isinstance(value, str) or not value.strip():
            raise fail(f"must be a non-empty string, got {value!r}. Fix: set it", name)
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*", data["id"]):
        raise fail(
            f"{data['id']!r} is not a valid id. Fix: letters, digits, '-', '_' or '.' only", "id"
        )
    volumes = data.get("volumes")
    if not isinstance(volumes, int) or isinstance(volumes, bool) or volumes < 1:
        raise fail(f"must be a whole number of at least 1, got {volumes!r}", "volumes")
    formats = data.get("formats")
    if not isinstance(formats, list) or not formats:
        raise fail(f"must be a non-empty list of {', '.join(FORMATS)}; got {formats!r}", "formats")
    for fmt in formats:
        if fmt not in FORMATS:
            raise fail(f"unknown format {fmt!r}. Fix: use one of {', '.join(FORMATS)}", "formats")
    if len(set(formats)) != len(formats):
        raise fail(f"lists a format twice: {formats!r}", "formats")
    availability = data.get("availability")
    prices = data.get("price_usd")
    for field, table in (("availability", availability), ("price_usd", prices)):
        if not isinstance(table, dict) or set(table) != set(formats):
            keys = sorted(table) if isinstance(table, dict) else table
            raise fail(
                f"must map exactly the listed formats {formats} to values, got {keys!r}. "
                "Fix: one entry per format",
                field,
            )
    offers = []
    for fmt in sorted(formats, key=FORMATS.index):
        status = availability[fmt]  # type: ignore[index]
        if status not in AVAILABILITY:
            raise fail(
                f"{fmt}: unknown availability {status!r}. "
                f"Fix: use one of {', '.join(AVAILABILITY)}",
                "availability",
            )
        price = prices[fmt]  # type: ignore[index]
        if not isinstance(price, (int, float)) or isinstance(price, bool) or not price > 0:
            raise fail(f"{fmt}: price must be a positive number, got {price!r}", "price_usd")
        offers.append(Offer(fmt, status, round(float(price), 2)))
    optional: dict[str, str | None] = {}
    for name in ("genre", "age_rating"):
        value = data.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise fail(f"must be a non-empty string when present, got {value!r}", name)
        optional[name] = value
    aliases = data.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise fail(f"must be a list of non-empty strings, got {aliases!r}", "aliases")
    known = {"id", "title", "author", "volumes", "formats", "availability", "price_usd"}
    unknown = set(data) - known - {"genre", "age_rating", "aliases"}
    if unknown:
        raise fail(
            f"unknown field(s) {', '.join(sorted(unknown))}. Fix: remove them or check the spelling"
        )
    return Record(
        id=data["id"],
        title=data["title"].strip(),
        author=data["author"].strip(),
        volumes=volumes,
        offers=tuple(offers),
        genre=optional["genre"],
        age_rating=optional["age_rating"],
        aliases=tuple(a.strip() for a in aliases),
    )
