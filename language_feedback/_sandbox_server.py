"""Fork server ("zygote") behind :mod:`language_feedback.sandbox`. Runs untrusted Python programs.

Started by the sandbox as ``python -E -s <this file>`` with a scrubbed environment, it imports the
modules that test programs commonly use once, then forks one fresh child per program, so a program
costs one fork instead of an interpreter start. It reads one JSON job per line on stdin and writes
one JSON result per line on stdout; the first line it writes describes the isolation it achieved.
Stdlib only, and never imported by the caller: nothing from the caller's process leaks into programs.

As root (the normal case on these machines), the server lives in a network namespace without
interfaces (made once at start), and each program process is:

- pid 1 of a fresh PID namespace (``unshare(CLONE_NEWPID)`` before the fork, ``setns`` back after):
  it sees no other process, nobody inside can signal it, and when it dies the kernel kills
  everything it started -- with RLIMIT_NPROC, this is what contains fork bombs;
- in a fresh mount namespace where /tmp, /var/tmp, /dev/shm and /run/lock are its own temporary
  working directory (removed afterwards), so it cannot leave files anywhere else;
- a unique unprivileged uid without capabilities (RLIMIT_NPROC holds, root's files are read-only,
  private directories unreadable, other processes cannot be signalled). When the interpreter lives
  under a directory others may not enter (pyenv under /root, mode 0700), the mount namespace covers
  that directory with an empty tmpfs and binds back only the interpreter's own directories, so the
  program can import modules and still read nothing else there (e.g. /root/.ssh, hub tokens);
- limited by rlimits (address space, CPU time, file size = output size, processes/threads) and a
  wall-clock timeout the server enforces; with an empty environment but PATH/HOME/TMPDIR/LANG.

Without root the same code falls back to a new session killed as a whole, RLIMIT_NPROC, and an
audit hook that refuses sockets; :func:`language_feedback.sandbox.sandbox_isolation` reports which
layers are active.
"""

from __future__ import annotations

import ast
import builtins
import ctypes
import errno
import json
import linecache
import operator
import os
import reprlib
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
# World-writable places a program could leave files in; in its mount namespace each is its work dir.
SHARED_WRITABLE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/run/shm")
PR_SET_KEEPCAPS = 8
CAP_DAC_READ_SEARCH = 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
# Each program runs as UID_BASE + (server pid): a server runs one program at a time, so the uid is
# unique among live programs, RLIMIT_NPROC (counted per uid) is per program; far above real accounts.
UID_BASE = 2_000_000_000
MAX_REPORT_CHARS = 8_000  # the report goes through a pipe; keep it well under the pipe buffer
SOURCE_PARTS = ("setup", "program", "tests")
SOURCE_FILES = {f"<{part}>": part for part in SOURCE_PARTS}
CHECK_NAME = "__sandbox_compare__"
OUTPUT_LIMIT = "output limit of {max_output_bytes} bytes exceeded (stdout, stderr or a file)"
PARSE_FAILURES = {"setup": "the test setup code does not parse", "program": "the program does not parse",
                  "tests": "the tests do not parse"}

# Modules test programs commonly import (MBPP, HumanEval), imported once here so children start warm.
PREIMPORT = (
    "array", "bisect", "cmath", "collections", "copy", "datetime", "decimal", "fractions", "functools", "hashlib",
    "heapq", "itertools", "math", "operator", "random", "re", "statistics", "string", "sys", "typing",
    "unicodedata", "pytest",
)

_libc = ctypes.CDLL(None, use_errno=True)
_state: dict = {}  # set at start: the server's own PID namespace (an fd), the writable dirs to hide


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _setns(fd: int, nstype: int) -> None:
    if _libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _mount(source: str | None, target: str, flags: int, fstype: str | None = None, data: str | None = None) -> None:
    src = None if source is None else source.encode()
    fs = None if fstype is None else fstype.encode()
    options = None if data is None else data.encode()
    if _libc.mount(src, target.encode(), fs, ctypes.c_ulong(flags), options) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _private_mounts(workdir: str) -> None:
    """In a new mount namespace, put the work dir over every shared world-writable directory, and hide
    the closed directories the interpreter lives under except for the interpreter's own directories."""
    _unshare(CLONE_NEWNS)
    _mount(None, "/", MS_REC | MS_PRIVATE)  # nothing done here propagates to the host
    # Through fds: once a directory is covered, the paths below it no longer resolve.
    fd = os.open(workdir, os.O_PATH | os.O_DIRECTORY)
    kept = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for paths in _state["covered"].values() for path in paths}
    umask = os.umask(0o022)
    try:
        for path in _state["writable_dirs"]:
            _mount(f"/proc/self/fd/{fd}", path, MS_BIND)
        for closed, paths in _state["covered"].items():
            _mount("tmpfs", closed, MS_NOSUID | MS_NODEV | MS_NOEXEC, "tmpfs", "mode=0755,size=64k")
            for path in paths:
                os.makedirs(path, mode=0o755, exist_ok=True)
                _mount(f"/proc/self/fd/{kept[path]}", path, MS_BIND | MS_REC)
    finally:
        os.umask(umask)
        for kept_fd in (fd, *kept.values()):
            os.close(kept_fd)


