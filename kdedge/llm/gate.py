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

Rows with a human ``reference`` are gold: :func:`kdedge.llm.gate_batch.gate_rows` does not
gate them, marks them ``source: human`` and counts them apart from the acceptance rate
(which is over teacher answers).

The claim reader is hand-written (regular expressions over clauses): no library extracts
typed catalog claims of this kind, and an NLI model would be neither offline-light nor
able to read the structured fields (formats, stock, prices) this check is about. Its parts:
:mod:`kdedge.llm.lexicon` (the patterns), :mod:`kdedge.llm.claim_events` (facts found per
clause), :mod:`kdedge.llm.claims` (subjects and verdicts) and :mod:`kdedge.llm.speech_acts`
(hedges, refusals, hand-offs, cannot-confirm). :mod:`kdedge.llm.gate_batch` gates a whole
answer file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from kdedge.errors import ConfigError
from kdedge.llm.catalog import Catalog, Record
from kdedge.llm.claims import CONTRADICTED, SUPPORTED, UNSUPPORTED, Claim, read_claims
from kdedge.llm.lexicon import alt
from kdedge.llm.speech_acts import is_cannot_confirm, is_escalation, is_hedged, is_refusal

# The prompt kinds a row may name.
KINDS = ("catalog", "recommendation", "refusal", "escalation", "unknown_title")
# A question that asks for recommendations: titles the answer names count as evidence.
_RECOMMEND_ASK = re.compile(
    r"\b"
    + alt(
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
    claims = read_claims(
        answer, catalog, question=question, default=records[0] if records else None
    )
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
    """Why a refusal, hand-off or cannot-confirm answer does not fit the row's ``kind``."""
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
