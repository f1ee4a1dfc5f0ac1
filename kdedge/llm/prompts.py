"""The chat prompt every stage shares: the teacher is asked it, the student is trained on it,
the runtime fills the same template (:func:`kdedge.runtimes.generation_prompt.user_turn`) from the
bundle's manifest.

Answers are grounded: the user turn carries the catalog evidence retrieved for the question,
so the model learns to answer from the evidence in front of it rather than from memory.
"""

from __future__ import annotations

from collections.abc import Sequence

from kdedge.runtimes.generation_prompt import NO_EVIDENCE
from kdedge.runtimes.generation_prompt import user_turn as fill_template

SYSTEM_PROMPT = (
    "You are MangaAssist, a bookstore assistant. Answer only from the catalog evidence. "
    "If the evidence does not answer the question, say you cannot confirm it. "
    "Refuse requests outside the store's policy. Hand complaints about orders, refunds or "
    "payments to a human agent."
)
USER_TEMPLATE = "Catalog evidence:\n{evidence}\n\nCustomer: {question}"
__all__ = ["NO_EVIDENCE", "SYSTEM_PROMPT", "USER_TEMPLATE", "messages", "user_turn"]


def user_turn(question: str, evidence: Sequence[str] = ()) -> str:
    """The user message: evidence lines (one catalog record each), then the question."""
    return fill_template(USER_TEMPLATE, question, evidence)


def messages(
    question: str, evidence: Sequence[str] = (), system: str = SYSTEM_PROMPT
) -> list[dict[str, str]]:
    """OpenAI-style messages for one grounded question."""
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": user_turn(question, evidence)},
    ]
