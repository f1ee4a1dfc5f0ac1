"""Reading a teacher's classification reply: which label did it choose?"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from kdedge.runtimes.fallback_target import FallbackError


def _strip_fences(content: str) -> str:
    text = content.strip()
    match = re.fullmatch(r"```[\w+-]*[ \t]*\n?(.*?)\n?[ \t]*```", text, flags=re.DOTALL)
    return match.group(1).strip() if match else text


def match_label(candidate: str, labels: Sequence[str]) -> str | None:
    """``candidate`` as spelled in ``labels`` (exact, then unique case-insensitive match)."""
    candidate = candidate.strip()
    if candidate in labels:
        return candidate
    folded = [label for label in labels if label.casefold() == candidate.casefold()]
    return folded[0] if len(folded) == 1 else None


class BadContent(Exception):
    """A reply that names no valid label; :attr:`kind` is ``malformed`` or ``invalid_label``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def parse_label(content: str, labels: Sequence[str]) -> str:
    """The label in a teacher's reply, spelled as in ``labels``.

    Accepts ``{"label": "..."}`` (optionally in a code fence, surrounded by whitespace) or
    a bare label; the match is exact, then case-insensitive. Raises :class:`FallbackError`
    ``malformed`` for anything else and ``invalid_label`` for a JSON label outside the set.
    """
    try:
        return read_label(content, labels)
    except BadContent as exc:
        raise FallbackError(exc.kind, str(exc), raw=content) from None


def read_label(content: str, labels: Sequence[str]) -> str:
    """:func:`parse_label` raising :class:`BadContent`, for clients that word their own error."""
    body = _strip_fences(content)
    try:
        value: Any = json.loads(body)
    except ValueError:
        value = body
        bare = True
    else:
        bare = isinstance(value, str)
    if isinstance(value, dict):
        label = value.get("label")
        if not isinstance(label, str):
            raise BadContent("malformed", 'reply is JSON without a string "label" field')
        match = match_label(label, labels)
        if match is None:
            raise BadContent(
                "invalid_label", f"teacher chose {label[:80]!r}, which is not in the label set"
            )
        return match
    if bare and isinstance(value, str):
        match = match_label(value, labels)
        if match is not None:
            return match
    raise BadContent("malformed", f'reply is neither {{"label": ...}} nor a label: {body[:80]!r}')
