"""Two real CPU processes (gloo) running a seqlab script, as the multi-process tests start them.

`accelerate launch --num_processes 2 --cpu` would silently run one process; `--multi_gpu` on a machine without
GPUs starts two ranks, and seqlab's Accelerator then joins them over gloo.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def two_process_command(script: Path, *args: str) -> list[str]:
    """``accelerate launch`` of ``script`` on two CPU processes, on a free port."""
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return [*launch, "--main_process_port", str(_free_port()), str(script), *args]


def launch_env(repo_root: Path, batch_log_steps: int) -> dict[str, str]:
    """This checkout's seqlab, one thread per process, and the test hook that makes each process log its first
    batches and its final weights' digest."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root / "src"), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    env["SEQLAB_DEBUG_BATCH_LOG"] = str(batch_log_steps)
    return env
