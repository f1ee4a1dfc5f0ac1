"""Teacher fallback: ask a bigger model when the student is unsure.

Two targets share one resilient core (:mod:`kdedge.runtimes.http_client`):

* :class:`OpenAIClient` talks to any OpenAI-compatible ``/v1/chat/completions`` endpoint
  (OpenAI, vLLM, llama.cpp's server, llama-cpp-python's server, ...). ``classify`` asks the
  teacher to pick one label and reply ``{"label": ...}``; ``answer`` is plain chat.
* :class:`KdedgeClient` calls another ``kdedge serve`` endpoint (``POST /predict``), e.g. the
  teacher classifier bundle.

Every call is bounded, retried and accounted for by the core: it ends counted in ``stats()``
as ok or failed with one :class:`FallbackError` kind.

This module is the public surface: the error, answer and target types (defined in
:mod:`kdedge.runtimes.fallback_target`), :func:`parse_label` (from
:mod:`kdedge.runtimes.teacher_reply`) and :func:`open_fallback`. The two clients live in
:mod:`kdedge.runtimes.teachers` and are imported from here lazily, so importing this module
alone loads neither httpx nor tenacity. Nothing below this module imports it back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kdedge.runtimes.fallback_target import (
    KDEDGE_PREFIX,
    KINDS,
    FallbackAnswer,
    FallbackError,
    FallbackTarget,
)
from kdedge.runtimes.teacher_reply import parse_label

if TYPE_CHECKING:
    from kdedge.runtimes.teachers import KdedgeClient, OpenAIClient

__all__ = [
    "KINDS",
    "FallbackAnswer",
    "FallbackError",
    "FallbackTarget",
    "KdedgeClient",
    "OpenAIClient",
    "open_fallback",
    "parse_label",
]

_CLIENTS = frozenset({"KdedgeClient", "OpenAIClient"})


def __getattr__(name: str) -> Any:
    """The clients, imported on first use: they need httpx and tenacity, this module not."""
    if name in _CLIENTS:
        import kdedge.runtimes.teachers as teachers

        return getattr(teachers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------- factory

_OPENAI_ONLY = ("max_tokens", "structured", "price_prompt_per_1k", "price_completion_per_1k")


def open_fallback(
    url: str, *, kind: str = "auto", model: str | None = None, **kwargs: Any
) -> OpenAIClient | KdedgeClient:
    """A fallback client for ``url``.

    ``kind``: ``"openai"``, ``"kdedge"`` or ``"auto"`` (kdedge when the URL starts with
    ``kdedge+``, e.g. ``kdedge+http://host:8080``, else openai). ``model`` is required for
    openai and ignored for kdedge, as are the OpenAI-only ``kwargs`` (max_tokens,
    structured, prices) and ``api_key_env="OPENAI_API_KEY"`` (an OpenAI key is never sent
    to a kdedge endpoint; name another variable for one behind a token proxy). Other
    ``kwargs`` go to the client.
    """
    from kdedge.runtimes.teachers import KdedgeClient, OpenAIClient

    url = url.strip()
    if kind == "auto":
        kind = "kdedge" if url.startswith(KDEDGE_PREFIX) else "openai"
    if kind == "kdedge":
        for key in _OPENAI_ONLY:
            kwargs.pop(key, None)
        if kwargs.get("api_key_env") == "OPENAI_API_KEY":
            del kwargs["api_key_env"]  # never send an OpenAI key to a kdedge endpoint
        return KdedgeClient(url, **kwargs)
    if kind == "openai":
        if url.startswith(KDEDGE_PREFIX):
            raise FallbackError(
                "config",
                f"URL {url!r} names a kdedge endpoint but kind is 'openai'",
                fix="drop the kdedge+ prefix or use kind='kdedge'",
            )
        if not model:
            raise FallbackError(
                "config",
                f"an OpenAI-compatible fallback at {url} needs a model name",
                fix="pass the teacher's model name (any name for a one-model local server)",
            )
        return OpenAIClient(url, model, **kwargs)
    raise FallbackError(
        "config",
        f"unknown fallback kind {kind!r}",
        fix="use one of: auto, openai, kdedge",
    )
