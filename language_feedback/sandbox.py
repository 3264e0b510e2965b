"""Sandboxed execution of untrusted Python programs against their tests, with verdicts a program cannot forge.

Each program runs in its own process, forked from a small fork server (``_sandbox_server.py``)
that this module starts with ``python -I`` and a scrubbed environment. As root (the normal case
here) a program gets: a PID namespace of its own (everything it forks dies with it), a network
namespace without interfaces, a unique unprivileged uid (so RLIMIT_NPROC holds and nothing outside
its work dir can be written or signalled), rlimits on address space, CPU time, output/file size and
processes, a wall-clock timeout, a fresh temporary working directory (removed afterwards) that is
also its /tmp, /var/tmp and /dev/shm, a view of the file system without the directories where people's
files and data sets live (/home, /root, /srv, /opt, /work... are empty but for the interpreter's own
directories; both through a mount namespace), and an environment without the caller's variables.
:func:`sandbox_isolation` reports which layers are on.

The verdict is decided where no program code runs. Tests of the form ``assert CALL <op> EXPECTED`` (nearly
all of MBPP, most HumanEval ``check(candidate)`` bodies, ``pytest.approx`` included) are judged in this
process (``judged_by="parent"``): the program process gets the program, the setup code and each call with
its inputs, and sends back only the call's value, as plain data through a strict format (exact builtin
types; subclasses, foreign objects and oversized values are failures); this process compares it with the
expected value, which never leaves it, and counts every test (``tests_passed`` of ``tests_total``). Other
tests (loops, helpers, tolerances) run in a separate trusted harness process whose view of the program is
a set of proxies that send arguments and receive values as data (``judged_by="trusted_harness"``; the
whole test source counts as one test). A test passes only if the program's value is right: the program
cannot reach the expected values, the comparison or the report, and nothing it does can turn its failure
into "passed" or "error". What no sandbox can catch is a program written for the visible tests (hard-coded
answers): only held-out tests measure that. Without root (no separate
uids), a program runs as the same user as the trusted side and the guarantee does not hold.

Nothing a program does raises in the caller: every outcome is an :class:`ExecResult`. Infrastructure
failures (a server that died, a harness that failed, tests that cannot be parsed or judged) have their own
status ``error``, which is neither a pass nor a failure of the program.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import queue
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from language_feedback._sandbox_judge import (
    MAX_RECORD_CHARS,
    TestPlan,
    judge_harness,
    judge_parent,
    parse_records,
    plan_tests,
)
from language_feedback._sandbox_shared import bounded

STATUSES = ("passed", "failed", "timeout", "crashed", "resource_limit", "error")
JUDGES = ("parent", "trusted_harness")
_SERVER_SCRIPT = Path(__file__).with_name("_sandbox_server.py")
_SERVER_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
_SERVER_START_TIMEOUT_S = 60.0
# The server enforces each timeout itself; the caller only gives up on a server that stopped answering.
_SERVER_GRACE_S = 30.0
_MAX_MESSAGE = 1 << 16
_DRAIN_S = 0.02
_F_SETPIPE_SZ = 1031


@dataclass(frozen=True)
class SandboxLimits:
    """Per-program limits. ``max_output_bytes`` caps stdout, stderr and every file the program writes."""

    timeout_s: float = 10.0
    cpu_time_s: int = 10
    memory_mb: int = 1024
    max_processes: int = 16
    max_output_bytes: int = 64_000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"SandboxLimits.{f.name} must be a positive number, got {value!r}")
        if self.memory_mb < 64:
            raise ValueError(f"SandboxLimits.memory_mb must be >= 64 (the interpreter alone needs it), got {self.memory_mb}")


@dataclass(frozen=True)
class SandboxJob:
    """One program and the tests to run after it (``setup`` runs first, e.g. MBPP ``test_setup_code``)."""

    program: str
    tests: str
    setup: str = ""


@dataclass(frozen=True)
class ExecResult:
    """What happened when a program ran against its tests.

    ``status`` is one of :data:`STATUSES`: "passed", "failed", "timeout", "crashed", "resource_limit", or
    "error" when the sandbox itself could not judge the program (tests or setup code that do not parse, a
    failed server or harness; ``message`` says which) -- not a verdict on the program. ``message`` says what
    went wrong (the failing assert with actual and expected values, or the exception, plus a short traceback;
    the limit that was hit); it is "" when the program passed. The other optional fields break a failure down
    for feedback: ``failed_test`` (the assert that failed or was running), ``actual``/``expected`` (reprs of both
    sides of a failing comparison), ``exception`` ("ZeroDivisionError: division by zero"), and where
    it happened: ``part`` ("setup", "program" or "tests"), ``line`` and ``line_source``; ``limit`` names
    the limit that stopped the program ("wall_clock", "cpu_time", "memory", "output", "processes").
    ``judged_by`` says which trusted side judged the tests (one of :data:`JUDGES`, "" when nothing
    was judged); ``tests_passed`` of ``tests_total`` tests passed (in the harness mode the whole test source
    is one test).
    """

    status: str
    message: str
    stdout: str
    stderr: str
    duration_s: float
    failed_test: str = ""
    actual: str | None = None
    expected: str | None = None
    exception: str = ""
    part: str = ""
    line: int | None = None
    line_source: str = ""
    limit: str = ""
    judged_by: str = ""
    tests_passed: int = 0
    tests_total: int = 0

    @property
    def passed(self) -> bool:
        return self.status == "passed"


_RESULT_FIELDS = {f.name for f in fields(ExecResult)}


@lru_cache(maxsize=64)
def _as_dict(limits: SandboxLimits) -> dict[str, Any]:
    return asdict(limits)


def _memfd(name: str, data: bytes = b"") -> int:
    fd = os.memfd_create(name)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    return fd


class _SandboxServer:
    """One fork server process; used by one thread at a time."""

    def __init__(self, *server_args: str) -> None:
        self.channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", str(_SERVER_SCRIPT), *server_args],
                stdin=theirs,
                stdout=subprocess.DEVNULL,
                env=_SERVER_ENV,
                cwd="/",
                start_new_session=True,  # a Ctrl-C meant for the caller must not hit the server mid-job
            )
        finally:
            theirs.close()
        hello = self._receive(time.monotonic() + _SERVER_START_TIMEOUT_S)
        if hello is None or not hello.get("ready"):
            self.close()
            raise RuntimeError(f"the sandbox server ({_SERVER_SCRIPT}) did not start")
        self.isolation: dict[str, Any] = hello["isolation"]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _receive(self, deadline: float) -> dict | None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([self.channel], [], [], remaining)[0]:
            return None
        try:
            message = self.channel.recv(_MAX_MESSAGE)
        except OSError:
            return None
        return json.loads(message) if message else None

    def run(self, job: SandboxJob, limits: SandboxLimits) -> ExecResult | None:
        """The job's result, or None if this server failed (it is then closed)."""
        plan = plan_tests(job.tests, job.setup).for_program(job.program)
        if plan.mode == "error":
            return ExecResult("error", plan.error, "", "", 0.0, part=plan.error_part)
        mode = "parent" if plan.mode == "parent" else "harness"
        expressions = [t.remote for t in plan.tests if t.remote is not None]
        payload = {"mode": mode, "setup": job.setup, "program": job.program, "prelude": plan.prelude,
                   "expressions": expressions}
        outputs = [_memfd("stdout"), _memfd("stderr")]
        # The values (or the harness's report) come back on a pipe: one way is all it needs, and passing a
        # socket through a socket costs the kernel about a millisecond per job.
        mine, theirs = os.pipe()
        sent = [_memfd("payload", json.dumps(payload).encode()), *outputs, theirs]
        if mode == "harness":
            harness = {"setup": job.setup, "tests": job.tests, "names": plan.program_names}
            sent.append(_memfd("harness", json.dumps(harness).encode()))
        try:
            request = json.dumps({"mode": mode, "limits": _as_dict(limits)}).encode()
            socket.send_fds(self.channel, [request], sent)
            os.close(theirs)  # the server has its copy; the pipe ends when the process writing to it does
            sent.remove(theirs)
            cap = (len(expressions) + 2) * MAX_RECORD_CHARS
            data, reply = self._collect(mine, time.monotonic() + limits.timeout_s + _SERVER_GRACE_S, cap)
            stdout, stderr = (os.pread(fd, limits.max_output_bytes, 0).decode("utf-8", "replace") for fd in outputs)
        except OSError:
            data, reply = b"", None
        finally:
            for fd in (mine, *sent):
                try:
                    os.close(fd)
                except OSError:  # the read end, closed early after a flood
                    pass
        if reply is None:
            self.close()
            return None
        return _verdict(plan, data, reply, _as_dict(limits), stdout, stderr)

    def _collect(self, values: int, deadline: float, cap: int) -> tuple[bytes, dict | None]:
        """Read what the program process (or harness) sends until the server replies; (data, reply).

        The pipe is drained every ``_DRAIN_S`` rather than at each record (a record costs a wake-up of this
        thread); a writer that fills the pipe's buffer waits that long at most.
        """
        chunks, size = [], 0
        os.set_blocking(values, False)
        try:
            fcntl.fcntl(values, _F_SETPIPE_SZ, 1 << 20)
        except OSError:  # above the system's pipe-max-size without root: keep the default
            pass
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b"".join(chunks), None
            replied = select.select([self.channel], [], [], min(remaining, _DRAIN_S))[0]
            while size <= cap and (chunk := self._read_some(values)):
                chunks.append(chunk)
                size += len(chunk)
            if replied:
                return b"".join(chunks), self._receive(deadline)

    @staticmethod
    def _read_some(fd: int) -> bytes | None:
        """What is there to read (b"" at end of input), or None if nothing is."""
        try:
            return os.read(fd, 1 << 16)
        except (BlockingIOError, InterruptedError):
            return None

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.channel.shutdown(socket.SHUT_WR)  # the server exits at end of input
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.channel.close()