def _closed_ancestors(paths: list[str]) -> tuple[dict[str, list[str]], bool]:
    """Directories others may not enter above the interpreter's directories, each with the directories
    below it to keep visible; and whether every closed directory is of that kind (True) or some could not
    be opened this way (a closed directory between a covered one and a kept path, or a kept path itself)."""
    covered: dict[str, list[str]] = {}
    fixable = True
    for path in sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)}):
        parts = path.split(os.sep)
        chain = [os.sep + os.path.join(*parts[1:i]) if i > 1 else os.sep for i in range(1, len(parts) + 1)]
        closed = [d for d in chain if not os.stat(d).st_mode & 0o001]
        if not closed:
            continue
        if len(closed) > 1 or closed[0] == path:
            fixable = False
            continue
        if not any(path.startswith(kept + os.sep) for kept in covered.get(closed[0], [])):
            covered.setdefault(closed[0], []).append(path)
    return covered, fixable


def _unshare(flags: int) -> None:
    if _libc.unshare(ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")


def _keep_only_capability(cap: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    data[0].effective = data[0].permitted = 1 << cap
    if _libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


# ------------------------------------------------------------------------------------------------
# Inside the program process: run setup, program and tests, and report how it went
# ------------------------------------------------------------------------------------------------

_COMPARE_OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "is": operator.is_,
    "is not": operator.is_not,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}
_AST_OPS = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
}
_last_compare: dict = {}  # the latest rewritten comparison: which assert, and both sides' values
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 300
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = _repr.maxfrozenset = _repr.maxdeque = 30
_repr.maxlevel = 4


def _compare(left, right, op: str, index: int):
    """Stand-in for ``left <op> right`` in a rewritten assert: remembers both sides for the report."""
    _last_compare["index"], _last_compare["left"], _last_compare["right"] = index, left, right
    return _COMPARE_OPS[op](left, right)


class _AssertRewriter(ast.NodeTransformer):
    """``assert a == b, msg`` -> ``assert __sandbox_compare__(a, b, "==", i), msg``.

    Each side is evaluated once, exactly as in the original, and the assert still raises a plain
    AssertionError; the harness only gains the values of both sides to say "expected X, got Y".
    """

    def __init__(self, source: str):
        self.source = source
        # (assert source, first line, last line, whether the left side is the value under test)
        self.asserts: list[tuple[str, int, int, bool]] = []

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        self.generic_visit(node)
        test = node.test
        if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _AST_OPS):
            return node
        segment = ast.get_source_segment(self.source, node) or ast.unparse(node)
        left_has_call = any(isinstance(n, ast.Call) for n in ast.walk(test.left))
        right_has_call = any(isinstance(n, ast.Call) for n in ast.walk(test.comparators[0]))
        left_is_actual = left_has_call or not right_has_call
        self.asserts.append((" ".join(segment.split()), node.lineno, node.end_lineno or node.lineno, left_is_actual))
        call = ast.Call(
            func=ast.Name(id=CHECK_NAME, ctx=ast.Load()),
            args=[
                test.left,
                test.comparators[0],
                ast.Constant(_AST_OPS[type(test.ops[0])]),
                ast.Constant(len(self.asserts) - 1),
            ],
            keywords=[],
        )
        node.test = ast.copy_location(call, test)
        return ast.fix_missing_locations(node)


def _safe_repr(value) -> str:
    try:
        return _repr.repr(value)
    except BaseException:  # noqa: BLE001 - a hostile __repr__ must not break the report
        return f"<{type(value).__name__} object>"


