"""Tiny reranking fixtures: query groups built from the intent phrases and a tiny teacher."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.conftest import INTENTS, WORDS


def make_groups(n_queries: int, seed: int, n_candidates: int = 6):
    """Queries made of an intent phrase; its intent's phrases are relevant, others are not."""
    from kdedge.rerank.data import Candidate, QueryGroup

    rng = random.Random(seed)
    docs = [(label, phrase) for label, phrases in INTENTS.items() for phrase in phrases]
    groups = []
    for i in range(n_queries):
        label = rng.choice(sorted(INTENTS))
        query = f"{rng.choice(WORDS)} {rng.choice(INTENTS[label])}"
        pos = [d for d in docs if d[0] == label]
        neg = [d for d in docs if d[0] != label]
        chosen = rng.sample(pos, 2) + rng.sample(neg, n_candidates - 2)
        rng.shuffle(chosen)
        candidates = tuple(
            Candidate(f"d{docs.index(d)}", f"{d[1]} {rng.choice(WORDS)}", float(d[0] == label))
            for d in chosen
        )
        groups.append(QueryGroup(f"q{seed}-{i}", query, candidates))
    return groups


@pytest.fixture(scope="session")
def rerank_files(tmp_path_factory) -> dict[str, Path]:
    from kdedge.rerank.data import write_groups

    root = tmp_path_factory.mktemp("rerank_data")
    return {
        "train": write_groups(root / "train.jsonl", make_groups(24, seed=1)),
        "validation": write_groups(root / "validation.jsonl", make_groups(8, seed=2)),
        "test": write_groups(root / "test.jsonl", make_groups(8, seed=3)),
    }


@pytest.fixture(scope="session")
def tiny_rerank_teacher(tiny_base, rerank_files, tmp_path_factory) -> Path:
    """A 4-layer hidden-32 cross-encoder teacher trained for 2 epochs (about a second)."""
    from kdedge.rerank.config import RerankTrainConfig
    from kdedge.rerank.teacher import teach_reranker

    out = tmp_path_factory.mktemp("rerank_teacher") / "teacher"
    teach_reranker(
        tiny_base,
        rerank_files["train"],
        rerank_files["validation"],
        out,
        max_length=32,
        config=RerankTrainConfig(
            epochs=2, lr=3e-3, queries_per_batch=6, candidates_per_query=4, early_stop=False
        ),
        device="cpu",
    )
    return out
