"""The embeddable runtime: torch-free inference over an exported kdedge bundle.

::

    from kdedge.runtimes import load
    rt = load("bundle/")                  # the best artifact for this machine
    p = rt.predict("where is my order?")  # label, confidence, probs, route

    gen = load("llm-bundle/")             # a `generate` bundle: a GenerationRuntime
    g = gen.generate("Is Nana in stock?", ["Nana vol. 1 | paperback | in stock"])

Depends on numpy, tokenizers and the engine of the chosen artifact (onnxruntime, OpenVINO
or llama.cpp), plus httpx/tenacity for the teacher fallback and prometheus_client for
``kdedge serve``. It never imports torch, transformers, optimum, click or rich
(``tests/test_imports.py`` proves it in a fresh interpreter). Names are imported lazily, so
``import kdedge.runtimes`` itself costs almost nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "load": "kdedge.runtimes.runtime",
    "Runtime": "kdedge.runtimes.runtime",
    "Prediction": "kdedge.runtimes.runtime",
    "GenerationRuntime": "kdedge.runtimes.generate",
    "Generation": "kdedge.runtimes.generate",
    "GenerationPolicy": "kdedge.runtimes.generate",
    "Router": "kdedge.runtimes.router",
    "RouterPolicy": "kdedge.runtimes.router",
    "TieredLog": "kdedge.runtimes.requestlog",
    "FallbackAnswer": "kdedge.runtimes.fallback",
    "FallbackError": "kdedge.runtimes.fallback",
    "FallbackTarget": "kdedge.runtimes.fallback",
    "OpenAIClient": "kdedge.runtimes.fallback",
    "KdedgeClient": "kdedge.runtimes.fallback",
    "open_fallback": "kdedge.runtimes.fallback",
}

__all__ = [
    "FallbackAnswer",
    "FallbackError",
    "FallbackTarget",
    "Generation",
    "GenerationPolicy",
    "GenerationRuntime",
    "KdedgeClient",
    "OpenAIClient",
    "Prediction",
    "Router",
    "RouterPolicy",
    "Runtime",
    "TieredLog",
    "load",
    "open_fallback",
]

if TYPE_CHECKING:
    from kdedge.runtimes.fallback import (
        FallbackAnswer,
        FallbackError,
        FallbackTarget,
        KdedgeClient,
        OpenAIClient,
        open_fallback,
    )
    from kdedge.runtimes.generate import Generation, GenerationPolicy, GenerationRuntime
    from kdedge.runtimes.requestlog import TieredLog
    from kdedge.runtimes.router import Router, RouterPolicy
    from kdedge.runtimes.runtime import Prediction, Runtime, load


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kdedge.runtimes' has no attribute {name!r}")
