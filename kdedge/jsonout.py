"""JSON as kdedge writes it: strict (RFC 8259), so any reader can parse it.

Python's ``json`` writes ``NaN`` and ``Infinity`` for non-finite floats, which no strict
parser (JavaScript's ``JSON.parse``, Go, jq, ...) accepts. Everything kdedge emits (CLI
``--json`` output, HTTP responses, request logs, manifests, reports) goes through
:func:`dumps`: non-finite numbers become ``null`` and ``allow_nan=False`` guarantees none
slipped through.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def finite(data: Any) -> Any:
    """``data`` with every non-finite float (NaN, +/-Infinity) replaced by ``None``.

    Walks dicts, lists and tuples (tuples become lists, as JSON has no tuple); numpy
    scalars and arrays become plain Python values. Other objects are returned unchanged.
    """
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(value) for value in data]
    if isinstance(data, (np.floating, np.integer, np.bool_, np.ndarray)):
        return finite(data.tolist())
    return data


def dumps(data: Any, **options: Any) -> str:
    """``json.dumps`` of :func:`finite` ``(data)`` with ``allow_nan=False``."""
    return json.dumps(finite(data), allow_nan=False, **options)
