"""Property-based fuzzing of every input kdedge reads from a user or a client.

One hypothesis profile for the folder: derandomized (the same examples on every run, so CI
cannot flake), no deadline (a loaded CI machine is slow, not wrong), and a modest number
of examples per property so that the whole folder stays well under a minute. Set
``KDEDGE_FUZZ_EXAMPLES`` to run more, e.g. overnight.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile(
    "kdedge-fuzz",
    max_examples=int(os.environ.get("KDEDGE_FUZZ_EXAMPLES", "60")),
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("kdedge-fuzz")

# Text as clients really send it: any code point, lone surrogates included (hypothesis
# leaves those out by default), plus words the tiny bundle knows and its poisoned ones.
any_char = st.characters(blacklist_categories=())
WORDS = ["where", "is", "my", "order", "fraud", "lawyer", "gift", "card", "poison", "huge"]
words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join)
texts = st.one_of(st.text(any_char, max_size=40), words, st.just("\ud800 hi"))

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**400, -(10**400)]),  # too large for a float: OverflowError bait
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


LONG_INT = "1" * 5000  # past Python's 4,300-digit limit: json.loads raises a bare ValueError


def deep(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    from tests.runtimes.tiny_bundle import build_tiny_bundle

    return build_tiny_bundle(tmp_path_factory.mktemp("fuzz") / "bundle")


@pytest.fixture(scope="session")
def tiny_runtime(tiny_bundle):
    from kdedge.runtimes import load

    with load(tiny_bundle, artifact="onnx") as runtime:
        yield runtime
