"""Cleaning: the normalised dedupe key, duplicate removal and PII scrubbing.

The scrubber is a set of careful regular expressions, not a PII detector: it catches the
emails, card numbers, phone numbers and order ids typical of support transcripts and leaves
years, prices, quantities and short numbers alone.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, replace

from kdedge.data.records import Example

PII_KINDS = ("email", "phone", "card", "order_id")
PLACEHOLDERS = {
    "email": "<EMAIL>",
    "phone": "<PHONE>",
    "card": "<CARD>",
    "order_id": "<ORDER_ID>",
}

_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """The dedupe key: NFKC, casefolded, whitespace collapsed, edge punctuation stripped."""
    text = _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    start, end = 0, len(text)
    while start < end and _is_edge(text[start]):
        start += 1
    while end > start and _is_edge(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_edge(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("P")


@dataclass(frozen=True)
class DedupeResult:
    """Rows kept (first occurrence wins, order preserved) and what was dropped."""

    examples: list[Example]
    removed: int  # duplicates dropped
    conflicts: int  # dropped duplicates whose label differed from the kept row's
    empty: int  # rows whose normalised text is empty, dropped


def dedupe(examples: Iterable[Example]) -> DedupeResult:
    """Drop rows whose :func:`normalize_text` key was seen before, and rows with an empty key."""
    kept: dict[str, Example] = {}
    removed = conflicts = empty = 0
    for example in examples:
        key = normalize_text(example.text)
        if not key:
            empty += 1
        elif key in kept:
            removed += 1
            conflicts += kept[key].label != example.label
        else:
            kept[key] = example
    return DedupeResult(list(kept.values()), removed, conflicts, empty)


@dataclass(frozen=True)
class ScrubResult:
    """Scrubbed rows and how many of each PII kind were replaced (every kind present)."""

    examples: list[Example]
    counts: dict[str, int]


# Emails: local@domain.tld.
_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")

# Card candidates: 13-19 digits, single spaces or dashes allowed between them, not part of
# a longer number, a price or an id. _card() then decides card vs order id vs neither.
_CARD = re.compile(r"(?<![\w+$€£#.,/-])\d(?:[ -]?\d){12,18}(?![\w])(?![.,/-]\d)")
# Groupings card issuers print: 4-4-4-4(-3), 4-6-5 (Amex), 4-6-4 (Diners).
_CARD_GROUPS = {(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4)}

# Order ids with a marker: MA-2024-118233, ORD12345678, #48213397.
_ORDER_TOKEN = re.compile(
    r"(?<![\w-])(?:[A-Za-z]{1,5}-(?:\d{2,}-)*\d{5,}|[A-Z]{2,5}\d{5,})(?![\w-])"
    r"|(?<![\w&#])#\d{5,}\b"
)

# Phones, after cards and marked order ids are gone. Each alternative needs a '+' or
# separators in phone positions, so bare digit runs (order ids), years, prices ("$12.99"),
# versions and short numbers ("vol 12") never match.
_PHONE = re.compile(
    r"""
    (?<![\w+$€£#./-])
    (?:
        \+\d{1,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{2,4})){2,5}         # +1 555 010 1234, +44 20 7946 0958
      | (?:1[ .-]?)?\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}              # (555) 010-1234
      | (?:1[ .-])?\d{3}([.-])\d{3}\1\d{4}                      # 555-010-1234, 555.010.1234
      | \d{3}\ \d{3}\ \d{4}                                     # 555 010 1234
      | [2-9]\d{2}-\d{4}                                        # 555-0123 (local)
    )
    (?![\w])(?![.,/-]\d)
    """,
    re.VERBOSE,
)

# Bare digit runs of 8-12 digits: order / tracking / account numbers.
_ORDER_DIGITS = re.compile(r"(?<![\w+$€£#.,/-])\d{8,12}(?![\w])(?![.,/-]\d)")


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum used by payment cards."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char)
        if i % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def scrub_text(text: str) -> tuple[str, dict[str, int]]:
    """Replace PII in ``text`` with placeholders; return the text and counts per kind.

    Order matters: emails first, then card candidates (Luhn-valid or printed in card groups
    -> card; other plain 13-19 digit runs -> order id), then marked order ids, then phones,
    then bare 8-12 digit runs as order ids.
    """
    counts = dict.fromkeys(PII_KINDS, 0)

    def sub(pattern: re.Pattern[str], kind: str, value: str) -> str:
        def one(match: re.Match[str]) -> str:
            counts[kind] += 1
            return PLACEHOLDERS[kind]

        return pattern.sub(one, value)

    def card(match: re.Match[str]) -> str:
        candidate = match.group()
        digits = re.sub(r"\D", "", candidate)
        groups = tuple(len(g) for g in re.split(r"[ -]", candidate))
        if luhn_valid(digits) or (len(groups) > 1 and groups in _CARD_GROUPS):
            kind = "card"
        elif digits == candidate:
            kind = "order_id"  # a plain long digit run that fails Luhn: an id, not a card
        else:
            return candidate
        counts[kind] += 1
        return PLACEHOLDERS[kind]

    def phone(match: re.Match[str]) -> str:
        candidate = match.group()
        digits = sum(char.isdigit() for char in candidate)
        if candidate.startswith("+") and not 8 <= digits <= 15:
            return candidate  # E.164 numbers have 8 to 15 digits; "+5 10 20" is a score
        counts["phone"] += 1
        return PLACEHOLDERS["phone"]

    text = sub(_EMAIL, "email", text)
    text = _CARD.sub(card, text)
    text = sub(_ORDER_TOKEN, "order_id", text)
    text = _PHONE.sub(phone, text)
    text = sub(_ORDER_DIGITS, "order_id", text)
    return text, counts


def scrub_pii(examples: Iterable[Example]) -> ScrubResult:
    """Scrub every example's text with :func:`scrub_text`; counts are summed over rows."""
    totals = dict.fromkeys(PII_KINDS, 0)
    scrubbed: list[Example] = []
    for example in examples:
        text, counts = scrub_text(example.text)
        for kind, count in counts.items():
            totals[kind] += count
        scrubbed.append(example if text == example.text else replace(example, text=text))
    return ScrubResult(scrubbed, totals)