def _verdict(plan: TestPlan, data: bytes, reply: dict, limits: dict, stdout: str, stderr: str) -> ExecResult:
    """The result of a job from what the program process (or the harness) sent and how the processes ended."""
    duration_s = float(reply.get("duration_s", 0.0))
    if "error" in reply:
        return ExecResult("error", str(reply["error"]), stdout, stderr, duration_s)
    program, harness = reply["program"], reply.get("harness")
    for role, process in (("program", program), ("trusted test harness", harness)):
        if process is not None and not process["started"]:
            return ExecResult("error", f"the sandbox could not start the {role}: {process['start_error']}",
                              stdout, stderr, duration_s)
    records = parse_records(data)
    judged_by = "parent" if plan.mode == "parent" else "trusted_harness"
    try:
        if plan.mode == "parent":
            report = judge_parent(plan, records, program, limits)
        else:
            report = judge_harness(records, harness, program, limits)
    except Exception as exc:  # noqa: BLE001 - records are untrusted data: whatever they hold, the batch goes on
        # Not "error": a program must not be able to turn its own failure into a result a reward skips.
        report = {"status": "crashed", "message": f"the program's records could not be judged ({exc!r:.300})"}
    values = {k: v for k, v in bounded(report).items() if k in _RESULT_FIELDS}
    return ExecResult(**values, stdout=stdout, stderr=stderr, duration_s=duration_s, judged_by=judged_by)


