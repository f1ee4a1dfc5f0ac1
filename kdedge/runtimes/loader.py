"""``load``: open any kdedge bundle for inference, whatever its task.

The manifest's ``task`` picks the family's opener from :data:`kdedge.tasks.TASKS`: a
:class:`~kdedge.runtimes.runtime.Runtime` for ``intent``, a
:class:`~kdedge.runtimes.generate.GenerationRuntime` for ``generate``, a
:class:`~kdedge.runtimes.rerank.RerankRuntime` for ``rerank``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdedge.runtimes.bundle import MANIFEST, read_manifest
from kdedge.tasks import get_task

if TYPE_CHECKING:
    from kdedge.runtimes.fallback_target import FallbackTarget
    from kdedge.runtimes.generate import GenerationRuntime
    from kdedge.runtimes.generation_router import GenerationPolicy
    from kdedge.runtimes.requestlog import TieredLog
    from kdedge.runtimes.rerank import RerankPolicy, RerankRuntime
    from kdedge.runtimes.router import RouterPolicy
    from kdedge.runtimes.runtime import Runtime

    Policy = RouterPolicy | GenerationPolicy | RerankPolicy


def load(
    bundle: str | Path,
    *,
    artifact: str | None = None,
    backend: str | None = None,
    threads: int | None = None,
    policy: RouterPolicy
    | GenerationPolicy
    | RerankPolicy
    | Mapping[str, Any]
    | str
    | Path
    | None = None,
    fallback: FallbackTarget | None = None,
    low_cost: FallbackTarget | None = None,
    log: TieredLog | None = None,
    verify: bool = True,
    batch_size: int = 32,
    target: str | None = None,
) -> Runtime | GenerationRuntime | RerankRuntime:
    """Open a bundle for inference with the runtime of its task.

    Picks the fastest passing artifact whose engine is installed and whose target hints
    fit this host, unless ``artifact`` (a name such as ``"onnx-int8"``) or ``backend``
    (``onnxruntime``, ``openvino``, ``llamacpp``) says otherwise. Figures that ``kdedge
    bench --apply`` recorded in the bundle rank first: those of ``target`` (say
    ``"lambda-1024"``) when given, else of the bench target matching this host. ``verify``
    checks the sha256 of the tokenizer and of the chosen artifact's files before anything is
    loaded. ``policy`` is the router's (keys per task); ``fallback`` is called for
    ``fallback`` routes, ``low_cost`` (when given) instead of it for low-confidence ones.
    ``batch_size`` (pairs or texts per engine call) applies to classifiers and rerankers.
    """
    root = Path(bundle)
    manifest = read_manifest(root)
    options: dict[str, Any] = {
        "artifact": artifact,
        "backend": backend,
        "threads": threads,
        "policy": policy,
        "fallback": fallback,
        "low_cost": low_cost,
        "log": log,
        "verify": verify,
        "target": target,
    }
    task = get_task(manifest.task, str(root / MANIFEST))
    if task.name in ("intent", "rerank"):
        options["batch_size"] = batch_size
    return task.entry("open")(root, manifest, **options)
