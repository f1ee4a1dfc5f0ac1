"""The embeddable runtime: torch-free inference over an exported kdedge bundle.

::

    from kdedge.runtimes import load
    rt = load("bundle/")                  # the best artifact for this machine
    p = rt.predict("where is my order?")  # label, confidence, probs, route

    gen = load("llm-bundle/")             # a `generate` bundle: a GenerationRuntime
    g = gen.generate("Is Nana in stock?", ["Nana vol. 1 | paperback | in stock"])

    rr = load("rerank-bundle/")           # a `rerank` bundle: a RerankRuntime
    r = rr.rerank("how do I cross out text?", passages, top_k=3)

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
    "load": "kdedge.runtimes.loader",
    "Runtime": "kdedge.runtimes.runtime",
    "Prediction": "kdedge.runtimes.prediction",
    "GenerationRuntime": "kdedge.runtimes.generate",
    "Generation": "kdedge.runtimes.generation_result",
    "GenerationPolicy": "kdedge.runtimes.generation_router",
    "RerankRuntime": "kdedge.runtimes.rerank",
    "Reranking": "kdedge.runtimes.rerank",
    "RerankPolicy": "kdedge.runtimes.rerank",
    "Router": "kdedge.runtimes.router",
    "RouterPolicy": "kdedge.runtimes.router",
    "TieredLog": "kdedge.runtimes.requestlog",
    "FallbackAnswer": "kdedge.runtimes.fallback_target",
    "FallbackError": "kdedge.runtimes.fallback_target",
    "FallbackTarget": "kdedge.runtimes.fallback_target",
    "OpenAIClient": "kdedge.runtimes.teachers",
    "KdedgeClient": "kdedge.runtimes.teachers",
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
    "RerankPolicy",
    "RerankRuntime",
    "Reranking",
    "Router",
    "RouterPolicy",
    "Runtime",
    "TieredLog",
    "load",
    "open_fallback",
]

if TYPE_CHECKING:
    from kdedge.runtimes.fallback import open_fallback
    from kdedge.runtimes.fallback_target import FallbackAnswer, FallbackError, FallbackTarget
    from kdedge.runtimes.generate import GenerationRuntime
    from kdedge.runtimes.generation_result import Generation
    from kdedge.runtimes.generation_router import GenerationPolicy
    from kdedge.runtimes.loader import load
    from kdedge.runtimes.prediction import Prediction
    from kdedge.runtimes.requestlog import TieredLog
    from kdedge.runtimes.rerank import Reranking, RerankPolicy, RerankRuntime
    from kdedge.runtimes.router import Router, RouterPolicy
    from kdedge.runtimes.runtime import Runtime
    from kdedge.runtimes.teachers import KdedgeClient, OpenAIClient


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kdedge.runtimes' has no attribute {name!r}")
