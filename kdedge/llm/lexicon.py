"""The claim reader's vocabulary: regular expressions and word tables for catalog facts.

Formats, availability statuses, prices, volume counts and numbers, candidate titles and the
clause boundaries an answer is read in (:mod:`kdedge.llm.claim_events` uses them). Every
pattern is matched against :func:`fold`-ed text.
"""

from __future__ import annotations

import re
import unicodedata


def alt(*parts: str) -> str:
    """One non-capturing alternation of regex ``parts``."""
    return "(?:" + "|".join(parts) + ")"


_FMT_WORDS = {
    "paperback": r"paper\s?backs?|soft\s?covers?|soft\s?backs?|tankobon",
    "hardcover": r"hard[\s-]?covers?|hard[\s-]?backs?",
    "digital": r"digital(?:ly)?|e-?books?|kindle",
    "box set": r"box(?:ed)?[\s-]?sets?",
}
_FMT_NAMES = tuple(_FMT_WORDS)
_FMT_ANY = alt(*_FMT_WORDS.values())
# A format name; group ``f<i>`` says which (:func:`format_of`).
FMT_RE = re.compile(
    r"\b" + alt(*(f"(?P<f{i}>{p})" for i, p in enumerate(_FMT_WORDS.values()))) + r"\b", re.I
)
_NOT = r"(?:n't|\s+not)"
_BE = r"(?:is|are|was|were)"
_DO = r"(?:do|does|did)"
_AFTER_FMT = r"(?=\s+(?:an?\s+|the\s+)?" + _FMT_ANY + r")"
_NOW = alt(
    r"in\s+stock", r"on\s+hand", "available", r"right\s+now", r"at\s+the\s+moment", "currently"
)

# (status, pattern), tried in this order at each position: the specific phrasings first.
STATUS = [
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
        + alt(r"in\s+stock", r"on\s+hand", r"right\s+now", r"at\s+the\s+moment"),
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
# Any of :data:`STATUS`; group ``s<i>`` says which.
STATUS_RE = re.compile(alt(*(f"(?P<s{i}>{p})" for i, (_, p) in enumerate(STATUS))), re.I)
# "paperback only": group 1 is the "only".
ONLY_AFTER = re.compile(_FMT_ANY + r"(?:\s+(?:editions?|versions?|format))?\s+(only)\b", re.I)
# Statuses that affirm the formats they are read for.
POSITIVE = {"in_stock", "preorder", "available", "offered"}
# "$9.99", "USD 9.99", "10 dollars": the amount is group 1 or 2.
PRICE_RE = re.compile(
    r"(?:\$|US\$|USD\s?)\s?(\d{1,4}(?:\.\d{1,2})?)|\b(\d{1,4}(?:\.\d{2})?)\s?(?:dollars|USD|bucks)\b",
    re.I,
)
PRICE_SKIP = re.compile(  # "free shipping over $50" is no catalog price
    alt(
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
# A volume count ("21 volumes", "twenty-one books", "volume count: 21").
COUNT_RE = re.compile(
    r"\b(" + _NUMBER + r")(?:\s+|-)(?:volumes?|vols?\b\.?|books|tankobon|installments)\b"
    r"|\bvolumes?\s*(?::|=|count\s+(?:is|of))\s*(\d{1,3})\b",
    re.I,
)


def parse_number(text: str) -> int:
    """'21', 'twenty-one', 'a single' -> int."""
    words = re.split(r"[\s-]+", text.lower())
    if words[0].isdigit():
        return int(words[0])
    if words[0] == "a":
        return 1
    if words[0] in _TENS:
        return 20 + 10 * _TENS.index(words[0]) + (_UNITS.index(words[1]) if len(words) > 1 else 0)
    return _UNITS.index(words[0])


# Text before a count that makes it a range, not the series' count ("the first 3 volumes").
COUNT_SKIP = re.compile(
    alt(
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
# A volume number or range ("volume 3", "vol. 4-6").
INDEX_RE = re.compile(
    r"\b(?:volumes?|vols?\.?|v\.)\s*#?(\d{1,3})(?:\s*(?:-|–|to|through|thru)\s*(\d{1,3}))?"
    r"(?!\s*(?:volumes|books))",
    re.I,
)
INDEX_NEG = re.compile(  # "there is no volume 30", "I can't confirm a volume 30"
    alt(r"\bno", r"\bnot", "n't", "cannot", r"unable\s+to\s+find", "beyond", r"confirm(?:\s+that)?")
    + r"\s+(?:\S+\s+){0,3}$",
    re.I,
)
# Clause boundaries: sentence ends, semicolons, dashes, "but", "while", "however".
CLAUSE_SPLIT = re.compile(
    alt(
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
STOP_FIRST = frozenset(
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
# A contracted first word ("I'd", "we're"), never a title's.
CONTRACTION = re.compile(r"'(?:d|m|ll|re|ve|s)$", re.I)
_TITLE_WORD = r"(?<![\w'])[A-Z0-9][\w'!&.:-]*"
_TITLE_PHRASE = _TITLE_WORD + r"(?:\s+(?:" + _TITLE_WORD + r"|of|the|no|to|a|an|in|and|x|&|wa|ga))*"
# A quoted/emphasised name, or a capitalised phrase before a verb: maybe a title.
CANDIDATE = re.compile(
    alt(
        r"[\"*_]([A-Z0-9][^\"*_\n]{1,60}?)[\"*_]",
        "(" + _TITLE_PHRASE + r")(?=\s+(?:is|are|was|has|have|comes|costs|runs|ships)\b)",
    )
)
# A capitalised phrase.
TITLE_PHRASE_RE = re.compile(_TITLE_PHRASE)
# A verb of suggestion; capitalised phrases after it are titles.
SUGGESTING = re.compile(
    r"\b(?:try|recommend|suggest|check\s+out|pick\s+up|read|love|enjoy|consider|like)\s+", re.I
)
# Between a format and its status: "the paperback (is) in stock", "hardcover: sold out".
COPULA = re.compile(
    r"\s*(?:editions?|versions?|copies|format)?\s*(?:\(\s*\$?\s*[\d.,]+\s*\)\s*)?"
    r"(?:is|are|was|were|'s|has\s+been|have\s+been|can\s+be|will\s+be)?\s*"
    r"(?:currently|also|still|now|right\s+now|unfortunately|sadly)?\s*[:,]?\s*",
    re.I,
)
# Between two listed formats: "the paperback and digital edition".
LIST_GAP = re.compile(
    r"\s*(?:editions?|versions?)?\s*(?:,|,?\s*and|,?\s*or|&)\s*(?:the\s+|a\s+|an\s+)?", re.I
)
# Between a price and its format: "$9.99 for the paperback".
FOR_FORMAT = re.compile(r"\s*(?:per\s+volume\s+)?(?:for|in|as)\s+(?:the\s+|a\s+|an\s+)?", re.I)


def formats_in(text: str) -> list[str]:
    """Catalog format names mentioned in ``text``, in order of first mention."""
    out: list[str] = []
    for m in FMT_RE.finditer(text):
        fmt = format_of(m)
        if fmt not in out:
            out.append(fmt)
    return out


def format_of(match: re.Match[str]) -> str:
    """The catalog format name a :data:`FMT_RE` match stands for."""
    return next(_FMT_NAMES[i] for i in range(len(_FMT_NAMES)) if match.group(f"f{i}"))


_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})


def fold(text: str) -> str:
    """Accents stripped and curly quotes made straight."""
    text = unicodedata.normalize("NFKD", text.translate(_QUOTES))
    return "".join(ch for ch in text if not unicodedata.combining(ch))
