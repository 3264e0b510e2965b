"""Fork server ("zygote") behind :mod:`language_feedback.sandbox`. Runs untrusted Python programs.

Started by the sandbox as ``python -I <this file>`` (isolated mode: no ``PYTHON*`` variables, no user site,
not even this file's directory on ``sys.path``) with a scrubbed environment, it imports the
modules that test programs commonly use once, then forks fresh processes per job, so a program costs
a fork instead of an interpreter start. Stdlib only (plus ``_sandbox_shared.py`` next to it), and never
imported by the caller: nothing from the caller's process leaks into programs.

The server handles metadata only. Its caller talks to it over a Unix seqpacket socket (stdin): one JSON
message per job (mode and limits) carrying file descriptors -- a memfd with the program process's payload
(setup, program, and the expressions to evaluate), memfds for its stdout and stderr, and the socket on which
its values (or the trusted harness's report) go back to the caller -- and one JSON message back per job
saying how each process ended. The server never reads a job's program, tests, values or output, so no
forked process inherits another job's data, and the expected values of a job never reach the server at all.

Per job the server forks the *program process*: it runs setup and program and then, in the parent mode,
evaluates the expressions it was given and writes their values as data (``_sandbox_shared``), one record per
line on fd 3; in the harness mode it serves calls. For harness-mode jobs it also forks the *trusted harness*:
an interpreter that never runs program code, runs the tests with the program's functions replaced by proxies
that send arguments to the program process and get values back as data, and writes the verdict on fd 6.

As root (the normal case on these machines), the server lives in a network namespace without
interfaces (made once at start), and each process it forks is:

- pid 1 of a fresh PID namespace (``unshare(CLONE_NEWPID)`` before the fork, ``setns`` back after):
  it sees no other process, nobody inside can signal it, and when it dies the kernel kills
  everything it started -- with RLIMIT_NPROC, this is what contains fork bombs;
- in a fresh mount namespace where /tmp, /var/tmp, /dev/shm and /run/lock are its own temporary
  working directory (removed afterwards), so it cannot leave files anywhere else;
- a unique unprivileged uid without capabilities (RLIMIT_NPROC holds, root's files are read-only,
  private directories unreadable, other processes cannot be signalled; the program and the harness of a
  job have different uids, so the program cannot read or trace the harness). When the interpreter lives
  under a directory others may not enter (pyenv under /root, mode 0700), the mount namespace covers
  that directory with an empty tmpfs and binds back only the interpreter's own directories, so the
  program can import modules and still read nothing else there (e.g. /root/.ssh, hub tokens);
- limited by rlimits (address space, CPU time, file size = output size, processes/threads) and a
  wall-clock timeout the server enforces; with an empty environment but PATH/HOME/TMPDIR/LANG.

Without root the same code falls back to a new session killed as a whole, RLIMIT_NPROC, and an
audit hook that refuses sockets; :func:`language_feedback.sandbox.sandbox_isolation` reports which
layers are active. Without separate uids the program runs as the same user as the harness and the
caller, so the fallback protects neither the machine nor the verdict from a determined program.
"""

from __future__ import annotations

import ast
import builtins
import ctypes
import errno
import fcntl
import json
import linecache
import operator
import os
import resource
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
import types