class _ServerPool:
    """Idle fork servers kept between calls (starting one costs an interpreter start and imports)."""

    def __init__(self) -> None:
        self._idle: list[_SandboxServer] = []
        self._lock = threading.Lock()
        self._owner_pid = os.getpid()

    def take(self) -> _SandboxServer:
        with self._lock:
            if self._owner_pid != os.getpid():  # forked caller: the pipes belong to the parent
                self._idle, self._owner_pid = [], os.getpid()
            while self._idle:
                server = self._idle.pop()
                if server.alive():
                    return server
        return _SandboxServer()

    def give_back(self, server: _SandboxServer) -> None:
        if not server.alive():
            return
        with self._lock:
            if self._owner_pid == os.getpid():
                self._idle.append(server)
                return
        server.close()

    def close_all(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        if self._owner_pid == os.getpid():
            for server in idle:
                server.close()


_POOL = _ServerPool()
atexit.register(_POOL.close_all)


def sandbox_isolation() -> dict[str, Any]:
    """Which isolation layers the sandbox achieves on this machine.

    Keys: ``root``, ``network_namespace``, ``pid_namespace``, ``mount_namespace``, ``separate_uid`` (bools),
    ``reads_private_files`` (True only when programs keep CAP_DAC_READ_SEARCH because the interpreter's
    closed directories could not be covered), ``hidden_dirs`` (directories programs see as empty: every
    top-level directory but the system ones -- /home, /root, /srv, /opt, /work..., where people's files and
    data sets with the tests' answers live -- and closed directories above the interpreter) and ``bound_dirs``
    (the interpreter's directories inside them, which programs do see). Without the namespaces the sandbox
    falls back to a new session killed as a whole and a Python-level refusal of sockets, which a program
    calling libc directly could get around, and programs run as the caller's user.
    """
    server = _POOL.take()
    try:
        return dict(server.isolation)
    finally:
        _POOL.give_back(server)


def shutdown() -> None:
    """Stop the idle fork servers now (they also stop when the caller exits, and restart on demand)."""
    _POOL.close_all()


def _as_job(index: int, job: SandboxJob | tuple[str, str] | tuple[str, str, str]) -> SandboxJob:
    if not isinstance(job, SandboxJob):
        if not isinstance(job, (tuple, list)) or len(job) not in (2, 3):
            raise TypeError(f"jobs[{index}]: expected a SandboxJob or a (program, tests[, setup]) tuple, got {job!r:.80}")
        job = SandboxJob(*job)
    for name in ("program", "tests", "setup"):
        if not isinstance(getattr(job, name), str):
            raise TypeError(f"jobs[{index}].{name}: expected a string, got {type(getattr(job, name)).__name__}")
    return job


def run_programs(
    jobs: Sequence[tuple[str, str]] | Sequence[SandboxJob],
    *,
    workers: int = 2,
    limits: SandboxLimits = SandboxLimits(),
    progress: bool = True,
) -> list[ExecResult]:
    """Run each (program, tests) pair in the sandbox, ``workers`` at a time; results in input order.

    A program that does not parse, fails, loops, crashes or misbehaves gets its own result and
    the batch goes on. Raises only for malformed ``jobs`` (not strings) or arguments.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not isinstance(limits, SandboxLimits):
        raise TypeError(f"limits must be a SandboxLimits, got {type(limits).__name__}")
    jobs = [_as_job(i, job) for i, job in enumerate(jobs)]
    results: list[ExecResult | None] = [None] * len(jobs)
    if not jobs:
        return []
    servers: queue.SimpleQueue[_SandboxServer] = queue.SimpleQueue()
    n_servers = min(workers, len(jobs))
    with ThreadPoolExecutor(max_workers=n_servers) as executor:
        for server in executor.map(lambda _: _POOL.take(), range(n_servers)):
            servers.put(server)

    def run_one(index: int) -> None:
        server = servers.get()
        try:
            # A server that died (killed from outside, say) is replaced and the job tried once more.
            for _ in range(2):
                if not server.alive():
                    server = _SandboxServer()
                result = server.run(jobs[index], limits)
                if result is not None:
                    break
            else:
                result = ExecResult("error", "the sandbox server failed twice on this program", "", "", 0.0)
            results[index] = result
        finally:
            servers.put(server)

    bar = tqdm(total=len(jobs), desc="sandbox", unit="prog", disable=not progress)
    with bar, ThreadPoolExecutor(max_workers=n_servers) as executor:
        for future in as_completed([executor.submit(run_one, i) for i in range(len(jobs))]):
            future.result()
            bar.update()
    while not servers.empty():
        _POOL.give_back(servers.get())
    return results  # type: ignore[return-value]


def run_program(
    program: str, tests: str, *, setup: str = "", limits: SandboxLimits = SandboxLimits()
) -> ExecResult:
    """Run one program and its tests in the sandbox (see :func:`run_programs`)."""
    return run_programs([SandboxJob(program, tests, setup)], workers=1, limits=limits, progress=False)[0]
