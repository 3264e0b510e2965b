"""Run a script under ``accelerate launch`` with several local processes, as the multi-process tests do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

# --multi_gpu selects accelerate's torchrun launcher (several processes); with ACCELERATE_USE_CPU=1 or
# cpu=True in the script they run as MULTI_CPU over gloo. (`--cpu` alone starts a single process.)
TWO_PROCESSES = ("--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                 "--dynamo_backend", "no")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_launch(
    script_args: list[str], *, launcher_args: tuple[str, ...] = TWO_PROCESSES, use_cpu_env: bool = True,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """``accelerate launch <launcher_args> --main_process_port <free port> <script_args>``, one torch thread each.

    ``use_cpu_env`` sets ACCELERATE_USE_CPU=1; without it the variable is removed, so the script alone decides.
    """
    env = {k: v for k, v in os.environ.items() if k != "ACCELERATE_USE_CPU"}
    env.update(OMP_NUM_THREADS="1", **({"ACCELERATE_USE_CPU": "1"} if use_cpu_env else {}))
    for _attempt in range(3):
        cmd = [sys.executable, "-m", "accelerate.commands.launch", *launcher_args, "--main_process_port",
               str(free_port()), *map(str, script_args)]
        proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=timeout)
        # Another job on this machine can take the free port between our probe and torchrun's bind.
        if proc.returncode == 0 or "address already in use" not in proc.stderr.lower():
            break
    return proc
