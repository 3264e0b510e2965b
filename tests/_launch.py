"""Run a script under ``accelerate launch`` with several local processes, as the multi-process tests do."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

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
        proc = _run_as_group(cmd, env, timeout)
        # Retried: another job on this machine can take the free port between our probe and torchrun's bind;
        # and now and then gloo's worker threads abort a process during interpreter shutdown even after
        # destroy_process_group (pytorch/pytorch#190489, #179291; seen here in a full test run on 2026-12-07).
        transient = ("address already in use" in proc.stderr.lower()
                     or "terminate called without an active exception" in proc.stderr)
        if proc.returncode == 0 or not transient:
            break
    return proc


def _run_as_group(cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``cmd``; on timeout kill it and every process it started (torchrun starts its workers in sessions of
    their own, so a plain ``subprocess.run`` timeout leaves them running, e.g. two processes stuck in a collective)."""
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in [*_descendants(child.pid), child.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stdout, stderr = child.communicate()
        raise subprocess.TimeoutExpired(cmd, timeout, output=stdout, stderr=stderr) from None
    return subprocess.CompletedProcess(cmd, child.returncode, stdout, stderr)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc), children before their parents' siblings."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


# recipes/accelerate/fsdp.yaml on 2 CPU processes, in full precision (the config's bf16 is for GPUs).
FSDP_TWO_PROCESSES = ("--config_file", str(Path(__file__).resolve().parents[1] / "recipes" / "accelerate" / "fsdp.yaml"),
                      "--num_processes", "2", "--mixed_precision", "no")

#: Prepended to a script launched with FSDP_TWO_PROCESSES. accelerate shards only over GPUs: on CPU it keeps
#: MULTI_CPU (gloo data parallelism) and drops the FSDP plugin. These lines switch accelerate's state to FSDP when
#: the launch asked for it, so everything after them (accelerate's fsdp2_prepare_model, i.e. torch's fully_shard,
#: TRL's trainers, accelerate's get_state_dict) runs for real over gloo, as it does over NCCL on GPUs.
FSDP_ON_CPU = '''
from accelerate.state import AcceleratorState as _State, PartialState as _PartialState
from accelerate.utils import DistributedType as _Type

_init_state = _State.__init__


def _init_fsdp_on_cpu(self, *args, **kwargs):
    _init_state(self, *args, **kwargs)
    if self.distributed_type == _Type.MULTI_CPU and kwargs.get("fsdp_plugin") is not None:
        self.distributed_type, self.fsdp_plugin = _Type.FSDP, kwargs["fsdp_plugin"]
        _PartialState._shared_state["distributed_type"] = _Type.FSDP


_State.__init__ = _init_fsdp_on_cpu
'''
