"""``kdedge ARGS`` as several CPU processes under ``torchrun`` (gloo), for multi-process tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def torchrun(
    args: list[str], *, processes: int = 2, timeout: int = 120, codes: tuple[int, ...] = (0,)
) -> Any:
    """``kdedge ARGS --json`` under ``torchrun --standalone`` (a free rendezvous port);
    returns rank 0's JSON. Fails the test with the ranks' errors unless the exit status is
    one of ``codes``."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", KDEDGE_DIST_TIMEOUT=str(timeout))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        "--nproc_per_node", str(processes), "-m", "kdedge", *args, "--json",
    ]  # fmt: skip
    done = subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode in codes, f"torchrun exit {done.returncode}:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout)
