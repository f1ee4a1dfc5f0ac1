from __future__ import annotations

from pathlib import Path

import pytest

from tests.llm.tiny import build_tiny_llama


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved random Llama with a byte-level BPE tokenizer (read-only: copy before changing)."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "model")
