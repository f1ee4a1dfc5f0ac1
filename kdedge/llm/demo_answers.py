"""The demo teacher's answers: catalog facts in hand-written phrasings, no model.

:class:`DemoTeacher` reads the catalog evidence and the question out of the user turn (the
format of :mod:`kdedge.llm.prompts`) and writes an answer from the catalog facts with
phrasings picked by a hash of the prompt: formats, stock, prices and volume counts for
catalog questions; titles of the same genre or author for recommendations; a refusal for
out-of-policy asks (pirated scans, other customers' data, fake reviews, ...); a hand-off to
a human agent for order, refund and payment complaints; "I can't confirm" when the evidence
holds no record. Same prompt, same seed: same answer.

``error_rate`` makes that share of the fact-bearing answers (catalog questions and
recommendations, chosen by prompt hash) state one wrong fact with full confidence: a
format the store does not sell, a wrong stock status, price or volume count. The grounding
gate has to catch those; :class:`DemoAnswer` says which fact was wrong, so tests can score
the gate. :mod:`kdedge.llm.demo_teacher` serves these answers over HTTP.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kdedge.llm.catalog import Catalog, Offer, Record, volumes_phrase
from kdedge.llm.prompts import NO_EVIDENCE

MODEL = "demo-teacher"
ERRORS = ("format", "availability", "price", "volumes")

_REFUSE_PIRACY = re.compile(
    r"\b(?:for\s+free|free\s+online|scans?|scanned|torrent|pirat\w*|download|leak\w*|"
    r"counterfeit|chapters\s+online)\b",
    re.I,
)
_REFUSE_PRIVACY = re.compile(
    r"\b(?:another\s+customer|other\s+customer|someone\s+else|customer\s+before\s+me|"
    r"person\s+who\s+ordered|neighbou?r'?s|card\s+number|address\s+of)\b",
    re.I,
)
_REFUSE_OTHER = re.compile(
    r"\b(?:fake\s+\S*\s*reviews?|fake\s+five|get\s+around\s+the\s+age|bypass|"
    r"employee\s+discount)",
    re.I,
)
_ESCALATE = re.compile(
    r"\b(?:refund\w*|charged|damaged|never\s+arrived|wrong\s+book|missing\s+volume|"
    r"cancel\s+my\s+order|complain\w*|payment\s+fail\w*|tracking|money\s+back|gift\s+card|"
    r"got\s+cancelled|returned)\b",
    re.I,
)
_RECOMMEND = re.compile(
    r"\b(?:recommend\w*|suggest\w*|similar|something\s+like|what\s+else|read\s+next|"
    r"where\s+should\s+i\s+start|get\s+into|for\s+a\s+gift|series\s+do\s+you\s+have|"
    r"if\s+i\s+liked)\b",
    re.I,
)
_PRICE_ASK = re.compile(r"\b(?:how\s+much|price|cost|charge|set\s+me\s+back)\b", re.I)
_VOLUMES_ASK = re.compile(
    r"\b(?:how\s+many\s+(?:volumes|books)|how\s+long\s+is|volume\s+count|finished|all\s+of)\b",
    re.I,
)
_FORMATS_ASK = re.compile(r"\b(?:formats?|editions|versions|options|other\s+versions)\b", re.I)
_VOLUME_NO = re.compile(r"\b(?:volume|vol\.?)\s*(\d{1,3})\b", re.I)
_FORMAT_WORDS = {
    "paperback": re.compile(r"\b(?:paperback|softcover)\b", re.I),
    "hardcover": re.compile(r"\b(?:hardcover|hardback)\b", re.I),
    "digital": re.compile(r"\b(?:digital\w*|ebook|e-book)\b", re.I),
    "box set": re.compile(r"\b(?:box(?:ed)?\s+set)\b", re.I),
}
TOKENS = re.compile(r"\w+|[^\w\s]")
"""What the demo counts as one token (a word or a punctuation mark) in ``usage``."""
_SHOWN = {
    "paperback": "paperback",
    "hardcover": "hardcover",
    "digital": "digital edition",
    "box set": "box set",
}
_STATUS_WORDS = {
    "in_stock": (
        "is in stock",
        "is in stock right now",
        "is on our shelves",
        "is in stock and ready to ship",
    ),
    "out_of_stock": ("is out of stock", "is sold out at the moment", "is currently out of stock"),
    "preorder": ("is available for preorder", "is up for preorder", "can be preordered"),
}
_CANNOT_CONFIRM = (
    "I can't confirm that: I couldn't find that title in our catalog.",
    "I'm sorry, I can't confirm that one. It isn't in our catalog, so I have no stock or price "
    "details for it.",
    "I couldn't find that title in our catalog, so I can't confirm whether we have it.",
)
_REFUSALS = {
    "piracy": (
        "Sorry, I can't help with scans or unofficial copies; sharing them is against our "
        "policy. I'm happy to help you find the official editions.",
        "I can't help with that. Pirated or scanned copies are against the store's policy.",
    ),
    "privacy": (
        "I'm sorry, but I can't share other customers' details or orders. That's against our "
        "privacy policy.",
        "I can't disclose anything about another customer's account or orders.",
    ),
    "other": (
        "Sorry, that's not something I can help with; it's against our store policy.",
        "I can't help with that request, as it goes against the store's policy.",
    ),
}
_ESCALATIONS = (
    "I'm sorry about this. I'm handing your case to a human agent, who will follow up by email "
    "shortly.",
    "That shouldn't have happened, and I'm sorry. Let me connect you with our support team so a "
    "person can sort out your order.",
    "Thanks for telling us. I've escalated this to a human agent; they can look at your order "
    "and payment details.",
)


@dataclass(frozen=True)
class DemoAnswer:
    """One answer and, when it was injected, the kind of wrong fact it carries."""

    text: str
    kind: str  # catalog | recommendation | refusal | escalation | unknown_title
    error: str | None = None


def parse_user_turn(text: str) -> tuple[str, list[str]]:
    """``(question, evidence lines)`` from a user turn written by :func:`prompts.user_turn`."""
    head, sep, question = text.rpartition("\n\nCustomer: ")
    if not sep:
        return text.strip(), []
    block = head.split("Catalog evidence:\n", 1)[-1]
    if block.strip() == NO_EVIDENCE:
        return question.strip(), []
    lines = [line[2:].strip() for line in block.split("\n") if line.startswith("- ")]
    return question.strip(), lines


class DemoTeacher:
    """Answers grounded questions from a catalog; see the module docstring."""

    def __init__(
        self, catalog: Catalog, *, error_rate: float = 0.0, seed: int = 0, model: str = MODEL
    ) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
        self.catalog = catalog
        self.error_rate = error_rate
        self.seed = seed
        self.model = model
        self.genres = sorted({r.genre for r in catalog if r.genre}, key=len, reverse=True)

    def reply(self, messages: Sequence[dict[str, Any]]) -> DemoAnswer:
        """The answer to the last user message of an OpenAI-style conversation."""
        user = [m for m in messages if m.get("role") == "user"]
        if not user or not isinstance(user[-1].get("content"), str):
            raise ValueError("messages need a user message with text content")
        question, evidence = parse_user_turn(user[-1]["content"])
        return self.answer(question, evidence)

    def answer(self, question: str, evidence: Sequence[str] = ()) -> DemoAnswer:
        """The answer to ``question`` given evidence lines (``Record.evidence_line`` form)."""
        digest = hashlib.sha256(f"{self.seed}\n{question}\n{evidence}".encode()).digest()
        rng = random.Random(digest)
        inject = int.from_bytes(digest[:8], "big") / 2**64 < self.error_rate
        records = self.catalog.resolve_evidence([e for e in evidence if e.strip()])
        if _REFUSE_PIRACY.search(question):
            return DemoAnswer(rng.choice(_REFUSALS["piracy"]), "refusal")
        if _REFUSE_PRIVACY.search(question):
            return DemoAnswer(rng.choice(_REFUSALS["privacy"]), "refusal")
        if _REFUSE_OTHER.search(question):
            return DemoAnswer(rng.choice(_REFUSALS["other"]), "refusal")
        if _ESCALATE.search(question):
            return DemoAnswer(rng.choice(_ESCALATIONS), "escalation")
        if _RECOMMEND.search(question):
            return self._recommend(question, records, rng, inject)
        if not records:
            return DemoAnswer(rng.choice(_CANNOT_CONFIRM), "unknown_title")
        return self._catalog(question, records[0], rng, inject)

    # ------------------------------------------------------------------ catalog answers

    def _catalog(
        self, question: str, record: Record, rng: random.Random, inject: bool
    ) -> DemoAnswer:
        asked = [f for f, pattern in _FORMAT_WORDS.items() if pattern.search(question)]
        number = _VOLUME_NO.search(question)
        if number:
            facet = "volume"
        elif _VOLUMES_ASK.search(question):
            facet = "volumes"
        elif _PRICE_ASK.search(question):
            facet = "price"
        elif _FORMATS_ASK.search(question) and not asked:
            facet = "formats"
        else:
            facet = "stock"
        fmt = asked[0] if asked else None
        n = int(number.group(1)) if number else 0
        state = rng.getstate()
        error = None
        if inject:
            record, error = _mutate(record, facet, fmt, rng, n=n)
        rng.setstate(state)
        return DemoAnswer(_render(record, facet, fmt, n, rng), "catalog", error)

    def _recommend(
        self, question: str, records: list[Record], rng: random.Random, inject: bool
    ) -> DemoAnswer:
        base = records[0] if records else None
        if base is not None:
            pool = [r for r in self.catalog if r.genre == base.genre and r.id != base.id]
            pool = pool or [r for r in self.catalog if r.author == base.author and r.id != base.id]
            genre = base.genre
        else:
            genre = next(
                (g for g in self.genres if re.search(rf"\b{re.escape(g)}\b", question, re.I)), None
            )
            pool = [r for r in self.catalog if genre and r.genre == genre]
        if not pool:
            return DemoAnswer(
                "I can't confirm a good match from our catalog for that. Could you name a title "
                "or genre you enjoy?",
                "recommendation",
            )
        picks = rng.sample(pool, min(len(pool), rng.choice((1, 2))))
        main = picks[0]
        state = rng.getstate()
        error = None
        if inject:
            main, error = _mutate(
                main, "stock", None, rng, kinds=("availability", "price", "volumes")
            )
        rng.setstate(state)
        fmt = main.offers[0]
        lead = (
            rng.choice(
                (
                    "If you enjoyed {b}, try {p}",
                    "Fans of {b} often love {p}",
                    "Since you liked {b}, I'd suggest {p}",
                )
            )
            if base is not None
            else rng.choice(
                ("For {g}, try {p}", "A great {g} pick is {p}", "I'd suggest {p} for {g}")
            )
        )
        text = (
            lead.format(b=base.title if base else "", p=main.title, g=genre) + f" by {main.author}."
        )
        text += " " + rng.choice(
            (
                "It runs {v}, and the {f} {s} at ${p:.2f}.",
                "It's {v} long; the {f} {s} (${p:.2f}).",
                "The {f} {s} at ${p:.2f}, and the series runs {v}.",
            )
        ).format(
            v=volumes_phrase(main.volumes),
            f=_SHOWN[fmt.format],
            s=_status(fmt, rng),
            p=fmt.price_usd,
        )
        if len(picks) > 1:
            text += f" {picks[1].title} is another good choice."
        return DemoAnswer(text, "recommendation", error)


def _status(offer: Offer, rng: random.Random) -> str:
    return rng.choice(_STATUS_WORDS[offer.availability])


def _join(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _render(record: Record, facet: str, fmt: str | None, n: int, rng: random.Random) -> str:
    """The answer text for one catalog question (``record`` may carry an injected error)."""
    title = record.title
    listed = _join([_SHOWN[f] for f in record.formats])

    def offer_line(o: Offer) -> str:
        return rng.choice(
            (
                f"the {_SHOWN[o.format]} {_status(o, rng)} at ${o.price_usd:.2f}",
                f"the {_SHOWN[o.format]} (${o.price_usd:.2f}) {_status(o, rng)}",
            )
        )

    if facet == "volume":
        if n > record.volumes or n < 1:
            return (
                f"I can't confirm a volume {n}: our listing for {title} has "
                f"{volumes_phrase(record.volumes)}."
            )
        first = record.offer(fmt) if fmt and record.offer(fmt) else record.offers[0]
        return f"Volume {n} of {title} is part of the series; {offer_line(first)}."
    if facet == "volumes":
        return rng.choice(
            (
                f"{title} runs {volumes_phrase(record.volumes)}.",
                f"{title} is complete in {volumes_phrase(record.volumes)} in our listing.",
                f"Our listing for {title} has {volumes_phrase(record.volumes)}.",
            )
        )
    if fmt is not None and record.offer(fmt) is None:
        others = "; ".join(offer_line(o) for o in record.offers)
        return rng.choice(
            (
                f"Sorry, there's no {_SHOWN[fmt]} of {title}. It comes in {listed}: {others}.",
                f"We don't carry {title} as a {_SHOWN[fmt]}. It is sold in {listed}; {others}.",
                f"{title} isn't published in {fmt}. We have it in {listed}: {others}.",
            )
        )
    if fmt is not None:
        o = record.offer(fmt)
        assert o is not None
        if facet == "price":
            return rng.choice(
                (
                    f"The {_SHOWN[fmt]} of {title} costs ${o.price_usd:.2f} per volume, and it "
                    f"{_status(o, rng)}.",
                    f"{title} is ${o.price_usd:.2f} for the {_SHOWN[fmt]}; it {_status(o, rng)}.",
                )
            )
        return rng.choice(
            (
                f"For {title}, {offer_line(o)}.",
                f"Yes, we sell {title} as a {_SHOWN[fmt]}: it {_status(o, rng)} at "
                f"${o.price_usd:.2f}.",
                f"Good question! The {_SHOWN[fmt]} of {title} {_status(o, rng)} "
                f"(${o.price_usd:.2f}).",
            )
        )
    lines = "; ".join(offer_line(o) for o in record.offers)
    if facet == "formats":
        return rng.choice(
            (
                f"{title} comes in {listed}: {lines}.",
                f"We sell {title} in {listed}. Right now {lines}.",
            )
        )
    if facet == "price":
        return rng.choice((f"Prices for {title}: {lines}.", f"For {title}, {lines}."))
    lead = lines[0].upper() + lines[1:]
    return rng.choice(
        (
            f"{title} by {record.author} runs {volumes_phrase(record.volumes)}. {lead}.",
            f"Yes, we carry {title} ({volumes_phrase(record.volumes)}): {lines}.",
            f"{title} is in our catalog with {volumes_phrase(record.volumes)}. {lead}.",
        )
    )


def _mutate(
    record: Record,
    facet: str,
    fmt: str | None,
    rng: random.Random,
    kinds: Sequence[str] = ERRORS,
    n: int = 0,
) -> tuple[Record, str]:
    """``record`` with one fact made wrong, among the facts the answer will state."""
    missing = [
        f for f in ("paperback", "hardcover", "digital", "box set") if f not in record.formats
    ]
    if facet == "volumes":
        options = ["volumes"]
    elif facet == "volume":
        options = ["availability", "price"] if 1 <= n <= record.volumes else ["volumes"]
    elif fmt is not None and record.offer(fmt) is None:
        options = ["format"]
    elif fmt is not None:
        options = ["availability", "price"] if facet != "price" else ["price"]
    else:
        options = ["availability", "price", "format"] + (["volumes"] if facet == "stock" else [])
    options = [o for o in options if o in kinds and (o != "format" or missing)]
    kind = rng.choice(options or ["availability"])
    offers = list(record.offers)
    if kind == "volumes":
        delta = rng.choice((-9, -5, -3, -2, 2, 3, 5, 9))
        volumes = (
            record.volumes + delta if record.volumes + delta >= 1 else record.volumes + abs(delta)
        )
        return dataclasses.replace(record, volumes=volumes), kind
    if kind == "format":
        target = fmt if fmt is not None and fmt in missing else rng.choice(missing)
        offers.append(Offer(target, "in_stock", _wrong_price(record, rng)))
        order = ("paperback", "hardcover", "digital", "box set")
        offers.sort(key=lambda o: order.index(o.format))
        return dataclasses.replace(record, offers=tuple(offers)), kind
    i = next((k for k, o in enumerate(offers) if o.format == fmt), 0)
    o = offers[i]
    if kind == "price":
        offers[i] = dataclasses.replace(o, price_usd=_wrong_price(record, rng))
    else:
        flipped = "out_of_stock" if o.availability == "in_stock" else "in_stock"
        offers[i] = dataclasses.replace(o, availability=flipped)
    return dataclasses.replace(record, offers=tuple(offers)), kind


def _wrong_price(record: Record, rng: random.Random) -> float:
    """A plausible price that no format of ``record`` has, nor a multiple of one."""
    base = record.offers[0].price_usd
    for _ in range(100):
        value = round(base + rng.choice((1, 2, 3, 4, 5, 6, 8, 10, -1, -2, -3)), 2)
        clash = any(
            abs(value - o.price_usd * k) < 0.01
            for o in record.offers
            for k in range(1, record.volumes + 1)
        )
        if value > 0 and not clash:
            return value
    return round(base * 7.31 + 0.01, 2)


def count_tokens(text: str) -> int:
    """The demo's token count: words and punctuation marks."""
    return len(TOKENS.findall(text))