def _describe(exc: BaseException) -> str:
    text = _safe_repr_text(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _safe_repr_text(exc: BaseException) -> str:
    try:
        return str(exc)[:1000]
    except BaseException:  # noqa: BLE001 - a hostile __str__ must not break the report
        return ""


def _user_frames(tb) -> list[traceback.FrameSummary]:
    return [f for f in traceback.extract_tb(tb) if f.filename in SOURCE_FILES]


def _failure_report(exc: BaseException, asserts: list[tuple[str, int, int, bool]]) -> dict:
    frames = _user_frames(exc.__traceback__)
    report: dict = {"status": "failed", "exception": _describe(exc)}
    if frames:
        inner = frames[-1]
        report.update(part=SOURCE_FILES[inner.filename], line=inner.lineno, line_source=(inner.line or "").strip())
        test_frames = [f for f in frames if f.filename == "<tests>"]
        if test_frames:
            report["failed_test"] = (test_frames[-1].line or "").strip()
    lines = []
    index = _last_compare.get("index")
    if isinstance(exc, AssertionError) and index is not None and report.get("part") == "tests":
        segment, first, last, left_is_actual = asserts[index]
        # The remembered comparison belongs to this failure only if that assert is the failing line.
        if first <= report.get("line", -1) <= last:
            left, right = _safe_repr(_last_compare["left"]), _safe_repr(_last_compare["right"])
            actual, expected = (left, right) if left_is_actual else (right, left)
            report.update(failed_test=segment, actual=actual, expected=expected)
            lines += [f"Test failed: {segment}", f"  actual:   {actual}", f"  expected: {expected}"]
    if not lines:
        if isinstance(exc, AssertionError) and report.get("failed_test"):
            lines.append(f"Test failed: {report['failed_test']}")
        lines.append(report["exception"])
    shown = traceback.format_list(frames[-5:])
    lines += ["Traceback (most recent call last):", *[s.rstrip("\n") for s in shown]]
    lines.append(report["exception"])
    report["message"] = "\n".join(lines)
    return report


def _compile_part(part: str, source: str, asserts: list[tuple[str, int, int, bool]]):
    filename = f"<{part}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    tree = ast.parse(source, filename)
    if part == "tests":
        rewriter = _AssertRewriter(source)
        tree = rewriter.visit(tree)
        asserts.extend(rewriter.asserts)
    return compile(tree, filename, "exec")


def _limit_hit(exc: BaseException, limits: dict) -> tuple[str, str] | None:
    """(which limit, message) when an exception means a sandbox limit was hit."""
    if isinstance(exc, MemoryError):
        return "memory", f"memory limit of {limits['memory_mb']} MB exceeded (MemoryError)"
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return "output", ""  # the server adds the message: it knows the limit's wording
    too_many = isinstance(exc, BlockingIOError) and exc.errno == errno.EAGAIN and _state.get("spawned")
    if too_many or (isinstance(exc, RuntimeError) and "can't start new thread" in str(exc)):
        return "processes", f"process/thread limit of {limits['max_processes']} reached"
    return None


def _execute(job: dict, limits: dict) -> dict:
    """Run setup, program and tests in one namespace, like one script; return the report."""
    sources = {part: job.get(part) or "" for part in SOURCE_PARTS}
    asserts: list[tuple[str, int, int, bool]] = []
    codes = []
    for part in SOURCE_PARTS:
        try:
            codes.append(_compile_part(part, sources[part], asserts))
        except SyntaxError as exc:
            exception = f"{type(exc).__name__}: {exc.msg}"
            text = (exc.text or "").strip()
            return {
                "status": "failed",
                "part": part,
                "line": exc.lineno,
                "line_source": text,
                "exception": exception,
                "message": f"{PARSE_FAILURES[part]}: {exception} (line {exc.lineno}{': ' + text if text else ''})",
            }
        except (ValueError, MemoryError, RecursionError) as exc:  # e.g. null bytes, or too deeply nested
            return {"status": "failed", "part": part, "exception": f"{type(exc).__name__}: {exc}",
                    "message": f"{PARSE_FAILURES[part]}: {type(exc).__name__}: {exc}"}
    namespace = {"__name__": "__sandbox__", "__builtins__": builtins, CHECK_NAME: _compare}
    for code in codes:
        try:
            exec(code, namespace)  # noqa: S102 - running untrusted code is this process's job
        except SystemExit as exc:
            return {"status": "crashed", "exception": f"SystemExit: {exc.code!r}",
                    "message": f"the program called sys.exit({exc.code!r}) before the tests finished"}
        except BaseException as exc:  # noqa: BLE001 - every failure of the program is a result
            report = _failure_report(exc, asserts)
            limit = _limit_hit(exc, limits)
            if limit is not None:
                report.update(status="resource_limit", limit=limit[0], message=f"{limit[1]}\n{report['message']}")
            return report
    return {"status": "passed", "message": ""}


_NETWORK_EVENTS = frozenset(
    {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo", "socket.gethostbyname"}
)
_SPAWN_EVENTS = frozenset({"os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "subprocess.Popen", "os.system"})


def _audit(event: str, args) -> None:
    """Notes that the program tried to start a process, so EAGAIN can be reported as the process limit."""
    if event in _SPAWN_EVENTS:
        _state["spawned"] = True


def _audit_network(event: str, args) -> None:
    """Fallback when no network namespace could be made: also refuse sockets from Python code."""
    _audit(event, args)
    if event in _NETWORK_EVENTS:
        raise PermissionError(f"network access is disabled in the sandbox ({event})")


def _confine(limits: dict, isolation: dict, workdir: str, uid: int | None, fds: dict) -> None:
    """Turn the freshly forked process into the program's sandbox (as root, before dropping it)."""
    os.setsid()  # without a PID namespace, the session is what gets killed as a whole
    # Python ignores SIGXFSZ; with the default action a write over the limit ends the process.
    for sig in (signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(fds["stdout"], 1)
    os.dup2(fds["stderr"], 2)
    os.dup2(fds["report"], 3)
    os.closerange(4, 1 << 16)
    os.chdir(workdir)
    os.umask(0o077)
    if isolation["mount_namespace"]:
        _private_mounts(workdir)
        if "/tmp" in _state["writable_dirs"]:
            os.chdir("/tmp")  # the same directory, under a path that resolves inside the namespace
    memory = limits["memory_mb"] * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_time_s"], limits["cpu_time_s"] + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["max_output_bytes"], limits["max_output_bytes"]))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["max_processes"], limits["max_processes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if uid is not None:
        keep_read = _state["needs_read_capability"]
        if keep_read:
            # No mount namespace to open the interpreter's closed directories: keep CAP_DAC_READ_SEARCH
            # through setuid so it can still import modules; writing, signalling etc. stay unprivileged.
            _libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)  # without KEEPCAPS this drops every capability
        if keep_read:
            _keep_only_capability(CAP_DAC_READ_SEARCH)
    os.environ.clear()
    home = os.getcwd()
    os.environ.update(PATH="/usr/local/bin:/usr/bin:/bin", HOME=home, TMPDIR=home, LANG="C.UTF-8")
    # Numeric libraries would start a thread per core, which counts against the process limit.
    os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    tempfile.tempdir = home
    sys.argv = ["<program>"]
    sys.dont_write_bytecode = True
    sys.addaudithook(_audit_network if not isolation["network_namespace"] else _audit)


# Bound before any untrusted code runs, so a program rebinding os.write & co. does not break the report.
_dumps, _write, _exit, _getpid = json.dumps, os.write, os._exit, os.getpid


def _send_report(fd: int, report: dict) -> None:
    data = _dumps(report)
    if len(data) > MAX_REPORT_CHARS:
        report["message"] = report.get("message", "")[: MAX_REPORT_CHARS // 2] + "\n[... truncated]"
        for key in ("actual", "expected", "failed_test", "line_source", "exception"):
            if isinstance(report.get(key), str):
                report[key] = report[key][:500]
        data = _dumps(report)
    _write(fd, data.encode("utf-8", "replace"))


def _run_program(job: dict, limits: dict, isolation: dict, workdir: str, uid: int | None, fds: dict) -> None:
    """The program process. Never returns."""
    try:
        _confine(limits, isolation, workdir, uid, fds)
    except BaseException as exc:  # noqa: BLE001
        try:
            _send_report(fds["report"], {"status": "crashed", "message": f"the sandbox could not start: {exc!r}"})
        finally:
            _exit(1)
    code = 1
    try:
        me = _getpid()
        report = _execute(job, limits)
        if _getpid() != me:  # a copy forked by the program must not report
            _exit(1)
        for stream in (sys.__stdout__, sys.__stderr__, sys.stdout, sys.stderr):
            try:
                stream.flush()
            except OSError as exc:
                if exc.errno == errno.EFBIG:
                    report = {"status": "resource_limit", "limit": "output", "message": ""}
            except Exception:  # noqa: BLE001, S110 - a stream the program replaced or closed
                pass
        _send_report(3, report)
        code = 0
    finally:
        _exit(code)


def _read_available(fd: int, limit: int) -> bytes:
    os.set_blocking(fd, False)
    chunks, total = [], 0
    while total < limit:
        try:
            chunk = os.read(fd, min(65536, limit - total))
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _read_memfd(fd: int, limit: int) -> str:
    return os.pread(fd, limit, 0).decode("utf-8", "replace")


def _start_program(job: dict, limits: dict, isolation: dict, workdir: str, uid: int | None, fds: dict) -> int:
    """Fork the program process, as pid 1 of a fresh PID namespace when possible; return its pid."""
    if isolation["pid_namespace"]:
        _unshare(CLONE_NEWPID)  # only the next child enters it...
    try:
        pid = os.fork()
    finally:
        if isolation["pid_namespace"] and pid != 0:
            # ...and the server's own children go back to the server's namespace, so the next
            # program can get a fresh one.
            _setns(_state["own_pid_namespace"], CLONE_NEWPID)
    if pid == 0:
        _run_program(job, limits, isolation, workdir, uid, fds)
    return pid


def _wait(pid: int, timeout_s: float) -> tuple[bool, int, float]:
    """Wait for the program with a wall-clock timeout; (timed out, wait status, CPU seconds used)."""
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        timed_out = not poller.poll(max(1, int(timeout_s * 1000)))
        if timed_out:
            os.kill(pid, signal.SIGKILL)  # as init of its PID namespace, its death kills the rest
    finally:
        os.close(pidfd)
    _, wait_status, usage = os.wait4(pid, 0)
    return timed_out, wait_status, usage.ru_utime + usage.ru_stime


def _run_job(job: dict, isolation: dict, protocol_fds: tuple[int, int]) -> dict:
    limits = job["limits"]
    workdir = tempfile.mkdtemp(prefix="lf-sandbox-")
    # One server runs one program at a time, so its pid makes the program's uid unique.
    uid = UID_BASE + os.getpid() if isolation["separate_uid"] else None
    fds = {"stdout": os.memfd_create("stdout"), "stderr": os.memfd_create("stderr")}
    report_r, fds["report"] = os.pipe()
    try:
        if uid is not None:
            os.chown(workdir, uid, uid)
        start = time.monotonic()
        pid = _start_program(job, limits, isolation, workdir, uid, fds)
        os.close(fds.pop("report"))
        timed_out, wait_status, cpu_s = _wait(pid, limits["timeout_s"])
        duration_s = time.monotonic() - start
        if not isolation["pid_namespace"]:
            try:  # whatever the program left behind in its session
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        raw_report = _read_available(report_r, 1 << 20)
        stdout = _read_memfd(fds["stdout"], limits["max_output_bytes"])
        stderr = _read_memfd(fds["stderr"], limits["max_output_bytes"])
    finally:
        for fd in (*fds.values(), report_r):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(workdir, ignore_errors=True)
    result = {"stdout": stdout, "stderr": stderr, "duration_s": duration_s}
    signalled = os.WIFSIGNALED(wait_status)
    sig = os.WTERMSIG(wait_status) if signalled else None
    cpu_limit = f"CPU-time limit of {limits['cpu_time_s']} s exceeded"
    if timed_out:
        result.update(status="timeout", limit="wall_clock", message=f"wall-clock timeout of {limits['timeout_s']:g} s exceeded")
    elif sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_s >= limits["cpu_time_s"]):
        # As pid 1 the program ignores SIGXCPU; the kernel's SIGKILL at the hard limit ends it instead.
        result.update(status="resource_limit", limit="cpu_time", message=cpu_limit, exception=signal.Signals(sig).name)
    elif sig == signal.SIGXFSZ:
        result.update(status="resource_limit", limit="output", message=OUTPUT_LIMIT.format(**limits), exception="SIGXFSZ")
    elif signalled:
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        result.update(status="crashed", message=f"killed by signal {name}", exception=name)
    else:
        try:
            report = json.loads(raw_report) if raw_report else None
        except ValueError:
            report = None
        if not isinstance(report, dict) or report.get("status") not in ("passed", "failed", "crashed", "resource_limit"):
            code = os.WEXITSTATUS(wait_status)
            result.update(status="crashed", message=f"the program exited with code {code} before the tests finished")
        else:
            if report.get("status") == "resource_limit" and report.get("limit") == "output":
                report["message"] = OUTPUT_LIMIT.format(**limits) + report.get("message", "")
            result.update(report)
    return result


def _probe_pid_namespace() -> bool:
    """Whether this process can give each child a fresh PID namespace (tried in a throwaway child)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for _ in range(2):
                _unshare(CLONE_NEWPID)
                child = os.fork()
                if child == 0:
                    os._exit(0 if os.getpid() == 1 else 1)
                _setns(_state["own_pid_namespace"], CLONE_NEWPID)
                _, wait_status = os.waitpid(child, 0)
                if wait_status != 0:
                    break
            else:
                code = 0
        finally:
            os._exit(code)
    _, wait_status = os.waitpid(pid, 0)
    return wait_status == 0


def _probe_mount_namespace() -> bool:
    """Whether a child can get private copies of the shared writable directories (tried in a child)."""
    probe_dir = tempfile.mkdtemp(prefix="lf-sandbox-probe-")
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                expected = os.stat(probe_dir)
                _private_mounts(probe_dir)  # after this, probe_dir's own path may be hidden
                code = 0 if all(os.path.samestat(os.stat(d), expected) for d in _state["writable_dirs"]) else 1
                if any(not os.listdir(p) for paths in _state["covered"].values() for p in paths):
                    code = 1  # an interpreter directory did not come back
            finally:
                os._exit(code)
        _, wait_status = os.waitpid(pid, 0)
        return wait_status == 0
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)


def _setup_isolation(privileged_layers: bool) -> dict:
    """Set up what this process can; ``privileged_layers=False`` keeps only what works without root."""
    is_root = os.geteuid() == 0
    use_root = is_root and privileged_layers
    isolation = {"root": is_root, "network_namespace": False, "pid_namespace": False, "mount_namespace": False,
                 "separate_uid": use_root}
    _state["writable_dirs"] = [d for d in SHARED_WRITABLE_DIRS if os.path.isdir(d) and not os.path.islink(d)]
    interpreter_dirs = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path]
    covered, fixable = _closed_ancestors(interpreter_dirs)
    _state["covered"] = covered
    if use_root:
        try:
            _unshare(CLONE_NEWNET)  # a namespace with only a loopback device that is down
            isolation["network_namespace"] = True
        except OSError:
            pass
        _state["own_pid_namespace"] = os.open("/proc/self/ns/pid", os.O_RDONLY)
        isolation["pid_namespace"] = _probe_pid_namespace()
        isolation["mount_namespace"] = _probe_mount_namespace()
        if not isolation["mount_namespace"] and covered:  # perhaps only covering the closed directories failed
            _state["covered"] = {}
            isolation["mount_namespace"] = _probe_mount_namespace()
    # Without covered closed directories, the program needs CAP_DAC_READ_SEARCH to import modules.
    _state["needs_read_capability"] = use_root and (not fixable or (bool(covered) and not _state["covered"]))
    isolation["reads_private_files"] = _state["needs_read_capability"]
    isolation["hidden_dirs"] = sorted(_state["covered"]) if use_root else []  # closed dirs covered by a tmpfs
    return isolation


def main() -> None:
    script_dir = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != script_dir]
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # nothing may write into the protocol stream by accident
    os.chdir("/")
    # --unprivileged: the fallback used without root, forced (for testing it on a machine with root).
    isolation = _setup_isolation(privileged_layers="--unprivileged" not in sys.argv[1:])
    for name in PREIMPORT:
        try:
            __import__(name)
        except ImportError:
            pass
    protocol_fds = (requests.fileno(), replies.fileno())

    def reply(obj: dict) -> None:
        replies.write(json.dumps(obj).encode() + b"\n")
        replies.flush()

    reply({"ready": True, "isolation": isolation})
    for line in requests:
        try:
            result = _run_job(json.loads(line), isolation, protocol_fds)
        except Exception as exc:  # noqa: BLE001 - the server must keep serving
            result = {"status": "crashed", "message": f"the sandbox could not run the program: {exc!r}"}
        reply(result)


if __name__ == "__main__":
    main()
