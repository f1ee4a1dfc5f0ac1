"""``kdedge ARGS`` as several CPU processes (gloo) under a launcher, for multi-process tests.

Each process gets one thread, as torchrun gives it, and single-process comparisons run with
one thread too, so both sides do the same arithmetic.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_env(**extra: str) -> dict[str, str]:
    """This environment without a launcher's variables, kdedge importable, one thread."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **extra)
    return env


def kdedge_command(args: list[str], processes: int = 2, launcher: str = "torchrun") -> list[str]:
    """``kdedge ARGS`` on ``processes`` processes: plain with one, else under ``torchrun``
    (a free rendezvous port) or ``accelerate launch`` (``--multi_gpu`` is accelerate's
    multi-process mode, on CPUs too)."""
    if processes == 1:
        return [sys.executable, "-m", "kdedge", *args]
    if launcher == "accelerate":
        start = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
        start += ["--num_processes", str(processes), "--num_machines", "1"]
        start += ["--mixed_precision", "no", "--dynamo_backend", "no"]
        return [*start, "--main_process_port", str(free_port()), "-m", "kdedge", *args]
    start = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return [*start, "--nproc_per_node", str(processes), "-m", "kdedge", *args]


def run_kdedge(
    args: list[str],
    processes: int = 2,
    *,
    launcher: str = "torchrun",
    timeout: int = 240,
    **env: str,
) -> subprocess.CompletedProcess:
    """Run ``kdedge ARGS`` to the end; the completed process, output as text."""
    return subprocess.run(
        kdedge_command(args, processes, launcher),
        env=launch_env(**env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def torchrun(
    args: list[str], *, processes: int = 2, timeout: int = 120, codes: tuple[int, ...] = (0,)
) -> Any:
    """``kdedge ARGS --json`` under ``torchrun``; returns rank 0's JSON. Fails the test with
    the ranks' errors unless the exit status is one of ``codes``."""
    done = run_kdedge(
        [*args, "--json"], processes, timeout=timeout, KDEDGE_DIST_TIMEOUT=str(timeout)
    )
    assert done.returncode in codes, f"torchrun exit {done.returncode}:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout)