def _load_shared() -> types.ModuleType:
    """``_sandbox_shared.py`` from this file's directory (which, in isolated mode, is not on sys.path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_sandbox_shared", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sandbox_shared.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_shared = _load_shared()
NotPlainData, ValueTooLarge = _shared.NotPlainData, _shared.ValueTooLarge
describe, failure_report, safe_repr = _shared.describe, _shared.failure_report, _shared.safe_repr
user_frames, valid_frames = _shared.user_frames, _shared.valid_frames
from_tree, to_tree = _shared.from_tree, _shared.to_tree

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
# World-writable places a program could leave files in; in its mount namespace each is its work dir.
SHARED_WRITABLE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/run/shm")
# The top-level directories a program sees; every other one is an empty tmpfs in its mount namespace, with
# only the interpreter's directories bound back.
VISIBLE_TOP_DIRS = frozenset({"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "run", "sbin",
                              "sys", "tmp", "usr", "var"})
PR_SET_KEEPCAPS = 8
CAP_DAC_READ_SEARCH = 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
# Each program runs as UID_BASE + (server pid): a server runs one program at a time, so the uid is
# unique among live programs, RLIMIT_NPROC (counted per uid) is per program; far above real accounts.
UID_BASE = 2_000_000_000
# The harness of a job runs as HARNESS_UID_BASE + (server pid): never the program's uid.
HARNESS_UID_BASE = 2_100_000_000
CHECK_NAME = "__sandbox_compare__"
# File descriptors in the processes a job runs.
CHANNEL_FD, PAYLOAD_FD, START_FD, REPORT_FD = 3, 4, 5, 6
MAX_MESSAGE = 1 << 16


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
    """In a new mount namespace, put the work dir over every shared world-writable directory, and cover the
    directories of ``_covered_dirs`` with an empty tmpfs but for the interpreter's own directories."""
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


def _covered_dirs(paths: list[str], *, hide_data: bool) -> tuple[dict[str, list[str]], bool]:
    """Directories to cover with an empty tmpfs in a program's mount namespace, each with the interpreter's
    directories below it to bind back; and whether the interpreter's directories are then all readable.

    Covered: with ``hide_data``, every top-level directory but the system ones (``VISIBLE_TOP_DIRS``), since
    /home, /root, /srv, /opt, /mnt, /work... hold people's files, checkouts and data sets (with the answers to
    the tests); and every directory others may not enter above an interpreter directory (pyenv under /root).
    Readable is False when a closed directory is in the way that covering cannot open (a closed directory
    between a covered one and an interpreter directory in a system directory, or the directory itself).
    """
    covered: dict[str, list[str]] = {}
    if hide_data:
        covered = {entry.path: [] for entry in os.scandir("/")
                   if entry.name not in VISIBLE_TOP_DIRS and entry.is_dir(follow_symlinks=False)}
    readable = True
    for path in sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)}):
        parts = path.split(os.sep)
        chain = [os.sep + os.path.join(*parts[1:i]) if i > 1 else os.sep for i in range(1, len(parts) + 1)]
        top = chain[1] if len(chain) > 1 else None
        if top in covered and path != top:
            # Below a covered top-level directory the tmpfs stands in for every directory above the path.
            closed = [] if os.stat(path).st_mode & 0o001 else [path]
            cover = top
        else:
            closed = [d for d in chain if not os.stat(d).st_mode & 0o001]
            if not closed:
                continue
            cover = closed[0]
        if closed and (closed[-1] == path or len(closed) > 1):
            readable = False
            continue
        if not any(path.startswith(kept + os.sep) for kept in covered.get(cover, [])):
            covered.setdefault(cover, []).append(path)
    return {d: kept for d, kept in covered.items() if d != "/" and d not in kept}, readable


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
# Confinement of a forked process
# ------------------------------------------------------------------------------------------------

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


def _place_fds(fd_map: dict[int, int]) -> None:
    """Make the process's fds exactly ``fd_map`` (target -> source) plus nothing else."""
    moved = {target: fcntl.fcntl(source, fcntl.F_DUPFD, 256) for target, source in fd_map.items()}
    for target, source in moved.items():
        os.dup2(source, target)
    os.closerange(max(fd_map) + 1, 1 << 16)


