"""One process per device, started by ``torchrun`` or ``accelerate launch``.

kdedge never launches processes itself. When a launcher has set ``WORLD_SIZE`` > 1, the
first :func:`kdedge.distill.device.resolve` call joins the process group through
``accelerate`` (which picks gloo on CPU and NCCL on CUDA, and the device of this rank), and
the training and labeling loops ask this module four things:

- which rows of a global batch or a list are this rank's (:func:`shard_rows`, :func:`span`);
- the model to train, wrapped for gradient sync (:func:`prepare_model`: DDP, or FSDP when
  the launcher's accelerate config asks for it);
- the results of every rank, in order (:func:`gather_rows`, :func:`all_sum`);
- whether this rank writes (:attr:`Processes.main`): only rank 0 touches files.

Without a launcher every function is a cheap no-op, so single-process code pays nothing.
Collectives and the join are bounded by ``KDEDGE_DIST_TIMEOUT`` seconds (default 1800), and
a lost peer or a timeout surfaces as one :class:`~kdedge.errors.DistributedError` line.
``KDEDGE_DDP_COMPRESS=bf16`` (or ``fp16``) sends gradients in 16 bits, for slow links.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch

from kdedge.errors import DeviceError, DistributedError

T = TypeVar("T")
TIMEOUT_ENV = "KDEDGE_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800
# Gradients sent in 16 bits halve DDP's traffic (torch's compression comm hooks, through
# accelerate); off by default, since it rounds every gradient before the average.
COMPRESS_ENV = "KDEDGE_DDP_COMPRESS"
COMPRESSIONS = ("none", "bf16", "fp16")
# What gloo and NCCL raise when a peer process died or stalled.
_PEER_LOST = ("connection closed", "connection reset", "timed out", "timeout", "broken pipe")


@dataclass(frozen=True)
class Processes:
    """This process's place in the run: ``rank`` of ``world``, ``local_rank`` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files, logs and progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


SINGLE = Processes()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError as exc:
        raise DistributedError(f"{name}={value!r} is not an integer; check the launcher") from exc


def current() -> Processes:
    """This process's rank and world size, read from the launcher's environment."""
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return SINGLE
    rank = _env_int("RANK", 0)
    if not 0 <= rank < world:
        raise DistributedError(f"RANK={rank} is outside WORLD_SIZE={world}; check the launcher")
    return Processes(rank=rank, world=world, local_rank=_env_int("LOCAL_RANK", 0))


def launched() -> bool:
    """True when a launcher started this process as one of several."""
    return current().distributed


def timeout_s() -> int:
    """Seconds a rank waits for its peers (the join, a barrier, a gather) before failing."""
    seconds = _env_int(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)
    if seconds < 1:
        raise DistributedError(f"{TIMEOUT_ENV}={seconds}: must be at least 1 second")
    return seconds


def start(device_type: str) -> torch.device:
    """Join the process group (once) and return this rank's device.

    ``device_type`` is ``cuda`` or ``cpu``; Apple MPS has no torch.distributed backend.
    """
    if device_type == "mps":
        raise DeviceError(
            "multi-process runs are not supported on Apple MPS (torch.distributed has no MPS "
            "backend). Fix: run one process, or use --device cpu"
        )
    cpu = device_type == "cpu"
    if "accelerator" not in _JOINED:
        _JOINED["accelerator"] = _join(cpu)
    device = _JOINED["accelerator"].device
    if (device.type == "cpu") != cpu:
        raise DistributedError(
            f"this run joined its process group on {device.type}, but a later step asked "
            f"for {device_type}; use one --device for every stage of a multi-process run"
        )
    # accelerate says "cpu:0"; plain "cpu" keeps ``model.to(device)`` a no-op for models
    # already on the CPU (a copy made under inference_mode could never train again).
    return torch.device("cpu") if cpu else device


