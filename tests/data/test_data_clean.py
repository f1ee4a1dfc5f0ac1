"""Normalisation, dedupe and PII scrubbing."""

from __future__ import annotations

import pytest

from kdedge.data import Example, dedupe, normalize_text, scrub_pii, scrub_text
from kdedge.data.clean import PII_KINDS, PLACEHOLDERS, luhn_valid


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("  Where IS my   Order?! ", "where is my order"),
        ("¿Dónde está?", "dónde está"),
        ("ＦＵＬＬ width", "full width"),  # NFKC
        ("Straße", "strasse"),  # casefold
        ("line\none\ttab", "line one tab"),
        ('"quoted"...', "quoted"),
        ("keep <EMAIL> inside, ok.", "keep <email> inside, ok"),
        ("?!...", ""),
        ("   ", ""),
    ],
)
def test_normalize_text(raw: str, key: str) -> None:
    assert normalize_text(raw) == key


def test_dedupe_keeps_first_in_order_and_counts_conflicts_and_empty() -> None:
    rows = [
        Example("Where is my order?", "status", source="f:1"),
        Example("refund", "refund", source="f:2"),
        Example("where is my ORDER", "status", source="f:3"),
        Example("  where is my order!!", "cancel", source="f:4"),
        Example("...", "status", source="f:5"),
        Example("Refund.", "refund", source="f:6"),
        Example("new", "status", source="f:7"),
    ]
    result = dedupe(rows)
    assert [ex.source for ex in result.examples] == ["f:1", "f:2", "f:7"]
    assert (result.removed, result.conflicts, result.empty) == (3, 1, 1)


def test_dedupe_of_nothing() -> None:
    result = dedupe([])
    assert (result.examples, result.removed, result.conflicts, result.empty) == ([], 0, 0, 0)


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("mail jane.doe+x@example.co.uk.", "mail <EMAIL>.", "email"),
        ("Contact: BOB_99@mail-server.example.org please", "Contact: <EMAIL> please", "email"),
        ("card 4111 1111 1111 1111 please", "card <CARD> please", "card"),
        ("card 4111-1111-1111-1111", "card <CARD>", "card"),
        ("card 4111111111111111.", "card <CARD>.", "card"),
        ("amex 3782 822463 10005", "amex <CARD>", "card"),
        ("visa 4012888888881881 exp 12/27", "visa <CARD> exp 12/27", "card"),
        ("typo 1234 5678 9012 3456", "typo <CARD>", "card"),  # printed like a card
        ("order MA-2024-118233 is late", "order <ORDER_ID> is late", "order_id"),
        ("order #48213397", "order <ORDER_ID>", "order_id"),
        ("ref ORD12345678", "ref <ORDER_ID>", "order_id"),
        ("order 48213397 never came", "order <ORDER_ID> never came", "order_id"),
        ("tracking 123456789012", "tracking <ORDER_ID>", "order_id"),
        ("id 1234567890123456", "id <ORDER_ID>", "order_id"),  # 16 digits, fails Luhn
        ("call +1 555 010 1234 now", "call <PHONE> now", "phone"),
        ("call +1-555-010-1234", "call <PHONE>", "phone"),
        ("call (555) 010-1234", "call <PHONE>", "phone"),
        ("call 555-010-1234", "call <PHONE>", "phone"),
        ("call 555.010.1234", "call <PHONE>", "phone"),
        ("call 555 010 1234", "call <PHONE>", "phone"),
        ("call 1-800-555-0199", "call <PHONE>", "phone"),
        ("call 555-0123.", "call <PHONE>.", "phone"),
        ("ring +44 20 7946 0958", "ring <PHONE>", "phone"),
        ("ring +44 (0)20 7946 0958", "ring <PHONE>", "phone"),
        ("tel:+4915112345678", "tel:<PHONE>", "phone"),
    ],
)
def test_scrub_positive(text: str, expected: str, kind: str) -> None:
    scrubbed, counts = scrub_text(text)
    assert scrubbed == expected
    assert counts == {k: int(k == kind) for k in PII_KINDS}


@pytest.mark.parametrize(
    "text",
    [
        "in 2024 it cost $12.99",
        "vol 12, chapter 3, 10 items",
        "price $1,299.99 or 12345678.90 total",
        "€1234567890 fee",
        "dates 2024-01-15, 01/15/2024 and 12:30",
        "version 1.2.3 on 192.168.0.1",
        "zip 12345-6789",
        "COVID-19 and ISO-9001 and RFC-7231",
        "issue #2024 and item #1",
        "between 100-2000 units",
        "score +5 10 20",
        "1234567 is only seven digits",
        "a 20 digit number 12345678901234567890",
        "user@localhost has no domain",
        "where is my order",
    ],
)
def test_scrub_negative(text: str) -> None:
    scrubbed, counts = scrub_text(text)
    assert scrubbed == text
    assert counts == dict.fromkeys(PII_KINDS, 0)


def test_scrub_mixed_text_counts_every_kind() -> None:
    text = (
        "I'm jane@example.com, card 4111 1111 1111 1111, order MA-2024-118233 "
        "and #48213397, call +1 555 010 1234 or (555) 010-1234 in 2024 for $12.99"
    )
    scrubbed, counts = scrub_text(text)
    assert scrubbed == (
        "I'm <EMAIL>, card <CARD>, order <ORDER_ID> and <ORDER_ID>, call <PHONE> or "
        "<PHONE> in 2024 for $12.99"
    )
    assert counts == {"email": 1, "phone": 2, "card": 1, "order_id": 2}


def test_scrub_is_idempotent() -> None:
    once, _ = scrub_text("mail a@b.io, card 4111111111111111, call 555-0123, #48213397")
    twice, counts = scrub_text(once)
    assert twice == once
    assert sum(counts.values()) == 0
    assert all(placeholder in once for placeholder in ("<EMAIL>", "<CARD>", "<PHONE>"))


def test_scrub_pii_sums_counts_and_keeps_other_fields() -> None:
    clean = Example("nothing here", "a", source="f:1")
    dirty = Example("mail a@b.io or c@d.io", "b", weight=2.0, slice="s", source="f:2")
    result = scrub_pii([clean, dirty])
    assert result.examples[0] is clean
    assert result.examples[1] == Example("mail <EMAIL> or <EMAIL>", "b", 2.0, "s", "f:2")
    assert result.counts == {"email": 2, "phone": 0, "card": 0, "order_id": 0}
    assert set(PLACEHOLDERS) == set(PII_KINDS)


def test_scrub_pii_of_nothing_has_every_kind() -> None:
    assert scrub_pii([]).counts == dict.fromkeys(PII_KINDS, 0)


@pytest.mark.parametrize(
    ("digits", "valid"),
    [("4111111111111111", True), ("378282246310005", True), ("4111111111111112", False)],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid
