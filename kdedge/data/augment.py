"""Offline transfer sets: new unlabeled texts made from the training text, for the teacher
to label and the student to learn from (seed 003, decision point 4).

Distillation gains from showing the student more of the teacher's behaviour than the
labeled rows cover. Paraphrasing with a hosted LLM or back-translation needs the network;
these edits need nothing but the text itself and a seed:

- ``drop``: delete one word (a shorter, sloppier query);
- ``swap``: exchange two neighbouring words (word-order noise);
- ``splice``: the first part of one text joined to the last part of a text from another
  label. These sit between intents, where a teacher's soft labels carry the most
  information and where out-of-scope boundaries are learned;
- ``shuffle``: the words of a text in random order (bag-of-words; a hard negative).

Texts are never labelled here: the teacher labels them through the logit cache. (No
augmentation library does this offline without model downloads; nlpaug and TextAttack
fetch WordNet or embeddings, so the few edits are written here.)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kdedge.data.records import Example
from kdedge.errors import ConfigError

OPS = ("drop", "swap", "splice", "shuffle")


def _drop(words: list[str], rng: random.Random, _other: list[str]) -> list[str] | None:
    if len(words) < 3:
        return None
    i = rng.randrange(len(words))
    return words[:i] + words[i + 1 :]


def _swap(words: list[str], rng: random.Random, _other: list[str]) -> list[str] | None:
    if len(words) < 3:
        return None
    i = rng.randrange(len(words) - 1)
    out = list(words)
    out[i], out[i + 1] = out[i + 1], out[i]
    return out


def _splice(words: list[str], rng: random.Random, other: list[str]) -> list[str] | None:
    if len(words) < 2 or len(other) < 2:
        return None
    return words[: rng.randint(1, len(words) - 1)] + other[rng.randint(1, len(other) - 1) :]


def _shuffle(words: list[str], rng: random.Random, _other: list[str]) -> list[str] | None:
    if len(words) < 3:
        return None
    out = list(words)
    for _ in range(3):  # a few tries to move something
        rng.shuffle(out)
        if out != words:
            return out
    return None


_EDITS: dict[str, Callable[[list[str], random.Random, list[str]], list[str] | None]] = {
    "drop": _drop,
    "swap": _swap,
    "splice": _splice,
    "shuffle": _shuffle,
}


@dataclass(frozen=True)
class AugmentReport:
    sources: int
    written: int
    per_op: dict[str, int]
    skipped: int  # edits that were impossible (text too short) or gave a known text

    def to_dict(self) -> dict:
        return {
            "sources": self.sources,
            "written": self.written,
            "per_op": self.per_op,
            "skipped": self.skipped,
        }


def augment(
    examples: Sequence[Example],
    *,
    per_text: int = 1,
    ops: Sequence[str] = OPS,
    seed: int = 0,
    exclude: Sequence[str] = (),
) -> tuple[list[Example], AugmentReport]:
    """``per_text`` edited copies of each example, unlabeled, new texts only.

    A copy is dropped when it equals a source text, a text in ``exclude`` (pass the
    validation and test texts so the transfer set cannot leak them) or an earlier copy.
    ``Example.slice`` records the edit, ``source`` the row it came from.
    """
    unknown = [op for op in ops if op not in _EDITS]
    if unknown or not ops:
        raise ConfigError(
            f"unknown augmentation op(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(OPS)}"
        )
    if per_text < 1:
        raise ConfigError(f"per_text must be >= 1, got {per_text}")
    if not examples:
        raise ConfigError("nothing to augment: no source texts")
    rng = random.Random(seed)
    known = {e.text for e in examples} | set(exclude)
    words = [e.text.split() for e in examples]
    by_label: dict[str | None, list[int]] = {}
    for i, e in enumerate(examples):
        by_label.setdefault(e.label, []).append(i)
    labels = list(by_label)
    out: list[Example] = []
    per_op = dict.fromkeys(ops, 0)
    skipped = 0
    for i, e in enumerate(examples):
        for _ in range(per_text):
            op = ops[rng.randrange(len(ops))]
            other: list[str] = []
            if op == "splice":
                others = [lab for lab in labels if lab != e.label] or labels
                pool = by_label[others[rng.randrange(len(others))]]
                other = words[pool[rng.randrange(len(pool))]]
            edited = _EDITS[op](words[i], rng, other)
            text = " ".join(edited) if edited else ""
            if not text or text in known:
                skipped += 1
                continue
            known.add(text)
            per_op[op] += 1
            out.append(Example(text, None, slice=f"augment:{op}", source=e.source))
    return out, AugmentReport(len(examples), len(out), per_op, skipped)
