"""The prompt of a generate bundle: the manifest's ``generation`` section and the user turn.

The user turn is ``user_template`` filled with the catalog evidence (one ``- line`` per
record, :data:`NO_EVIDENCE` when there is none) and the question; training
(:mod:`kdedge.llm.prompts`) and serving fill the same template.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdedge.errors import ModelError
from kdedge.runtimes.bundle import MANIFEST, Manifest

NO_EVIDENCE = "(no matching catalog records)"  # the evidence line of a question with none


@dataclass(frozen=True)
class GenerationConfig:
    """The manifest's ``generation`` section: how to prompt the model and when to stop."""

    system_prompt: str = ""
    user_template: str = "{question}"
    chat_template: str | None = None  # used only when the GGUF carries none
    context_length: int = 2048
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    eos_token: str | None = None

    def __post_init__(self) -> None:
        fields_in = {f for _, f, _, _ in string.Formatter().parse(self.user_template) if f}
        if "question" not in fields_in or not fields_in <= {"question", "evidence"}:
            raise ModelError(
                f"generation user_template {self.user_template[:60]!r} must hold {{question}} "
                "and may hold {evidence}, nothing else; re-export the bundle"
            )
        if self.context_length < 16 or self.max_new_tokens < 1:
            raise ModelError(
                f"generation context_length ({self.context_length}) must be >= 16 and "
                f"max_new_tokens ({self.max_new_tokens}) >= 1; re-export the bundle"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = MANIFEST) -> GenerationConfig:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known and v is not None}
        try:
            for key in ("context_length", "max_new_tokens"):
                if key in values:
                    values[key] = int(values[key])
            if "stop" in values:
                stop = values["stop"]
                values["stop"] = (stop,) if isinstance(stop, str) else tuple(map(str, stop))
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{where}: malformed generation section: {exc}") from exc

    @classmethod
    def of(cls, root: Path, manifest: Manifest) -> GenerationConfig:
        """The manifest's section, checked; a generate bundle without one cannot be served."""
        where = str(root / MANIFEST)
        section = manifest.generation
        if not section:
            raise ModelError(
                f"{where} has task 'generate' but no 'generation' section (prompt, template, "
                "limits); re-export the bundle with `kdedge export`"
            )
        if not isinstance(section, Mapping):
            raise ModelError(f"{where}: the generation section must be a JSON object")
        return cls.from_dict(section, where)

    def stops(self) -> tuple[str, ...]:
        return (*self.stop, self.eos_token) if self.eos_token else self.stop


def user_turn(template: str, question: str, evidence: Sequence[str] = ()) -> str:
    """The user message: the template filled with the evidence lines and the question."""
    lines = "\n".join(f"- {e}" for e in evidence) if evidence else NO_EVIDENCE
    return template.format(evidence=lines, question=question.strip())