def _confine(limits: dict, isolation: dict, workdir: str, uid: int | None, fd_map: dict[int, int]) -> None:
    """Turn the freshly forked process into a sandbox (as root, before dropping it)."""
    os.setsid()  # without a PID namespace, the session is what gets killed as a whole
    # Python ignores SIGXFSZ; with the default action a write over the limit ends the process.
    for sig in (signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    _place_fds(fd_map)
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


def _read_payload() -> dict:
    data = b""
    while chunk := os.pread(PAYLOAD_FD, 1 << 20, len(data)):
        data += chunk
    os.close(PAYLOAD_FD)
    return json.loads(data)


def _started(error: str = "") -> None:
    """Tell the server whether the process could start. Closed before any program code runs, so a program
    cannot write here: whatever it does, it cannot make its own failure look like the sandbox's."""
    os.write(START_FD, (f"error: {error}" if error else "ok").encode("utf-8", "replace")[:4000])
    os.close(START_FD)


# ------------------------------------------------------------------------------------------------
# The program process (untrusted from the moment the program runs)
# ------------------------------------------------------------------------------------------------

# Bound before any untrusted code runs, so a program rebinding json.dumps, os.write & co. does not
# break the records of an honest run (a dishonest program can write anything: the judge trusts no record).
_dumps, _loads, _write, _read, _exit = json.dumps, json.loads, os.write, os.read, os._exit


def _send(record: dict) -> None:
    data = memoryview(_dumps(record).encode() + b"\n")
    while data:
        data = data[_write(CHANNEL_FD, data):]


def _limit_hit(exc: BaseException) -> str | None:
    """Which sandbox limit an exception means was hit, if any."""
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return "output"
    too_many = isinstance(exc, BlockingIOError) and exc.errno == errno.EAGAIN and _state.get("spawned")
    if too_many or (isinstance(exc, RuntimeError) and "can't start new thread" in str(exc)):
        return "processes"
    return None


def _raised_record(exc: BaseException) -> dict:
    if isinstance(exc, SystemExit):
        return {"kind": "exit", "code": safe_repr(exc.code)}
    return {"kind": "raised", "exception": describe(exc), "frames": user_frames(exc.__traceback__),
            "limit": _limit_hit(exc)}


def _send_outcome(compute) -> dict:
    """Run ``compute()`` (the program's code), send the value it returned or what it raised, return the record.

    Output the program printed is flushed first: an output limit it broke is its failure, not its value.
    """
    try:
        value = compute()
        error = _flush_output()
        if error is not None:
            raise error
        record = _value_record(value)
    except BaseException as exc:  # noqa: BLE001 - whatever the program raises is its outcome
        _flush_output()
        record = _raised_record(exc)
    _send(record)
    return record


def _value_record(value) -> dict:
    try:
        return {"kind": "value", "value": to_tree(value)}
    except NotPlainData as exc:
        return {"kind": "not_plain", "type": exc.type_name}
    except (ValueTooLarge, RecursionError) as exc:
        return {"kind": "too_large", "detail": f"the value is too large to judge ({exc})"}


def _flush_output() -> BaseException | None:
    """Flush the program's buffered output; the error if that hit the output limit."""
    for stream in (sys.__stdout__, sys.__stderr__, sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError as exc:
            if exc.errno == errno.EFBIG:
                return exc
        except Exception:  # noqa: BLE001, S112 - a stream the program replaced or closed
            continue
    return None


def _compile_source(source: str, part: str) -> object:
    filename = f"<{part}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return compile(source, filename, "exec")


def _compile_at(source: str, line: int, mode: str) -> object:
    """Compile a statement or expression of the tests so that tracebacks name its line in the tests."""
    tree = ast.parse(source, "<tests>", mode=mode)
    ast.increment_lineno(tree, line - 1)
    return compile(tree, "<tests>", mode)


def _program_main(payload: dict) -> None:
    """Run setup and program, then evaluate the parent's expressions or serve the harness's calls. Never returns."""
    codes, syntax = [], None
    for part in ("setup", "program"):
        try:
            codes.append(_compile_source(payload[part], part))
        except SyntaxError as exc:
            syntax = {"kind": "syntax", "part": part, "line": exc.lineno, "text": (exc.text or "").strip(),
                      "exception": f"SyntaxError: {exc.msg}"}
            break
        except (ValueError, MemoryError, RecursionError) as exc:  # null bytes, too deeply nested
            syntax = {"kind": "syntax", "part": part, "line": None, "text": "", "exception": describe(exc)}
            break
    prelude = [_compile_at(source, line, "exec") for source, line in payload.get("prelude", [])]
    expressions = [_compile_at(source, line, "eval") for source, line in payload.get("expressions", [])]
    _started()
    if syntax is not None:
        _send(syntax)
        _exit(0)
    namespace = {"__name__": "__sandbox__", "__builtins__": builtins}
    try:
        for code in (*codes, *prelude):
            exec(code, namespace)  # noqa: S102 - running untrusted code is this process's job
        error = _flush_output()
        if error is not None:
            raise error
    except BaseException as exc:  # noqa: BLE001 - every failure of the program is a record
        _flush_output()  # what it printed before failing is part of the result
        _send(_raised_record(exc))
        _exit(0)
    _send({"kind": "ready"})
    if payload["mode"] == "harness":
        _serve(namespace)
        _flush_output()
        _exit(0)
    for code in expressions:
        if _send_outcome(lambda code=code: eval(code, namespace))["kind"] == "exit":
            break
    _flush_output()
    _exit(0)


MAX_RECORD_CHARS = 2_000_000  # one record on a channel (a value is at most 1,000,000 characters)


def _read_lines(fd: int):
    """Lines from ``fd`` until end of input; a line longer than ``MAX_RECORD_CHARS`` ends the input with None."""
    buffer = b""
    while True:
        while b"\n" not in buffer:
            if len(buffer) > MAX_RECORD_CHARS:
                yield None
                return
            chunk = _read(fd, 1 << 16)
            if not chunk:
                return
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        yield line


def _describe_name(namespace: dict, name: str) -> dict:
    """What a name of the program is, for the harness: a callable, a module, plain data, or something else."""
    if name not in namespace:
        return {"kind": "missing"}
    value = namespace[name]
    if type(value) is types.ModuleType:
        return {"kind": "module", "module": value.__name__}
    if callable(value):
        return {"kind": "callable"}
    record = _value_record(value)
    return record if record["kind"] == "value" else {"kind": "other", "type": record.get("type", "")}


def _serve(namespace: dict) -> None:
    """The harness mode: answer requests (describe names, call a function) until the harness is done."""
    for line in _read_lines(CHANNEL_FD):
        if line is None:
            return
        request = _loads(line)
        if request["op"] == "names":
            _send({"kind": "names", "names": {n: _describe_name(namespace, n) for n in request["names"]}})
            continue
        def call(request: dict = request) -> object:
            name = request["name"]
            if name not in namespace:
                raise NameError(f"name {name!r} is not defined")
            return namespace[name](*from_tree(request["args"]), **from_tree(request["kwargs"]))

        if _send_outcome(call)["kind"] == "exit":
            return


# ------------------------------------------------------------------------------------------------
# The trusted harness (never runs program code)
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
            args=[test.left, test.comparators[0], ast.Constant(_AST_OPS[type(test.ops[0])]),
                  ast.Constant(len(self.asserts) - 1)],
            keywords=[],
        )
        node.test = ast.copy_location(call, test)
        return ast.fix_missing_locations(node)


class _ProgramStopped(BaseException):
    """The program process cannot go on (it exited, broke the protocol, or its value cannot be used).

    A BaseException, so that a test's ``except Exception`` cannot swallow it. ``report`` is the result.
    """

    def __init__(self, report: dict):
        super().__init__(report.get("message", ""))
        self.report = report


class _Unjudgeable(BaseException):
    """The tests ask for something the sandbox cannot do (e.g. send a function to the program)."""


class _Program:
    """The harness's end of the channel to the program process."""

    def __init__(self) -> None:
        self.lines = _read_lines(CHANNEL_FD)

    def record(self) -> dict:
        line = next(self.lines, b"")
        if line == b"":
            raise _ProgramStopped({"status": "program_ended", "message": "the program process ended"})
        try:
            record = json.loads(line) if line is not None else None
        except (ValueError, RecursionError):
            record = None
        if type(record) is not dict or type(record.get("kind")) is not str:
            raise _ProgramStopped({"status": "crashed", "message": "the program process wrote something other "
                                   "than the sandbox's records on its value channel"})
        return record

    def request(self, request: dict) -> dict:
        data = memoryview(json.dumps(request).encode() + b"\n")
        try:
            while data:
                data = data[os.write(CHANNEL_FD, data):]
        except OSError:
            raise _ProgramStopped({"status": "program_ended", "message": "the program process ended"}) from None
        return self.record()

    def call(self, name: str, args: tuple, kwargs: dict):
        try:
            request = {"op": "call", "name": name, "args": to_tree(list(args)), "kwargs": to_tree(kwargs)}
        except (NotPlainData, ValueTooLarge, RecursionError) as exc:
            raise _Unjudgeable(f"the tests pass {name}() an argument that cannot be sent to the program: {exc}") \
                from None
        return _value_of(self.request(request), f"{name}()")


def _value_of(record: dict, what: str):
    """The value in a record from the program process, or the program's exception raised here."""
    kind = record["kind"]
    if kind == "value":
        try:
            return from_tree(record.get("value"))
        except ValueError as exc:
            raise _ProgramStopped(failure_report(f"ValueError: the value of {what} cannot be judged ({exc})", [])) \
                from None
    if kind == "raised":
        raise _program_exception(record)
    if kind == "not_plain":
        raise _ProgramStopped(failure_report(f"TypeError: {NotPlainData(str(record.get('type'))[:200])}", []))
    if kind == "too_large":
        raise _ProgramStopped(failure_report(f"ValueError: {str(record.get('detail'))[:300]}", []))
    if kind == "exit":
        code = str(record.get("code"))[:200]
        raise _ProgramStopped({"status": "crashed", "exception": f"SystemExit: {code}",
                               "message": f"the program called sys.exit({code}) before the tests finished"})
    raise _ProgramStopped({"status": "crashed", "message": f"the program process answered {kind!r:.40} to a call"})


class ProgramError(Exception):
    """An exception of the program that is not a builtin one (its text names the original)."""


def _program_exception(record: dict) -> Exception:
    """The program's exception as a genuine builtin exception of the same name (so ``except ValueError`` in a
    test works), carrying the program's record for the report; ``ProgramError`` for any other name."""
    text = str(record.get("exception"))[:2000]
    name, _, message = text.partition(": ")
    cls = getattr(builtins, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)) or issubclass(cls, (StopIteration, StopAsyncIteration)):
        cls, message = ProgramError, text
    try:
        exc = cls(message)
    except Exception:  # noqa: BLE001 - exceptions whose constructor needs more arguments
        exc = ProgramError(text)
    exc.__sandbox_record__ = record
    return exc