def _check_backend(cpu: bool) -> None:
    import torch.distributed as dist

    if not dist.is_available():
        raise DistributedError(
            "this torch build has no torch.distributed, so it cannot run under a multi-process "
            "launcher. Fix: install a torch build with distributed support, or run one process"
        )
    if cpu and not dist.is_gloo_available():
        raise DistributedError(
            "the gloo backend that CPU runs need is missing from this torch build. Fix: install "
            "the official torch wheel, or run one process"
        )
    if not cpu and not dist.is_nccl_available():
        raise DistributedError(
            "the NCCL backend that CUDA runs need is missing from this torch build. Fix: install "
            "a CUDA build of torch, or launch with --device cpu"
        )


_JOINED: dict[str, Any] = {}  # "accelerator": the run's Accelerator, set by start()


def _join(cpu: bool) -> Any:
    from kdedge.extras import require

    Accelerator = require("accelerate", "train", "A multi-process run").Accelerator
    from accelerate.utils import (
        DDPCommunicationHookType,
        DistributedDataParallelKwargs,
        InitProcessGroupKwargs,
    )

    _check_backend(cpu)
    procs, seconds = current(), timeout_s()
    compress = os.environ.get(COMPRESS_ENV, "none").lower() or "none"
    if compress not in COMPRESSIONS:
        raise DistributedError(
            f"{COMPRESS_ENV}={compress!r}: choose one of {', '.join(COMPRESSIONS)}"
        )
    if compress == "bf16" and cpu:
        raise DistributedError(
            f"{COMPRESS_ENV}=bf16 needs CUDA and NCCL (torch's bf16 hook); on CPU use fp16"
        )
    handlers = [
        InitProcessGroupKwargs(timeout=timedelta(seconds=seconds)),
        DistributedDataParallelKwargs(
            comm_hook=DDPCommunicationHookType("no" if compress == "none" else compress)
        ),
    ]
    try:
        return Accelerator(cpu=cpu, kwargs_handlers=handlers)
    except (RuntimeError, ValueError) as exc:
        raise DistributedError(
            f"rank {procs.rank} of {procs.world} could not join its process group within "
            f"{seconds} s ({_first_line(exc)}). Fix: launch exactly WORLD_SIZE processes with "
            f"torchrun or accelerate launch, or raise {TIMEOUT_ENV}"
        ) from exc


def accelerator() -> Any | None:
    """The run's ``accelerate.Accelerator`` once :func:`start` has run; None otherwise."""
    return _JOINED.get("accelerator")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


@contextlib.contextmanager
def explain_peer_errors(what: str) -> Iterator[None]:
    """Turn a collective that failed because a peer died or stalled into one line."""
    try:
        yield
    except RuntimeError as exc:
        message = str(exc).lower()
        if not launched() or not any(p in message for p in _PEER_LOST):
            raise
        procs = current()
        raise DistributedError(
            f"rank {procs.rank} of {procs.world} lost its peers during {what} "
            f"({_first_line(exc)}): another process died or stalled past {TIMEOUT_ENV}="
            f"{timeout_s()} s. Its own error is in the launcher's log; fix it and rerun with "
            "--resume"
        ) from exc


def _group_ready() -> bool:
    return accelerator() is not None


def shard_rows(rows: Sequence[int], procs: Processes | None = None) -> list[int]:
    """This rank's rows of one global batch: rows dealt out in turn (``rows[rank::world]``).

    Every rank gets a slice of the same length-bucketed batch, so no rank waits on a
    longer one; :func:`kdedge.distill.losses.shard_scale` makes the gradient exact.
    """
    procs = procs or current()
    return list(rows[procs.rank :: procs.world]) if procs.distributed else list(rows)


def deal(
    batches: Sequence[Sequence[int]], procs: Processes | None = None
) -> tuple[list[int], list[int]]:
    """Planned batches dealt out in turn: (this rank's rows, every rank's rows in the order
    :func:`gather_rows` returns them).

    The batches of a length-sorted plan stay sorted when dealt, so a stable length sort of
    one rank's rows cuts exactly the planned batches again (the last, shorter batch comes
    last on its rank): a row meets the model in the same batch with one process or eight.
    """
    procs = procs or current()
    mine = [i for rows in batches[procs.rank :: procs.world] for i in rows]
    every = [i for r in range(procs.world) for rows in batches[r :: procs.world] for i in rows]
    return mine, every


