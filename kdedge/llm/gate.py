"""The grounding gate (seed 000, failure A): keep a teacher answer only if the catalog backs it.

A teacher can state catalog facts it has no grounds for ("Is Nana available in hardcover?"
-- "Yes, the hardcover is in stock", while the store sells Nana in paperback only). Before
an answer becomes training data, :func:`assess` pulls its catalog claims out and checks each
against the catalog records, and :class:`GateRule` decides:

    accepted = evidence_present AND support >= 0.78 AND contradiction <= 0.10
               AND NOT (high_confidence AND low_support)

- **claims**: titles named, formats offered or not, availability ("in stock", "sold out",
  "preorder", "not available in hardcover", "only in paperback"), prices, volume counts,
  volume numbers and "by <author>". Each is *supported* (the record says so),
  *contradicted* (the record says otherwise; the record's format list is complete, so a
  format it lacks is not sold) or *unsupported* (no catalog record to check it against:
  an unknown title, or a claim with no subject).
- **subject**: the nearest title named before the claim in its clause, else the first one
  after it, else the subject of the previous clause, else the question's best evidence.
  A claim with no format ("it's in stock") is read for the formats the answer last
  affirmed for that title, else those the question asks about, else any format.
- **support** = supported / claims; **contradiction** = contradicted / claims.
- **evidence_present**: the question has catalog evidence (the rows' evidence records, else
  the catalog's retrieval for the question); for recommendation asks, titles from the
  catalog named in the answer count as evidence too.
- **high_confidence**: no hedge ("I think", "probably", "please double-check", ...).
  **low_support** (our reading; the seeds name it without a number): support below
  ``confident_min_support``, 1.0 by default: an answer stated with confidence must back
  every claim, a hedged one needs only ``min_support`` and ``max_contradiction`` (so one
  slip among ten claims passes when hedged; the mix weighs hedged rows 0.5).
- **hallucinated** (the eval metric): any claim unsupported or contradicted.

Refusals, escalations and "I cannot confirm" answers make no catalog claims; they need no
evidence and score support 1.0 and contradiction 0.0 when they claim nothing (any catalog
claim they do make is checked as usual). They pass when they fit the row's ``kind``: a
refusal for ``refusal``, a hand-off for ``escalation``, cannot-confirm for
``unknown_title`` or for a question the catalog has no evidence for. A catalog answer to a
``refusal`` or ``escalation`` ask is rejected (``missed_refusal`` / ``missed_escalation``).

Rows with a human ``reference`` are gold: :func:`gate_rows` does not gate them, marks them
``source: human`` and counts them apart from the acceptance rate (which is over teacher
answers).

The claim reader is hand-written (regular expressions over clauses): no library extracts
typed catalog claims of this kind, and an NLI model would be neither offline-light nor
able to read the structured fields (formats, stock, prices) this check is about.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kdedge.atomic import atomic_write, atomic_write_text
from kdedge.data.io import clip, read_jsonl
from kdedge.errors import ConfigError, DataError
from kdedge.llm.catalog import Catalog, Record, normalize, volumes_phrase
from kdedge.progress import Tracker, silent

ACCEPTED = "accepted.jsonl"
REJECTED = "rejected.jsonl"
REPORT = "gate_report.json"
ANSWERS = "answers.jsonl"
KINDS = ("catalog", "recommendation", "refusal", "escalation", "unknown_title")

SUPPORTED, UNSUPPORTED, CONTRADICTED = "supported", "unsupported", "contradicted"

# ------------------------------------------------------------------ lexicon ---------------


def _alt(*parts: str) -> str:
    """One non-capturing alternation of regex ``parts``."""
    return "(?:" + "|".join(parts) + ")"


_FMT_WORDS = {
    "paperback": r"paper\s?backs?|soft\s?covers?|soft\s?backs?|tankobon",
    "hardcover": r"hard[\s-]?covers?|hard[\s-]?backs?",
    "digital": r"digital(?:ly)?|e-?books?|kindle",
    "box set": r"box(?:ed)?[\s-]?sets?",
}
_FMT_NAMES = tuple(_FMT_WORDS)
_FMT_ANY = _alt(*_FMT_WORDS.values())
_FMT_RE = re.compile(
    r"\b" + _alt(*(f"(?P<f{i}>{p})" for i, p in enumerate(_FMT_WORDS.values()))) + r"\b", re.I
)
_NOT = r"(?:n't|\s+not)"
_BE = r"(?:is|are|was|were)"
_DO = r"(?:do|does|did)"
_AFTER_FMT = r"(?=\s+(?:an?\s+|the\s+)?" + _FMT_ANY + r")"
_NOW = _alt(
    r"in\s+stock", r"on\s+hand", "available", r"right\s+now", r"at\s+the\s+moment", "currently"
)

# (status, pattern), tried in this order at each position: the specific phrasings first.
_STATUS = [
    ("preorder", r"(?:available|open|up)\s+(?:for|to|as\s+an?)\s+pre-?\s?orders?"),
    (
        "not_offered",
        _BE + _NOT + r"\s+(?:offered|published|printed|released|sold|made|carried|"
        r"stocked|available)\s+as\b",
    ),
    ("not_offered", _BE + _NOT + r"\s+(?:offered|published|printed|released|made)\s+in\b"),
    ("not_offered", _DO + _NOT + r"\s+(?:come|exist)(?:\s+(?:in|as))?\b"),
    ("not_offered", _DO + _NOT + r"\s+have\s+an?" + _AFTER_FMT),
    (
        "out_of_stock",
        _DO
        + _NOT
        + r"\s+have\s+(?:it|them|any|copies|this|that|one)?\s*"
        + _alt(r"in\s+stock", r"on\s+hand", r"right\s+now", r"at\s+the\s+moment"),
    ),
    (
        "not_offered",
        r"(?:we|i)\s+" + _DO + _NOT + r"\s+(?:carry|stock|sell|offer|have)\b"
        r"(?!\s+(?:\S+\s+){0,2}?" + _NOW + ")",
    ),
    ("not_offered", r"\bnever\s+(?:been\s+)?(?:released|published|printed|offered)\s+(?:in|as)\b"),
    ("out_of_stock", r"\bno(?=\s+" + _FMT_ANY + r"\s+(?:copies|stock|volumes)\b)"),
    ("not_offered", r"\bno" + _AFTER_FMT),
    ("unavailable", r"\bnot\s+(?:in|as)" + _AFTER_FMT),
    ("out_of_stock", r"out[\s-]+of[\s-]+(?:stock|print)|sold[\s-]+out|back-?\s?ordered"),
    ("out_of_stock", r"(?:not|n't)\s+(?:currently\s+|yet\s+)?in\s+stock"),
    ("out_of_stock", r"(?:currently|temporarily)\s+unavailable"),
    ("out_of_stock", r"no\s+longer\s+(?:in\s+stock|available)|none\s+(?:left\s+)?in\s+stock"),
    (
        "out_of_stock",
        r"no\s+(?:copies|stock)\b|(?:ran|run)\s+out\b|waiting\s+(?:for|on)\s+"
        r"(?:a\s+)?restock",
    ),
    ("preorder", r"pre-?\s?order(?:s|ed|able|ing)?\b|coming\s+soon"),
    ("preorder", r"not\s+(?:yet\s+)?(?:out|released)(?:\s+yet)?\b"),
    ("in_stock", r"in[\s-]+stock|on\s+(?:the|our)\s+shel(?:f|ves)|ready\s+to\s+ship|on\s+hand"),
    ("in_stock", r"ships?\s+(?:today|right\s+away|immediately|now)"),
    ("in_stock", r"available\s+(?:now|today|right\s+now|to\s+ship|immediately)"),
    ("unavailable", r"(?:not|n't)\s+(?:currently\s+|yet\s+)?available|\bunavailable\b"),
    (
        "unavailable",
        r"(?:can(?:no|')?t|cannot)\s+(?:be\s+)?"
        r"(?:buy|order|get|purchase|bought|ordered|purchased)\b",
    ),
    (
        "only",
        r"\bonly\s+(?:(?:available|comes?|sold|offered|published|released|printed|carried"
        r"|stocked)\s+)?(?:in|as)\b",
    ),
    ("only", r"\bexclusively\s+(?:in|as)\b"),
    ("only", r"\bonly\s+(?:have|carry|sell|stock)\s+(?:it|them|this|that)?\s*(?:in|as)\b"),
    ("available", r"\bavailable\b|(?:can|could)\s+(?:buy|order|get|grab|pick\s+up|purchase)\b"),
    ("offered", r"\bcomes?\s+(?:in|as)\b|\boffered\s+(?:in|as)\b"),
    ("offered", _BE + r"\s+(?:also\s+)?(?:published|printed|released|offered|sold)\s+(?:in|as)\b"),
    ("offered", r"(?:we|i)\s+(?:also\s+)?(?:have|carry|stock|sell|offer)\b|\balso\s+(?:in|as)\b"),
    ("offered", r"there(?:\s+is|'s|\s+are)\s+(?:also\s+)?(?:an?\s+)?(?=" + _FMT_ANY + ")"),
]
_STATUS_RE = re.compile(_alt(*(f"(?P<s{i}>{p})" for i, (_, p) in enumerate(_STATUS))), re.I)
_ONLY_AFTER = re.compile(_FMT_ANY + r"(?:\s+(?:editions?|versions?|format))?\s+(only)\b", re.I)
_POSITIVE = {"in_stock", "preorder", "available", "offered"}
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

_PRICE_RE = re.compile(
    r"(?:\$|US\$|USD\s?)\s?(\d{1,4}(?:\.\d{1,2})?)|\b(\d{1,4}(?:\.\d{2})?)\s?(?:dollars|USD|bucks)\b",
    re.I,
)
_PRICE_SKIP = re.compile(  # "free shipping over $50" is no catalog price
    _alt(
        "over",
        "above",
        "under",
        "below",
        r"orders?\s+of",
        r"more\s+than",
        r"less\s+than",
        "spend",
        r"shipping(?:\s+is)?",
        r"fee\s+of",
        r"budget\s+of",
        r"up\s+to",
    )
    + r"\s*$",
    re.I,
)
_UNITS = re.findall(
    r"\w+",
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen",
)
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_NUMBER = (
    r"\d{1,3}|a\s+single|(?:" + "|".join(_TENS) + r")(?:[\s-](?:" + "|".join(_UNITS[1:10]) + "))?"
    r"|" + "|".join(sorted(_UNITS, key=len, reverse=True))
)
_COUNT_RE = re.compile(
    r"\b(" + _NUMBER + r")(?:\s+|-)(?:volumes?|vols?\b\.?|books|tankobon|installments)\b"
    r"|\bvolumes?\s*(?::|=|count\s+(?:is|of))\s*(\d{1,3})\b",
    re.I,
)


def _number(text: str) -> int:
    """'21', 'twenty-one', 'a single' -> int."""
    words = re.split(r"[\s-]+", text.lower())
    if words[0].isdigit():
        return int(words[0])
    if words[0] == "a":
        return 1
    if words[0] in _TENS:
        return 20 + 10 * _TENS.index(words[0]) + (_UNITS.index(words[1]) if len(words) > 1 else 0)
    return _UNITS.index(words[0])


_COUNT_SKIP = re.compile(
    _alt(
        "first",
        "last",
        "next",
        "previous",
        "initial",
        "opening",
        "latest",
        "newest",
        r"of\s+the",
        "those",
        "these",
    )
    + r"\s+$",
    re.I,
)
_INDEX_RE = re.compile(
    r"\b(?:volumes?|vols?\.?|v\.)\s*#?(\d{1,3})(?:\s*(?:-|–|to|through|thru)\s*(\d{1,3}))?"
    r"(?!\s*(?:volumes|books))",
    re.I,
)
_INDEX_NEG = re.compile(  # "there is no volume 30", "I can't confirm a volume 30"
    _alt(
        r"\bno", r"\bnot", "n't", "cannot", r"unable\s+to\s+find", "beyond", r"confirm(?:\s+that)?"
    )
    + r"\s+(?:\S+\s+){0,3}$",
    re.I,
)
_HEDGE_RE = re.compile(
    r"\b"
    + _alt(
        r"i\s+think",
        r"i\s+believe",
        r"i\s+suspect",
        r"i'?d\s+guess",
        "probably",
        "possibly",
        "perhaps",
        "maybe",
        "likely",
        "unlikely",
        r"(?:might|may)\s+(?:be|have|not|still)",
        r"could\s+be",
        r"should\s+be",
        "seems?",
        r"appears?\s+to",
        r"as\s+far\s+as\s+i\s+(?:know|can\s+tell)",
        r"if\s+i'?m\s+not\s+mistaken",
        r"not\s+(?:entirely\s+|completely\s+|100%\s+)?(?:sure|certain)",
        r"to\s+my\s+knowledge",
        "roughly",
        "approximately",
        r"around\s+\$",
        r"(?:please|you\s+(?:may|might)\s+want\s+to)\s+(?:double-?\s?check|verify|confirm)",
    )
    + r"\b",
    re.I,
)
_I_CANNOT = (
    r"\b(?:i|we)\s*(?:can(?:no|')?t|cannot|won't|will\s+not|(?:am|'m|are|'re)\s+(?:not\s+able|"
    r"unable)\s+to)\s+"
)
_REFUSAL_RE = re.compile(
    _alt(
        _I_CANNOT
        + _alt(
            "help",
            "share",
            "provide",
            "assist",
            "give",
            "link",
            "point",
            "send",
            "disclose",
            r"look\s+up",
            r"do\s+that",
            r"pass\s+on",
            "reveal",
            "write",
            "scan",
            "copy",
            "bypass",
            r"get\s+around",
            "offer",
            "create",
            r"hand\s+out",
            "support",
        ),
        r"against\s+(?:our|the\s+store's|store)\s+polic(?:y|ies)",
        r"not\s+something\s+(?:i|we)\s+can\s+(?:help|do)",
        r"outside\s+(?:of\s+)?(?:what\s+(?:i|we)\s+can|our|the\s+store's)\s+",
    ),
    re.I,
)
_ESCALATION_RE = re.compile(
    _alt(
        r"\b(?:hand(?:ing)?|pass(?:ing)?|transfer(?:ring)?|connect(?:ing)?|forward(?:ing)?|"
        r"escalat(?:e|ing)|rout(?:e|ing)|put(?:ting)?|refer(?:ring)?)\s+"
        r"(?:you|this|it|your\s+(?:case|request|message|order|complaint|issue))?\s*"
        r"(?:over\s+)?(?:to|with|through)\s+(?:a|an|our|one\s+of\s+our)?\s*"
        r"(?:human|support|customer\s+(?:support|care|service)|agent|team|specialist|colleague"
        r"|person)",
        r"\b(?:a|an|our)\s+(?:human|support)\s+(?:agent|colleague|teammate|specialist)\s+will\b",
        r"\bescalated\b",
    ),
    re.I,
)
_CANNOT_CONFIRM_RE = re.compile(
    _alt(
        _I_CANNOT + "confirm",
        r"\b(?:couldn't|could\s+not|can't|cannot|did\s+not|didn't|don't|do\s+not)\s+"
        r"(?:find|see|locate)\b[^.;]*\b(?:catalog|listing|records?|store|inventory)",
        r"\bno\s+(?:matching\s+)?(?:record|listing|entry|match)\b",
        r"\b(?:not|isn't|is\s+not|aren't)\s+(?:in|listed\s+in|part\s+of|something\s+in)\s+"
        r"(?:our|the)\s+(?:catalog|listings?|inventory|store)",
        r"\b(?:we|i)\s+(?:do\s+not|don't)\s+(?:carry|stock|sell|have)\s+(?:that|this|the)\s+"
        r"(?:title|series|manga|book)",
    ),
    re.I,
)
_RECOMMEND_ASK = re.compile(
    r"\b"
    + _alt(
        "recommend",
        "suggest",
        "similar",
        r"(?:something|anything)\s+like",
        r"what\s+else",
        r"read\s+next",
        r"where\s+should\s+i\s+start",
        r"get\s+into",
        r"if\s+i\s+liked",
    ),
    re.I,
)
_CLAUSE_SPLIT = re.compile(
    _alt(
        r"(?<!\bDr\.)(?<!\bMr\.)(?<!\bMs\.)(?<!\bvol\.)(?<!\bVol\.)(?<!\bNo\.)(?<=[.!?])\s+",
        r"[;\n]+",
        r"\s+[—–-]\s+",
        r",?\s+but\s+",
        r",\s+while\s+",
        r",?\s+whereas\s+",
        r",?\s+however,?\s+",
    ),
    re.I,
)
# First words that never start a title: dropped from capitalised phrases before the phrase
# is taken for an unknown title.
_STOP_FIRST = frozenset(
    re.findall(
        r"\S+",
        """it its it's this that these those we our you your i yes no sorry unfortunately both all
    each every currently right also however sure great good volume vol volumes paperback
    hardcover hardback digital box the a an there here please customer catalog mangaassist
    thanks thank happy absolutely definitely of if as for and but so just only most many some
    any what which when where how hi hello hey ok okay note price prices stock available pre
    preorder new check let one they he she his her their my me us usd total ebook kindle
    """,
    )
)
_CONTRACTION = re.compile(r"'(?:d|m|ll|re|ve|s)$", re.I)
_TITLE_WORD = r"(?<![\w'])[A-Z0-9][\w'!&.:-]*"
_TITLE_PHRASE = _TITLE_WORD + r"(?:\s+(?:" + _TITLE_WORD + r"|of|the|no|to|a|an|in|and|x|&|wa|ga))*"
_CANDIDATE = re.compile(
    _alt(
        r"[\"*_]([A-Z0-9][^\"*_\n]{1,60}?)[\"*_]",
        "(" + _TITLE_PHRASE + r")(?=\s+(?:is|are|was|has|have|comes|costs|runs|ships)\b)",
    )
)
_TITLE_PHRASE_RE = re.compile(_TITLE_PHRASE)
_SUGGESTING = re.compile(
    r"\b(?:try|recommend|suggest|check\s+out|pick\s+up|read|love|enjoy|consider|like)\s+", re.I
)


# ------------------------------------------------------------------ results ---------------


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


@dataclass(frozen=True)
class GateRule:
    """The acceptance rule; defaults are the seeds' thresholds (``confident_min_support`` is
    ours: what "low support" means for a confident answer)."""

    min_support: float = 0.78
    max_contradiction: float = 0.10
    confident_min_support: float = 1.0
    require_evidence: bool = True

    def __post_init__(self) -> None:
        for name in ("min_support", "max_contradiction", "confident_min_support"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"gate {name} must be in [0, 1], got {value}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Assessment:
    """What the gate found in one answer, and its decision under a :class:`GateRule`."""

    evidence_present: bool
    support: float
    contradiction: float
    claims: tuple[Claim, ...]
    high_confidence: bool
    is_refusal: bool
    is_escalation: bool
    is_cannot_confirm: bool
    accepted: bool
    reasons: tuple[str, ...]
    evidence_ids: tuple[str, ...] = ()

    @property
    def unsupported(self) -> tuple[Claim, ...]:
        return tuple(c for c in self.claims if c.verdict == UNSUPPORTED)

    @property
    def contradicted(self) -> tuple[Claim, ...]:
        return tuple(c for c in self.claims if c.verdict == CONTRADICTED)

    @property
    def hallucinated(self) -> bool:
        """The answer makes a catalog claim the catalog does not support or contradicts."""
        return any(c.verdict != SUPPORTED for c in self.claims)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "reasons": list(self.reasons),
            "evidence_present": self.evidence_present,
            "evidence_ids": list(self.evidence_ids),
            "support": round(self.support, 4),
            "contradiction": round(self.contradiction, 4),
            "high_confidence": self.high_confidence,
            "is_refusal": self.is_refusal,
            "is_escalation": self.is_escalation,
            "is_cannot_confirm": self.is_cannot_confirm,
            "hallucinated": self.hallucinated,
            "claims": [c.to_dict() for c in self.claims],
        }


def is_hedged(text: str) -> bool:
    """The answer hedges ("I think", "probably", "please double-check", ...)."""
    return _HEDGE_RE.search(_fold(text)) is not None


def is_refusal(text: str) -> bool:
    """The answer declines the request ("I can't help with that", "against our policy")."""
    return _REFUSAL_RE.search(_fold(text)) is not None


def is_escalation(text: str) -> bool:
    """The answer hands the customer to a person ("I'll connect you with our support team")."""
    return _ESCALATION_RE.search(_fold(text)) is not None


def is_cannot_confirm(text: str) -> bool:
    """The answer says the catalog cannot confirm it ("I couldn't find that title")."""
    return _CANNOT_CONFIRM_RE.search(_fold(text)) is not None


def formats_in(text: str) -> list[str]:
    """Catalog format names mentioned in ``text``, in order of first mention."""
    out: list[str] = []
    for m in _FMT_RE.finditer(text):
        fmt = _format_of(m)
        if fmt not in out:
            out.append(fmt)
    return out


def _format_of(match: re.Match[str]) -> str:
    return next(_FMT_NAMES[i] for i in range(len(_FMT_NAMES)) if match.group(f"f{i}"))


# ------------------------------------------------------------------ claim reader ----------


@dataclass
class _Event:
    start: int
    end: int
    kind: str  # format | status | price | count | index | subject | author
    value: Any = None
    negated: bool = False
    formats: list[str] = field(default_factory=list)


class _Reader:
    """Reads the claims of one answer; built per catalog (its title and author matchers)."""

    def __init__(self, catalog: Catalog) -> None:
        names: list[tuple[str, Record]] = []
        for record in catalog:
            names.extend((name, record) for name in record.names)
        names.sort(key=lambda item: -len(item[0]))
        self.by_name: dict[str, list[tuple[Record, str | None]]] = {}
        patterns = []
        for name, record in names:
            tokens = re.findall(r"[^\W_]+", _fold(name))
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


_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})


def _fold(text: str) -> str:
    """Accents stripped and curly quotes made straight."""
    text = unicodedata.normalize("NFKD", text.translate(_QUOTES))
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def _clauses(text: str) -> list[str]:
    return [c.strip() for c in _CLAUSE_SPLIT.split(_fold(text)) if c and c.strip()]


def _events(reader: _Reader, clause: str) -> list[_Event]:
    events: list[_Event] = []
    taken: list[tuple[int, int]] = []
    for m in reader.author_re.finditer(clause):
        if len(m.group(2)) <= 3:  # "ONE" is a word before it is an author
            continue
        taken.append(m.span(2))
        if m.group(1):  # "by <author>" is a claim; a bare name is not
            events.append(_Event(*m.span(2), "author", reader.author_of[normalize(m.group(2))]))
    for start, end, record in reader.titles(clause):
        if not any(s <= start and end <= e for s, e in taken):  # "Akira" in "Akira Toriyama"
            events.append(_Event(start, end, "subject", record))
            taken.append((start, end))
    spans = [
        (m.start(g), m.end(g)) for m in _CANDIDATE.finditer(clause) for g in (1, 2) if m.group(g)
    ]
    suggesting = _SUGGESTING.search(clause)
    if suggesting:  # "try Paradise Kiss or Ao Haru Ride": every name after it is a title
        spans += [m.span() for m in _TITLE_PHRASE_RE.finditer(clause, suggesting.end())]
    for start, end in sorted(set(spans)):
        if any(s < end and start < e for s, e in taken):
            continue
        name = _candidate_name(clause[start:end])
        if name and normalize(name) not in reader.author_of:
            offset = clause[start:end].find(name)
            events.append(_Event(start + offset, start + offset + len(name), "subject", name))
            taken.append((start, end))
    for m in _FMT_RE.finditer(clause):
        events.append(_Event(m.start(), m.end(), "format", _format_of(m)))
    for m in _STATUS_RE.finditer(clause):
        index = int(next(k for k, v in m.groupdict().items() if v is not None)[1:])
        events.append(_Event(m.start(), m.end(), "status", _STATUS[index][0]))
    for m in _ONLY_AFTER.finditer(clause):
        if not any(e.kind == "status" and e.start <= m.start(1) < e.end for e in events):
            events.append(_Event(m.start(1), m.end(1), "status", "only"))
    for m in _PRICE_RE.finditer(clause):
        if _PRICE_SKIP.search(clause[: m.start()]):
            continue
        value = float(m.group(1) or m.group(2))
        events.append(_Event(m.start(), m.end(), "price", value))
    for m in _COUNT_RE.finditer(clause):
        raw = (m.group(1) or m.group(2)).lower()
        if m.group(1) and _COUNT_SKIP.search(clause[: m.start()]):
            continue
        events.append(_Event(m.start(), m.end(), "count", _number(raw)))
    for m in _INDEX_RE.finditer(clause):
        if any(e.kind == "count" and e.start <= m.start() < e.end for e in events):
            continue
        last = int(m.group(2)) if m.group(2) else int(m.group(1))
        negated = _INDEX_NEG.search(clause[: m.start()]) is not None
        events.append(_Event(m.start(), m.end(), "index", (int(m.group(1)), last), negated))
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
        words[0].lower() in _STOP_FIRST or words[0][0].islower() or _CONTRACTION.search(words[0])
    ):
        words = words[1:]
    while words and words[-1][0].islower():
        words = words[:-1]
    if not words:
        return None
    lowered = {w.lower().strip(".,:!?'") for w in words}
    if lowered <= _STOP_FIRST or lowered & {"volume", "vol"} or not re.search("[A-Z]", text):
        return None
    if formats_in(" ".join(words)):
        return None
    return " ".join(words).rstrip(".,:!?")


def _associate(clause: str, events: list[_Event]) -> None:
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
        if _COPULA.fullmatch(clause[events[j].end : event.start]):
            chosen = _listed(clause, events, j)
            event.formats = [events[k].value for k in chosen]
            bound.update(chosen)
    taken = set(bound)
    for i, event in enumerate(events):
        if event.kind == "price":
            after = i + 1 < len(events) and events[i + 1].kind == "format"
            if after and _FOR_FORMAT.fullmatch(clause[event.end : events[i + 1].start]):
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
            if not chosen and event.value in _POSITIVE:  # "what we have: the paperback is ..."
                chosen = ahead
        if not chosen:
            back = next((j for j in range(i - 1, -1, -1) if events[j].kind == "status"), -1)
            named = [j for j in range(back + 1, i) if events[j].kind == "format"]
            if named:  # "comes in paperback and digital: the paperback can be preordered"
                chosen = _listed(clause, events, named[-1])
            elif back >= 0 and events[back].value in _POSITIVE | {"only"}:
                event.formats = list(events[back].formats)
                continue
        event.formats = [events[j].value for j in chosen]
        taken.update(chosen)


_COPULA = re.compile(
    r"\s*(?:editions?|versions?|copies|format)?\s*(?:\(\s*\$?\s*[\d.,]+\s*\)\s*)?"
    r"(?:is|are|was|were|'s|has\s+been|have\s+been|can\s+be|will\s+be)?\s*"
    r"(?:currently|also|still|now|right\s+now|unfortunately|sadly)?\s*[:,]?\s*",
    re.I,
)
_LIST_GAP = re.compile(
    r"\s*(?:editions?|versions?)?\s*(?:,|,?\s*and|,?\s*or|&)\s*(?:the\s+|a\s+|an\s+)?", re.I
)


def _listed(clause: str, events: list[_Event], j: int) -> list[int]:
    """Format event ``j`` and the format events listed right before it ("X and Y")."""
    out = [j]
    while j > 0 and events[j - 1].kind == "format":
        if not _LIST_GAP.fullmatch(clause[events[j - 1].end : events[j].start]):
            break
        j -= 1
        out.insert(0, j)
    return out


_FOR_FORMAT = re.compile(r"\s*(?:per\s+volume\s+)?(?:for|in|as)\s+(?:the\s+|a\s+|an\s+)?", re.I)


class _Checker:
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
        ok = any(hits) if status in _POSITIVE else all(hits)
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


def _read_claims(
    reader: _Reader, answer: str, default: Record | None, checker: _Checker
) -> list[Claim]:
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

    for clause in _clauses(answer):
        events = _events(reader, clause)
        _associate(clause, events)
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
                if event.formats and (event.kind == "price" or event.value in _POSITIVE | {"only"}):
                    context[key] = list(event.formats)
                elif not event.formats and key in context:  # "... in paperback. It's in stock."
                    event.formats = list(context[key])
            for claim in _claims_for(event, subject, clause, checker):
                add(claim)
        if subjects:
            carried = subjects[-1].value
    return claims


def _claims_for(
    event: _Event, subject: Record | str | None, clause: str, checker: _Checker
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


# ------------------------------------------------------------------ assess ----------------

_READERS: dict[int, tuple[Catalog, _Reader]] = {}


def _reader(catalog: Catalog) -> _Reader:
    cached = _READERS.get(id(catalog))
    if cached is None or cached[0] is not catalog:
        cached = (catalog, _Reader(catalog))
        _READERS.clear()
        _READERS[id(catalog)] = cached
    return cached[1]


def assess(
    answer: str,
    catalog: Catalog,
    *,
    question: str = "",
    evidence: Sequence[str | Record] | None = None,
    kind: str | None = None,
    rule: GateRule | None = None,
) -> Assessment:
    """Read ``answer``'s catalog claims, check them against ``catalog`` and apply ``rule``.

    ``evidence``: the records the question was answered from (records, ids or evidence
    lines); None or empty: the catalog's retrieval for ``question``. ``kind`` (a prompt
    kind: catalog, recommendation, refusal, escalation, unknown_title) makes the policy
    checks of the module docstring; without it refusals and hand-offs are taken as given.
    """
    rule = rule or GateRule()
    records = catalog.resolve_evidence(evidence) if evidence else []
    if not records and question:
        records = catalog.retrieve(question)
    reader = _reader(catalog)
    checker = _Checker(formats_in(_fold(question)))
    claims = _read_claims(reader, answer, records[0] if records else None, checker)
    cannot_confirm = is_cannot_confirm(answer)
    if cannot_confirm:  # what it cannot confirm is named, not claimed
        claims = [c for c in claims if c.verdict != UNSUPPORTED]

    escalation, refusal = is_escalation(answer), is_refusal(answer)
    high_confidence = not is_hedged(answer)
    named = [c.record_id for c in claims if c.kind == "title" and c.record_id]
    recommending = kind == "recommendation" or (
        kind is None and bool(_RECOMMEND_ASK.search(question))
    )
    evidence_present = bool(records) or (recommending and bool(named))

    n = len(claims)
    good = sum(c.verdict == SUPPORTED for c in claims)
    bad = sum(c.verdict == CONTRADICTED for c in claims)
    policy_answer = refusal or escalation or (cannot_confirm and not claims)
    if n:
        support, contradiction = good / n, bad / n
    else:
        support, contradiction = (1.0 if policy_answer else 0.0), 0.0

    reasons: list[str] = []
    if policy_answer:
        reasons += _policy_reasons(kind, refusal, escalation, records)
    else:
        if kind == "refusal":
            reasons.append("missed_refusal")
        elif kind == "escalation":
            reasons.append("missed_escalation")
        if rule.require_evidence and not evidence_present:
            reasons.append("no_evidence")
        if not n:
            reasons.append("no_claims")
    if n:
        if support < rule.min_support:
            reasons.append("low_support")
        if contradiction > rule.max_contradiction:
            reasons.append("contradiction")
        if high_confidence and support < rule.confident_min_support:
            reasons.append("confident_unsupported")
        if any(c.kind == "title" and c.verdict == UNSUPPORTED for c in claims):
            reasons.append("unknown_title")
    evidence_ids = tuple(r.id for r in records)
    return Assessment(
        evidence_present=evidence_present,
        support=support,
        contradiction=contradiction,
        claims=tuple(claims),
        high_confidence=high_confidence,
        is_refusal=refusal,
        is_escalation=escalation,
        is_cannot_confirm=cannot_confirm,
        accepted=not reasons,
        reasons=tuple(dict.fromkeys(reasons)),
        evidence_ids=evidence_ids,
    )


def _policy_reasons(
    kind: str | None, refusal: bool, escalation: bool, records: list[Record]
) -> list[str]:
    if kind is None:
        return [] if (refusal or escalation or not records) else ["cannot_confirm_with_evidence"]
    if kind == "escalation":
        return [] if escalation else ["missed_escalation"]
    if kind == "refusal":
        return [] if refusal else ["missed_refusal"]
    if escalation:
        return ["unwarranted_escalation"]
    if refusal:
        return ["unwarranted_refusal"]
    if kind == "unknown_title" or not records:
        return []
    return ["cannot_confirm_with_evidence"]


# ------------------------------------------------------------------ rows and files --------


@dataclass
class GateReport:
    """Counts of one gate run. The acceptance rate is over teacher answers (gold rows apart)."""

    rows: int = 0
    human_rows: int = 0
    teacher_rows: int = 0
    accepted: int = 0
    rejected: int = 0
    hallucinated: int = 0
    by_reason: Counter = field(default_factory=Counter)
    by_kind: dict[str, Counter] = field(default_factory=dict)
    rule: GateRule = field(default_factory=GateRule)
    paths: dict[str, str] = field(default_factory=dict)

    @property
    def acceptance_rate(self) -> float | None:
        return round(self.accepted / self.teacher_rows, 4) if self.teacher_rows else None

    @property
    def hallucination_rate(self) -> float | None:
        return round(self.hallucinated / self.teacher_rows, 4) if self.teacher_rows else None

    def to_dict(self) -> dict[str, Any]:
        by_kind = {}
        for kind, counts in sorted(self.by_kind.items()):
            rows = counts["accepted"] + counts["rejected"]
            by_kind[kind] = {
                "rows": rows,
                "accepted": counts["accepted"],
                "rejected": counts["rejected"],
                "human": counts["human"],
                "acceptance_rate": round(counts["accepted"] / rows, 4) if rows else None,
            }
        return {
            "rows": self.rows,
            "human_rows": self.human_rows,
            "teacher_rows": self.teacher_rows,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "acceptance_rate": self.acceptance_rate,
            "hallucinated": self.hallucinated,
            "hallucination_rate": self.hallucination_rate,
            "rejected_by_reason": dict(self.by_reason.most_common()),
            "by_kind": by_kind,
            "rule": self.rule.to_dict(),
            **({"paths": self.paths} if self.paths else {}),
        }

    def lines(self) -> list[str]:
        """A short human-readable summary."""
        rate = self.acceptance_rate
        out = [
            f"{self.teacher_rows} teacher answers: {self.accepted} accepted, {self.rejected} "
            f"rejected (acceptance {rate:.1%})"
            if rate is not None
            else "no teacher answers",
            f"{self.human_rows} human reference rows kept as gold (not gated)",
        ]
        if self.by_reason:
            out.append(
                "rejected for: " + ", ".join(f"{k} {v}" for k, v in self.by_reason.most_common())
            )
        return out


def gate_rows(
    rows: Iterable[Mapping[str, Any]],
    catalog: Catalog,
    rule: GateRule | None = None,
    *,
    track: Tracker = silent,
    total: int | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], GateReport]:
    """Gate collected rows: ``(accepted, rejected, report)``; every output row is the input
    row plus ``source`` and ``gate`` (scores, reasons, claims)."""
    rule = rule or GateRule()
    report = GateReport(rule=rule)
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for row in track(rows, "gating answers", total=total):
        out = dict(row)
        kind = str(row.get("kind") or "catalog")
        counts = report.by_kind.setdefault(kind, Counter())
        report.rows += 1
        reference = row.get("reference")
        if isinstance(reference, str) and reference.strip():
            out["source"] = "human"
            out["gate"] = {"accepted": True, "reasons": ["human_reference"], "gated": False}
            report.human_rows += 1
            counts["human"] += 1
            accepted.append(out)
            continue
        found = assess(
            str(row.get("answer", "")),
            catalog,
            question=str(row.get("question", "")),
            evidence=_row_evidence(row),
            kind=str(row["kind"]) if row.get("kind") else None,
            rule=rule,
        )
        out.setdefault("source", "teacher")
        out["gate"] = found.to_dict()
        report.teacher_rows += 1
        report.hallucinated += found.hallucinated
        if found.accepted:
            report.accepted += 1
            counts["accepted"] += 1
            accepted.append(out)
        else:
            report.rejected += 1
            counts["rejected"] += 1
            report.by_reason.update(found.reasons)
            rejected.append(out)
    return accepted, rejected, report


def _row_evidence(row: Mapping[str, Any]) -> list[str] | None:
    ids = row.get("evidence_ids")
    if isinstance(ids, list) and ids:
        return [str(i) for i in ids]
    lines = row.get("evidence")
    if isinstance(lines, list) and lines:
        return [str(line) for line in lines]
    return None


def _answers_file(path: Path) -> Path:
    if path.is_dir():
        if (path / ANSWERS).is_file():
            return path / ANSWERS
        found = sorted(p.name for p in path.glob("*.jsonl"))
        raise DataError(
            f"holds no {ANSWERS} (found: {', '.join(found) or 'no .jsonl files'}). "
            "Fix: pass the folder `kdedge llm collect` wrote, or the answers file itself",
            path=path,
        )
    return path


def read_answers(path: str | Path, catalog: Catalog) -> list[dict[str, Any]]:
    """Collected answer rows, checked field by field; errors name file and line."""
    source = _answers_file(Path(path))
    rows = [_check_row(row, catalog, source, line) for line, row in read_jsonl(source)]
    if not rows:
        raise DataError("holds no answers. Fix: run `kdedge llm collect` first", path=source)
    return rows


def _check_row(row: dict[str, Any], catalog: Catalog, source: Path, line: int) -> dict[str, Any]:
    def fail(message: str, name: str) -> DataError:
        return DataError(message, path=source, line=line, field=name)

    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise fail(f"must be a non-empty string, got {clip(question)}", "question")
    reference = row.get("reference")
    if not isinstance(row.get("answer"), str) and not (
        isinstance(reference, str) and reference.strip()
    ):
        raise fail(
            f"must be the teacher's answer text, got {clip(row.get('answer'))}. Fix: re-run "
            "`kdedge llm collect`, or give the row a human 'reference'",
            "answer",
        )
    for name in ("evidence", "evidence_ids"):
        value = row.get(name)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise fail(f"must be a list of strings, got {clip(value)}", name)
    unknown = [i for i in row.get("evidence_ids") or [] if i not in catalog]
    if unknown:
        raise fail(
            f"names record(s) {', '.join(map(repr, unknown[:3]))} that are not in the catalog. "
            "Fix: gate with the catalog the answers were collected with",
            "evidence_ids",
        )
    kind = row.get("kind")
    if kind is not None and kind not in KINDS:
        raise fail(f"unknown kind {clip(kind)}. Fix: use one of {', '.join(KINDS)}", "kind")
    return row


def gate_dir(
    answers_path: str | Path,
    catalog_path: str | Path,
    out_dir: str | Path,
    rule: GateRule | None = None,
    *,
    track: Tracker = silent,
) -> GateReport:
    """Gate ``answers.jsonl`` (a file, or the collect folder holding it) against a catalog;
    writes ``accepted.jsonl``, ``rejected.jsonl`` and ``gate_report.json`` to ``out_dir``."""
    catalog = Catalog.load(catalog_path)
    source = _answers_file(Path(answers_path))
    rows = read_answers(source, catalog)
    accepted, rejected, report = gate_rows(rows, catalog, rule, track=track, total=len(rows))
    out = Path(out_dir)
    report.paths = {"answers": str(source), "catalog": str(catalog_path), "out": str(out)}
    for name, items in ((ACCEPTED, accepted), (REJECTED, rejected)):
        with atomic_write(out / name) as handle:
            for item in items:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    atomic_write_text(out / REPORT, json.dumps(report.to_dict(), indent=2) + "\n")
    return report
