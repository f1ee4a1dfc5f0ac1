"""What an answer does besides stating catalog facts: hedge, refuse, hand off, or say the
catalog cannot confirm it. The gate (:mod:`kdedge.llm.gate`) reads these alongside the
claims; collect and mix use them to describe teacher answers.
"""

from __future__ import annotations

import re

from kdedge.llm.lexicon import alt, fold

_HEDGE_RE = re.compile(
    r"\b"
    + alt(
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
    alt(
        _I_CANNOT
        + alt(
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
    alt(
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
    alt(
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


def is_hedged(text: str) -> bool:
    """The answer hedges ("I think", "probably", "please double-check", ...)."""
    return _HEDGE_RE.search(fold(text)) is not None


def is_refusal(text: str) -> bool:
    """The answer declines the request ("I can't help with that", "against our policy")."""
    return _REFUSAL_RE.search(fold(text)) is not None


def is_escalation(text: str) -> bool:
    """The answer hands the customer to a person ("I'll connect you with our support team")."""
    return _ESCALATION_RE.search(fold(text)) is not None


def is_cannot_confirm(text: str) -> bool:
    """The answer says the catalog cannot confirm it ("I couldn't find that title")."""
    return _CANNOT_CONFIRM_RE.search(fold(text)) is not None