def joined() -> Processes:
    """This rank's place once the process group is joined; one process before that."""
    return current() if accelerator() is not None else SINGLE


def require_joined(what: str) -> None:
    """Refuse to train under a launcher without the process group (no gradient sync)."""
    if launched() and accelerator() is None:
        raise DistributedError(
            f"{what} was started as one of {current().world} processes, but this process "
            "never joined their group, so its gradients would not be synced. Fix: build the "
            "placement with kdedge.distill.device.resolve(), which joins it"
        )


def span(count: int, procs: Processes | None = None) -> slice:
    """The contiguous slice of ``count`` items this rank handles (sizes differ by <= 1)."""
    procs = procs or current()
    if not procs.distributed:
        return slice(0, count)
    base, extra = divmod(count, procs.world)
    begin = procs.rank * base + min(procs.rank, extra)
    return slice(begin, begin + base + (procs.rank < extra))


def gather_rows(local: np.ndarray, what: str) -> np.ndarray:
    """Every rank's ``local`` rows concatenated in rank order, on every rank."""
    if not _group_ready():
        return local
    import torch.distributed as dist

    parts: list[Any] = [None] * current().world
    with explain_peer_errors(what):
        dist.all_gather_object(parts, np.ascontiguousarray(local))
    return np.concatenate(parts, axis=0)


def broadcast(value: T, what: str) -> T:
    """Rank 0's ``value`` on every rank."""
    if not _group_ready():
        return value
    import torch.distributed as dist

    box = [value]
    with explain_peer_errors(what):
        dist.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(tensor: torch.Tensor, what: str) -> torch.Tensor:
    """``tensor`` summed over ranks (in place, returned)."""
    if _group_ready():
        import torch.distributed as dist

        with explain_peer_errors(what):
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def wait(what: str) -> None:
    """Block until every rank gets here (a no-op in one process)."""
    if _group_ready():
        import torch.distributed as dist

        with explain_peer_errors(what):
            dist.barrier()


def prepare_model(model: torch.nn.Module, *, unused_parameters: bool = False) -> torch.nn.Module:
    """``model`` wrapped for gradient sync; ``model`` itself in one process.

    accelerate wraps it (DDP, or FSDP per the accelerate config of ``accelerate launch``).
    ``unused_parameters`` is for a loss that leaves some parameters out (stage 1 skips the
    classifier head): torch's DDP then looks for them every step, which accelerate's
    prepare cannot be told per model, so this one case is wrapped by torch directly.
    """
    acc = accelerator()
    if acc is None:
        return model
    if not unused_parameters:
        return acc.prepare_model(model)
    from torch.nn.parallel import DistributedDataParallel

    device = acc.device
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model.to(device), device_ids=ids, find_unused_parameters=True)


def sharded() -> bool:
    """True when the launch asked accelerate for FSDP (parameters sharded across ranks)."""
    acc = accelerator()
    return acc is not None and getattr(acc.distributed_type, "value", None) == "FSDP"


def require_replicated(what: str) -> None:
    """Refuse FSDP for a model kdedge trains replicated (DDP): classifiers, rerankers."""
    if sharded():
        raise DistributedError(
            f"{what} trains with DDP (a full copy per process); this launch asked for FSDP. "
            "Fix: launch without --use_fsdp (these students fit on one device), or use FSDP "
            "for `kdedge llm distill`"
        )


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP / FSDP / compiled wrapper."""
    acc = accelerator()
    if acc is not None:
        return acc.unwrap_model(model)
    return getattr(model, "_orig_mod", model)


def clip_grad_norm(model: torch.nn.Module, max_norm: float) -> torch.Tensor:
    """Clip the gradients' global norm (accelerate's version knows FSDP's sharded grads)."""
    acc = accelerator()
    if acc is not None:
        return acc.clip_grad_norm_(model.parameters(), max_norm)
    return torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
