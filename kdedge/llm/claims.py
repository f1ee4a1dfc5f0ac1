"""From an answer to checked claims: each catalog claim and its verdict against the records.

A claim's subject is the nearest title named before it in its clause, else the first one
after it, else the subject of the previous clause, else the question's best evidence; a
claim with no format is read for the formats last affirmed for that title, else those the
question asks about, else any format (the rules are :mod:`kdedge.llm.gate`'s docstring).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from kdedge.llm.catalog import Catalog, Record, normalize, volumes_phrase
from kdedge.llm.claim_events import Event, Reader, associate, clause_events, clauses
from kdedge.llm.lexicon import POSITIVE, fold, formats_in

SUPPORTED, UNSUPPORTED, CONTRADICTED = "supported", "unsupported", "contradicted"

# Statuses that claim which formats exist (kind "format"), not their availability.
_FORMAT_CLAIMS = {"offered", "not_offered", "only"}
_OK = {  # status claimed -> catalog states that bear it out
    "in_stock": {"in_stock"},
    "out_of_stock": {"out_of_stock"},
    "preorder": {"preorder"},
    "available": {"in_stock", "preorder"},
    "unavailable": {"out_of_stock", "preorder", "not_offered"},
    "offered": {"in_stock", "out_of_stock", "preorder"},
    "not_offered": {"not_offered"},
}


@dataclass(frozen=True)
class Claim:
    """One catalog claim read from an answer and its verdict against the catalog."""

    kind: str  # title | format | availability | price | volumes | volume_number | author
    text: str  # the clause it was read from
    verdict: str  # supported | unsupported | contradicted
    record_id: str | None = None
    subject: str | None = None
    format: str | None = None
    value: str | float | int | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}


class _Checker:
    """Verdicts on status and price claims about one record."""

    def __init__(self, question_formats: list[str]) -> None:
        self.question_formats = question_formats

    def status(self, record: Record, fmt: str | None, status: str) -> tuple[str, str]:
        def state(f: str) -> str:
            offer = record.offer(f)
            return offer.availability if offer else "not_offered"

        if fmt is not None:
            got = state(fmt)
            verdict = SUPPORTED if got in _OK[status] else CONTRADICTED
            return verdict, f"catalog: {fmt} {got.replace('_', ' ')}"
        if status == "not_offered" and not self.question_formats:
            return CONTRADICTED, f"catalog: {record.title} is listed"
        candidates = self.question_formats or list(record.formats)
        states = [state(f) for f in candidates]
        hits = [s in _OK[status] for s in states]
        ok = any(hits) if status in POSITIVE else all(hits)
        note = ", ".join(
            f"{f} {s.replace('_', ' ')}" for f, s in zip(candidates, states, strict=True)
        )
        return (SUPPORTED if ok else CONTRADICTED), f"catalog: {note}"

    def price(self, record: Record, fmt: str | None, value: float) -> tuple[str, str]:
        if fmt is not None:
            offer = record.offer(fmt)
            if offer is None:
                return CONTRADICTED, f"catalog: {fmt} not offered"
            ok = _price_matches(offer.price_usd, value, record.volumes)
            return (SUPPORTED if ok else CONTRADICTED), f"catalog: {fmt} ${offer.price_usd:.2f}"
        asked = [f for f in self.question_formats if record.offer(f) is not None]
        candidates = asked or list(record.formats)
        prices = {f: record.price_usd[f] for f in candidates}
        ok = any(_price_matches(p, value, record.volumes) for p in prices.values())
        note = ", ".join(f"{f} ${p:.2f}" for f, p in prices.items())
        return (SUPPORTED if ok else CONTRADICTED), f"catalog: {note}"


def _price_matches(price: float, value: float, volumes: int) -> bool:
    """The listed price, or the total for several volumes."""
    if abs(price - value) < 0.005:
        return True
    k = round(value / price)
    return 2 <= k <= volumes and abs(price * k - value) < 0.005 * k


def read_claims(
    answer: str, catalog: Catalog, *, question: str = "", default: Record | None = None
) -> list[Claim]:
    """The catalog claims of ``answer``, each checked against ``catalog``. ``question`` gives
    the formats a claim without one is read for; ``default`` is the subject of claims made
    before any title is named."""
    reader = _reader(catalog)
    checker = _Checker(formats_in(fold(question)))
    claims: list[Claim] = []
    seen: set[tuple] = set()
    carried: Record | str | None = None
    context: dict[str | None, list[str]] = {}  # the formats last affirmed, per subject

    def add(claim: Claim) -> None:
        key = (
            claim.kind,
            claim.record_id or claim.subject,
            claim.format,
            claim.value,
            claim.verdict,
        )
        if key not in seen:
            seen.add(key)
            claims.append(claim)

    for clause in clauses(answer):
        events = clause_events(reader, clause)
        associate(clause, events)
        subjects = [e for e in events if e.kind == "subject"]
        for s in subjects:
            if isinstance(s.value, Record):
                add(Claim("title", clause, SUPPORTED, s.value.id, s.value.title, note="in catalog"))
            else:
                add(Claim("title", clause, UNSUPPORTED, None, s.value, note="not in the catalog"))
        fallback = carried if carried is not None else default
        for event in events:
            if event.kind in ("format", "subject"):
                continue
            before = [s for s in subjects if s.start < event.start]
            subject = before[-1].value if before else (subjects[0].value if subjects else fallback)
            key = subject.id if isinstance(subject, Record) else subject
            if event.kind in ("status", "price"):
                if event.formats and (event.kind == "price" or event.value in POSITIVE | {"only"}):
                    context[key] = list(event.formats)
                elif not event.formats and key in context:  # "... in paperback. It's in stock."
                    event.formats = list(context[key])
            for claim in _claims_for(event, subject, clause, checker):
                add(claim)
        if subjects:
            carried = subjects[-1].value
    return claims


def _claims_for(
    event: Event, subject: Record | str | None, clause: str, checker: _Checker
) -> list[Claim]:
    kind = {
        "status": "format" if event.value in _FORMAT_CLAIMS else "availability",
        "price": "price",
        "count": "volumes",
        "index": "volume_number",
        "author": "author",
    }[event.kind]
    if event.kind == "status" and event.value == "only" and not event.formats:
        return []
    value = event.value
    if event.kind == "index":
        first, last = event.value
        value = f"{first}-{last}" if last != first else first
        if event.negated:
            value = f"no {value}"
    if subject is None and event.value == "not_offered" and not event.formats:
        return [Claim(kind, clause, SUPPORTED, None, None, None, "not_offered", "no such record")]
    if not isinstance(subject, Record):
        note = f"'{subject}' is not in the catalog" if subject else "no catalog title to check"
        fmts = event.formats or [None]
        return [Claim(kind, clause, UNSUPPORTED, None, subject, f, value, note) for f in fmts]
    rid, title = subject.id, subject.title
    if event.kind == "status":
        if event.value == "only":
            listed = set(event.formats)
            missing = [f for f in listed if subject.offer(f) is None]
            others = [
                f
                for f in subject.formats
                if f not in listed and subject.availability[f] == "in_stock"
            ]
            verdict = CONTRADICTED if missing or others else SUPPORTED
            note = f"catalog formats: {', '.join(subject.formats)}"
            return [
                Claim(kind, clause, verdict, rid, title, " + ".join(sorted(listed)), "only", note)
            ]
        out = []
        for fmt in event.formats or [None]:
            verdict, note = checker.status(subject, fmt, event.value)
            out.append(Claim(kind, clause, verdict, rid, title, fmt, event.value, note))
        return out
    if event.kind == "price":
        out = []
        for fmt in event.formats or [None]:
            verdict, note = checker.price(subject, fmt, event.value)
            out.append(Claim(kind, clause, verdict, rid, title, fmt, event.value, note))
        return out
    if event.kind == "count":
        ok = event.value == subject.volumes
        note = f"catalog: {volumes_phrase(subject.volumes)}"
        return [
            Claim(kind, clause, SUPPORTED if ok else CONTRADICTED, rid, title, None, value, note)
        ]
    if event.kind == "index":
        first, last = event.value
        exists = 1 <= first <= last <= subject.volumes
        ok = (not exists) if event.negated else exists
        note = f"catalog: {volumes_phrase(subject.volumes)}"
        return [
            Claim(kind, clause, SUPPORTED if ok else CONTRADICTED, rid, title, None, value, note)
        ]
    ok = normalize(event.value) == normalize(subject.author)
    note = f"catalog: by {subject.author}"
    return [Claim(kind, clause, SUPPORTED if ok else CONTRADICTED, rid, title, None, value, note)]


_READERS: dict[int, tuple[Catalog, Reader]] = {}


def _reader(catalog: Catalog) -> Reader:
    """The reader of ``catalog``, built once for the last catalog seen."""
    cached = _READERS.get(id(catalog))
    if cached is None or cached[0] is not catalog:
        cached = (catalog, Reader(catalog))
        _READERS.clear()
        _READERS[id(catalog)] = cached
    return cached[1]
