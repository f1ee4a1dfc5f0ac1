"""Where an answer states catalog facts: each clause read into positioned events.

An event is a title or other subject, a format, an availability status, a price, a volume
count or number, or "by <author>"; :func:`associate` then gives each status and price the
formats it is about. :mod:`kdedge.llm.claims` turns the events into checked claims.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kdedge.llm.catalog import Catalog, Record, normalize
from kdedge.llm.lexicon import (
    CANDIDATE,
    CLAUSE_SPLIT,
    CONTRACTION,
    COPULA,
    COUNT_RE,
    COUNT_SKIP,
    FMT_RE,
    FOR_FORMAT,
    INDEX_NEG,
    INDEX_RE,
    LIST_GAP,
    ONLY_AFTER,
    POSITIVE,
    PRICE_RE,
    PRICE_SKIP,
    STATUS,
    STATUS_RE,
    STOP_FIRST,
    SUGGESTING,
    TITLE_PHRASE_RE,
    fold,
    format_of,
    formats_in,
    parse_number,
)


@dataclass
class Event:
    """One fact found in a clause, at ``start:end``; ``formats`` are the ones it is about."""

    start: int
    end: int
    kind: str  # format | status | price | count | index | subject | author
    value: Any = None
    negated: bool = False
    formats: list[str] = field(default_factory=list)


class Reader:
    """Reads the claims of one answer; built per catalog (its title and author matchers)."""

    def __init__(self, catalog: Catalog) -> None:
        names: list[tuple[str, Record]] = []
        for record in catalog:
            names.extend((name, record) for name in record.names)
        names.sort(key=lambda item: -len(item[0]))
        self.by_name: dict[str, list[tuple[Record, str | None]]] = {}
        patterns = []
        for name, record in names:
            tokens = re.findall(r"[^\W_]+", fold(name))
            if not tokens:
                continue
            key = " ".join(tokens).lower()
            # a one-word title must be written as a name ("Monster", not "monster")
            case = tokens[0][0] if len(tokens) == 1 and tokens[0][0].isalpha() else None
            self.by_name.setdefault(key, []).append((record, case))
            patterns.append(r"[\W_]*".join(re.escape(t) for t in tokens))
        self.title_re = re.compile(r"(?<![^\W_])(?:" + "|".join(patterns) + r")(?![^\W_])", re.I)
        authors = sorted({r.author for r in catalog}, key=len, reverse=True)
        self.author_of = {normalize(a): a for a in authors}
        self.author_re = re.compile(
            r"(\bby\s+)?\b("
            + "|".join(r"\s+".join(map(re.escape, a.split())) for a in authors)
            + r")\b"
        )

    def titles(self, text: str) -> list[tuple[int, int, Record]]:
        """``(start, end, record)`` of each catalog title named in ``text``."""
        out = []
        for m in self.title_re.finditer(text):
            key = " ".join(re.findall(r"[^\W_]+", m.group(0))).lower()
            options = self.by_name.get(key)
            if not options:
                continue
            record, case = options[0]
            if case is not None and m.group(0)[0] not in (case, case.upper()):
                continue
            out.append((m.start(), m.end(), record))
        return out


def clauses(text: str) -> list[str]:
    """The clauses of ``text``, folded; claims are read one clause at a time."""
    return [c.strip() for c in CLAUSE_SPLIT.split(fold(text)) if c and c.strip()]


def clause_events(reader: Reader, clause: str) -> list[Event]:
    """The events of one clause in text order (formats not yet associated)."""
    events: list[Event] = []
    taken: list[tuple[int, int]] = []
    for m in reader.author_re.finditer(clause):
        if len(m.group(2)) <= 3:  # "ONE" is a word before it is an author
            continue
        taken.append(m.span(2))
        if m.group(1):  # "by <author>" is a claim; a bare name is not
            events.append(Event(*m.span(2), "author", reader.author_of[normalize(m.group(2))]))
    for start, end, record in reader.titles(clause):
        if not any(s <= start and end <= e for s, e in taken):  # "Akira" in "Akira Toriyama"
            events.append(Event(start, end, "subject", record))
            taken.append((start, end))
    spans = [
        (m.start(g), m.end(g)) for m in CANDIDATE.finditer(clause) for g in (1, 2) if m.group(g)
    ]
    suggesting = SUGGESTING.search(clause)
    if suggesting:  # "try Paradise Kiss or Ao Haru Ride": every name after it is a title
        spans += [m.span() for m in TITLE_PHRASE_RE.finditer(clause, suggesting.end())]
    for start, end in sorted(set(spans)):
        if any(s < end and start < e for s, e in taken):
            continue
        name = _candidate_name(clause[start:end])
        if name and normalize(name) not in reader.author_of:
            offset = clause[start:end].find(name)
            events.append(Event(start + offset, start + offset + len(name), "subject", name))
            taken.append((start, end))
    for m in FMT_RE.finditer(clause):
        events.append(Event(m.start(), m.end(), "format", format_of(m)))
    for m in STATUS_RE.finditer(clause):
        index = int(next(k for k, v in m.groupdict().items() if v is not None)[1:])
        events.append(Event(m.start(), m.end(), "status", STATUS[index][0]))
    for m in ONLY_AFTER.finditer(clause):
        if not any(e.kind == "status" and e.start <= m.start(1) < e.end for e in events):
            events.append(Event(m.start(1), m.end(1), "status", "only"))
    for m in PRICE_RE.finditer(clause):
        if PRICE_SKIP.search(clause[: m.start()]):
            continue
        value = float(m.group(1) or m.group(2))
        events.append(Event(m.start(), m.end(), "price", value))
    for m in COUNT_RE.finditer(clause):
        raw = (m.group(1) or m.group(2)).lower()
        if m.group(1) and COUNT_SKIP.search(clause[: m.start()]):
            continue
        events.append(Event(m.start(), m.end(), "count", parse_number(raw)))
    for m in INDEX_RE.finditer(clause):
        if any(e.kind == "count" and e.start <= m.start() < e.end for e in events):
            continue
        last = int(m.group(2)) if m.group(2) else int(m.group(1))
        negated = INDEX_NEG.search(clause[: m.start()]) is not None
        events.append(Event(m.start(), m.end(), "index", (int(m.group(1)), last), negated))
    names = [(e.start, e.end) for e in events if e.kind in ("subject", "author")]
    events = [  # "comes in" inside "March Comes in Like a Lion" is part of a name
        e
        for e in events
        if e.kind in ("subject", "author") or not any(a <= e.start < b for a, b in names)
    ]
    events.sort(key=lambda e: (e.start, e.end))
    return events


def _candidate_name(text: str) -> str | None:
    """A capitalised phrase that may name a title not in the catalog, or None."""
    words = text.strip(" .,:!?'").split()
    while words and (
        words[0].lower() in STOP_FIRST or words[0][0].islower() or CONTRACTION.search(words[0])
    ):
        words = words[1:]
    while words and words[-1][0].islower():
        words = words[:-1]
    if not words:
        return None
    lowered = {w.lower().strip(".,:!?'") for w in words}
    if lowered <= STOP_FIRST or lowered & {"volume", "vol"} or not re.search("[A-Z]", text):
        return None
    if formats_in(" ".join(words)):
        return None
    return " ".join(words).rstrip(".,:!?")


def associate(clause: str, events: list[Event]) -> None:
    """Give each status and price event its formats.

    1. A status right after a format ("the paperback is in stock", "paperback: in stock",
       "the hardcover ($24.99) is in stock") is bound to it, and to the formats listed with
       it ("the paperback and digital edition are in stock").
    2. Any other status takes the free formats named since the last status, price or count
       before it, else a price's just before it ("... at $9.99, in stock"), else the free
       formats after it up to the next status, price or count ("in stock in paperback and
       hardcover"; an affirming status may share bound ones: "what we have: the paperback
       is ..."), else the last format named since the status before it, else that status's
       formats when it affirms ("only in paperback, which is in stock").
    3. A price takes a format right after it joined by "for", "in" or "as" ("$9.99 for the
       paperback"), else the nearest format before it with the formats listed with it.
    """
    bound: set[int] = set()
    for i, event in enumerate(events):
        if event.kind != "status" or i == 0:
            continue
        j = i - 1 if events[i - 1].kind == "format" else i - 2
        if j < 0 or events[j].kind != "format":
            continue
        if COPULA.fullmatch(clause[events[j].end : event.start]):
            chosen = _listed(clause, events, j)
            event.formats = [events[k].value for k in chosen]
            bound.update(chosen)
    taken = set(bound)
    for i, event in enumerate(events):
        if event.kind == "price":
            after = i + 1 < len(events) and events[i + 1].kind == "format"
            if after and FOR_FORMAT.fullmatch(clause[event.end : events[i + 1].start]):
                event.formats = [events[i + 1].value]
                continue
            for j in range(i - 1, -1, -1):
                if events[j].kind in ("price", "count"):
                    break
                if events[j].kind == "format":
                    event.formats = [events[k].value for k in _listed(clause, events, j)]
                    break
            continue
        if event.kind != "status" or event.formats:
            continue
        chosen = []
        for j in range(i - 1, -1, -1):
            if events[j].kind in ("status", "price", "count"):
                break
            if events[j].kind == "format" and j not in taken:
                chosen.insert(0, j)
        if not chosen and i and events[i - 1].kind == "price" and events[i - 1].formats:
            event.formats = list(events[i - 1].formats)
            continue
        if not chosen:
            ahead = []
            for j in range(i + 1, len(events)):
                if events[j].kind in ("status", "price", "count"):
                    break
                if events[j].kind == "format":
                    ahead.append(j)
            chosen = [j for j in ahead if j not in taken]
            if not chosen and event.value in POSITIVE:  # "what we have: the paperback is ..."
                chosen = ahead
        if not chosen:
            back = next((j for j in range(i - 1, -1, -1) if events[j].kind == "status"), -1)
            named = [j for j in range(back + 1, i) if events[j].kind == "format"]
            if named:  # "comes in paperback and digital: the paperback can be preordered"
                chosen = _listed(clause, events, named[-1])
            elif back >= 0 and events[back].value in POSITIVE | {"only"}:
                event.formats = list(events[back].formats)
                continue
        event.formats = [events[j].value for j in chosen]
        taken.update(chosen)


def _listed(clause: str, events: list[Event], j: int) -> list[int]:
    """Format event ``j`` and the format events listed right before it ("X and Y")."""
    out = [j]
    while j > 0 and events[j - 1].kind == "format":
        if not LIST_GAP.fullmatch(clause[events[j - 1].end : events[j].start]):
            break
        j -= 1
        out.insert(0, j)
    return out