class _ProgramFunction:
    """A function (or class) of the program, seen from the harness: a call sends its arguments to the
    program process as data and returns the value it sends back, rebuilt here as plain data."""

    def __init__(self, program: _Program, name: str):
        self._program, self.__name__ = program, name

    def __call__(self, *args, **kwargs):
        return self._program.call(self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return f"<function {self.__name__} of the program>"


class _ProgramObject:
    """A name of the program that is neither plain data nor a function: using it from the tests stops them."""

    def __init__(self, name: str, type_name: str):
        self._name, self._type_name = name, type_name

    def __getattr__(self, attribute: str):
        raise _ProgramStopped(failure_report(
            f"TypeError: {self._name} is a {self._type_name} object of the program, which the tests cannot use "
            f"from the trusted harness (only its functions and plain data)", []))


def _bind_program_names(namespace: dict, program: _Program, names: list[str]) -> None:
    """Bind the names the tests take from the program: functions as proxies, modules as the harness's own import
    of the same module (only under its own name), plain data as values; a missing name stays unbound."""
    wanted = [n for n in names if n not in namespace]
    if not wanted:
        return
    record = program.request({"op": "names", "names": wanted})
    described = record.get("names") if record["kind"] == "names" else None
    if type(described) is not dict:
        raise _ProgramStopped({"status": "crashed", "message": "the program process did not describe its names"})
    for name in wanted:
        info = described.get(name)
        kind = info.get("kind") if type(info) is dict else None
        if kind == "callable":
            namespace[name] = _ProgramFunction(program, name)
        elif kind == "module" and info.get("module") == name:
            try:
                namespace[name] = __import__(name)
            except ImportError:
                continue
        elif kind == "value":
            namespace[name] = _value_of(info, name)
        elif kind == "other":
            namespace[name] = _ProgramObject(name, str(info.get("type"))[:100])


def _harness_failure(exc: BaseException, asserts: list[tuple[str, int, int, bool]]) -> dict:
    frames = user_frames(exc.__traceback__)
    if isinstance(exc, _ProgramStopped):
        report = dict(exc.report)
        if report["status"] == "failed":  # a value the tests cannot use: the report names the test
            return failure_report(report["exception"], frames)
        if frames and frames[-1][0] == "<tests>":
            report["failed_test"] = frames[-1][3]
        return report
    if isinstance(exc, _Unjudgeable):
        return {"status": "error", "message": str(exc)}
    record = getattr(exc, "__sandbox_record__", None)
    if record is not None:
        frames += valid_frames(record.get("frames")) or []
        report = failure_report(str(record.get("exception"))[:2000], frames)
        limit = record.get("limit")
        return {**report, "limit": limit} if limit in ("memory", "output", "processes") else report
    comparison = None
    index = _last_compare.get("index")
    if isinstance(exc, AssertionError) and index is not None and frames and frames[-1][0] == "<tests>":
        segment, first, last, left_is_actual = asserts[index]
        # The remembered comparison belongs to this failure only if that assert is the failing line.
        if first <= frames[-1][1] <= last:
            left, right = safe_repr(_last_compare["left"]), safe_repr(_last_compare["right"])
            comparison = (segment, *((left, right) if left_is_actual else (right, left)))
    report = failure_report(describe(exc), frames, comparison=comparison, assertion=isinstance(exc, AssertionError))
    return {**report, "limit": "memory"} if isinstance(exc, MemoryError) else report


def _harness_judge(payload: dict, program: _Program) -> dict:
    """Run the tests against the program's functions; the report (status ``program_ended``: the caller
    knows how the program process ended, and says so)."""
    try:
        first = program.record()
    except _ProgramStopped as exc:
        return exc.report
    if first["kind"] != "ready":
        return {"status": "program_record", "record": first}  # judged by the caller, as in the parent mode
    setup, tests = payload["setup"], payload["tests"]
    for part, source in (("setup", setup), ("tests", tests)):
        linecache.cache[f"<{part}>"] = (len(source), None, source.splitlines(True), f"<{part}>")
    rewriter = _AssertRewriter(tests)
    tests_code = compile(rewriter.visit(ast.parse(tests, "<tests>")), "<tests>", "exec")
    setup_code = compile(setup, "<setup>", "exec")
    namespace = {"__name__": "__sandbox__", "__builtins__": builtins, CHECK_NAME: _compare}
    try:
        exec(setup_code, namespace)  # noqa: S102 - the test setup code, trusted
        _bind_program_names(namespace, program, payload["names"])
        exec(tests_code, namespace)  # noqa: S102 - the tests, trusted
    except BaseException as exc:  # noqa: BLE001 - every failure of the tests is a result
        return _harness_failure(exc, rewriter.asserts)
    return {"status": "passed", "message": ""}


def _harness_main(payload: dict) -> None:
    """The trusted harness process. Never returns."""
    _libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no process of the same uid may trace or read it
    _started()
    try:
        report = _harness_judge(payload, _Program())
    except BaseException as exc:  # noqa: BLE001 - the harness's own failure
        report = {"status": "error", "message": f"the trusted test harness failed: {describe(exc)}"}
    data = memoryview(json.dumps({"kind": "verdict", **report}).encode() + b"\n")
    while data:
        data = data[os.write(REPORT_FD, data):]
    os._exit(0)


# ------------------------------------------------------------------------------------------------
# The server: one job at a time
# ------------------------------------------------------------------------------------------------


def _process_main(role: str, limits: dict, isolation: dict, workdir: str, uid: int | None,
                  fd_map: dict[int, int]) -> None:
    """A forked process of a job. Never returns."""
    try:
        _confine(limits, isolation, workdir, uid, fd_map)
        payload = _read_payload()
    except BaseException as exc:  # noqa: BLE001
        try:
            _started(f"the sandbox could not start the {role} process: {exc!r}")
        finally:
            os._exit(1)
    try:
        (_harness_main if role == "harness" else _program_main)(payload)
    except BaseException as exc:  # noqa: BLE001 - only reached before _started() was called
        try:
            _started(f"the sandbox could not start the {role} process: {exc!r}")
        finally:
            os._exit(1)
    os._exit(1)


def _start(role: str, limits: dict, isolation: dict, fd_map: dict[int, int]) -> dict:
    """Fork one process of a job, as pid 1 of a fresh PID namespace when possible."""
    workdir = tempfile.mkdtemp(prefix="lf-sandbox-")
    base = HARNESS_UID_BASE if role == "harness" else UID_BASE
    # One server runs one job at a time, so its pid makes each uid unique.
    uid = base + os.getpid() if isolation["separate_uid"] else None
    if uid is not None:
        os.chown(workdir, uid, uid)
    start_r, start_w = os.pipe()
    if isolation["pid_namespace"]:
        _unshare(CLONE_NEWPID)  # only the next child enters it...
    try:
        pid = os.fork()
    finally:
        if isolation["pid_namespace"] and pid != 0:
            # ...and the server's own children go back to the server's namespace, so the next
            # process can get a fresh one.
            _setns(_state["own_pid_namespace"], CLONE_NEWPID)
    if pid == 0:
        os.close(start_r)
        _process_main(role, limits, isolation, workdir, uid, {**fd_map, START_FD: start_w})
    os.close(start_w)
    return {"pid": pid, "workdir": workdir, "start": start_r}


def _wait_all(processes: dict[str, dict], timeout_s: float) -> None:
    """Wait for a job's processes with a wall-clock timeout. When the harness is done the program is stopped."""
    pidfds = {os.pidfd_open(p["pid"]): role for role, p in processes.items()}
    poller = select.poll()
    for fd in pidfds:
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout_s
    alive = set(processes)
    try:
        while alive:
            if "harness" in processes and "harness" not in alive and "program" in alive:
                os.kill(processes["program"]["pid"], signal.SIGKILL)
                processes["program"]["stopped"] = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for role in alive:
                    os.kill(processes[role]["pid"], signal.SIGKILL)  # as init of its PID namespace, all die
                    processes[role]["timed_out"] = True
            for fd, _ in poller.poll(max(1, int(remaining * 1000)) if remaining > 0 else None):
                role = pidfds[fd]
                _, status, usage = os.wait4(processes[role]["pid"], 0)
                processes[role].update(status=status, cpu_s=usage.ru_utime + usage.ru_stime)
                poller.unregister(fd)
                alive.discard(role)
    finally:
        for fd in pidfds:
            os.close(fd)


def _outcome(process: dict, isolation: dict) -> dict:
    """What the caller needs to know about how a process ended (and whether it could start)."""
    if not isolation["pid_namespace"]:
        try:  # whatever the process left behind in its session
            os.killpg(process["pid"], signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    start = os.read(process["start"], 4096).decode("utf-8", "replace")
    os.close(process["start"])
    shutil.rmtree(process["workdir"], ignore_errors=True)
    status = process["status"]
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    name = None if sig is None else signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
    return {"started": start == "ok", "start_error": start.removeprefix("error: ") if start != "ok" else "",
            "timed_out": process.get("timed_out", False), "stopped": process.get("stopped", False),
            "signal": name, "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "cpu_s": process["cpu_s"]}


def _run_job(request: dict, fds: list[int], isolation: dict) -> dict:
    """Run one job; ``fds`` are the caller's: payload, stdout, stderr, channel (+ harness payload in harness mode)."""
    limits = request["limits"]
    mode = request["mode"]
    payload, stdout, stderr, channel = fds[:4]
    devnull = os.open(os.devnull, os.O_RDWR)
    pair = socket.socketpair() if mode == "harness" else None
    processes: dict[str, dict] = {}
    start = time.monotonic()
    try:
        if pair is None:
            program_fds = {0: devnull, 1: stdout, 2: stderr, CHANNEL_FD: channel, PAYLOAD_FD: payload}
            processes["program"] = _start("program", limits, isolation, program_fds)
        else:
            program_fds = {0: devnull, 1: stdout, 2: stderr, CHANNEL_FD: pair[0].fileno(), PAYLOAD_FD: payload}
            processes["program"] = _start("program", limits, isolation, program_fds)
            harness_fds = {0: devnull, 1: devnull, 2: devnull, CHANNEL_FD: pair[1].fileno(), PAYLOAD_FD: fds[4],
                           REPORT_FD: channel}
            processes["harness"] = _start("harness", limits, isolation, harness_fds)
    except BaseException:
        for process in processes.values():  # the harness could not be started: stop the program
            os.kill(process["pid"], signal.SIGKILL)
            os.waitpid(process["pid"], 0)
            os.close(process["start"])
            shutil.rmtree(process["workdir"], ignore_errors=True)
        raise
    finally:
        os.close(devnull)
        for end in pair or ():
            end.close()
        for fd in fds:
            os.close(fd)
    _wait_all(processes, limits["timeout_s"])
    reply = {role: _outcome(p, isolation) for role, p in processes.items()}
    return {"duration_s": time.monotonic() - start, **reply}


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
    # Cover what can be covered: data directories and closed ones, else closed ones only, else nothing.
    options = [_covered_dirs(interpreter_dirs, hide_data=True), _covered_dirs(interpreter_dirs, hide_data=False)]
    options.append(({}, not options[1][0] and options[1][1]))
    _state["covered"], readable = options[0]
    if use_root:
        try:
            _unshare(CLONE_NEWNET)  # a namespace with only a loopback device that is down
            isolation["network_namespace"] = True
        except OSError:
            pass
        _state["own_pid_namespace"] = os.open("/proc/self/ns/pid", os.O_RDONLY)
        isolation["pid_namespace"] = _probe_pid_namespace()
        for _state["covered"], readable in options:
            isolation["mount_namespace"] = _probe_mount_namespace()
            if isolation["mount_namespace"]:
                break
    # When the interpreter's directories are not all readable, the program needs CAP_DAC_READ_SEARCH to import.
    _state["needs_read_capability"] = use_root and not readable
    isolation["reads_private_files"] = _state["needs_read_capability"]
    covered = _state["covered"] if use_root and isolation["mount_namespace"] else {}
    isolation["hidden_dirs"] = sorted(covered)  # directories programs see as an empty tmpfs...
    isolation["bound_dirs"] = sorted(p for kept in covered.values() for p in kept)  # ...but for these
    return isolation


def main() -> None:
    channel = socket.socket(fileno=os.dup(0))  # a seqpacket socket to the caller
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
    channel.send(json.dumps({"ready": True, "isolation": isolation}).encode())
    while True:
        try:
            message, fds, flags, _ = socket.recv_fds(channel, MAX_MESSAGE, 8)
        except OSError:
            return
        if not message:
            return  # the caller closed the channel
        try:
            request = json.loads(message)
            expected_fds = 5 if request["mode"] == "harness" else 4
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != expected_fds:
                raise ValueError(f"a malformed request ({len(fds)} file descriptors, flags {flags})")
        except Exception as exc:  # noqa: BLE001 - the server must keep serving
            for fd in fds:
                os.close(fd)
            reply = {"error": f"the sandbox could not run the job: {exc!r}"}
        else:
            try:
                reply = _run_job(request, fds, isolation)  # closes the fds
            except Exception as exc:  # noqa: BLE001
                reply = {"error": f"the sandbox could not run the job: {exc!r}"}
        channel.send(json.dumps(reply).encode())


if __name__ == "__main__":
    main()
