"""The sandbox runs real hostile programs: each test checks the caller and the sandbox's server survive,
the outcome (and the limit hit) is reported, and nothing outside the program's temporary directory changes."""

from __future__ import annotations

import ast
import json
import os
import shutil
import socket
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from language_feedback import sandbox
from language_feedback.sandbox import SandboxJob, SandboxLimits, run_program, run_programs, sandbox_isolation

ISOLATION = sandbox_isolation()
needs_namespaces = pytest.mark.skipif(
    not (ISOLATION["pid_namespace"] and ISOLATION["separate_uid"] and ISOLATION["mount_namespace"]),
    reason=f"needs root for PID/mount namespaces and a separate uid (isolation here: {ISOLATION})",
)
FAST = SandboxLimits(timeout_s=20, cpu_time_s=10, memory_mb=256, max_processes=8, max_output_bytes=10_000)


@pytest.fixture
def outside():
    """A directory with files the program must not be able to change. Not under /tmp: the program gets
    its own /tmp and could not even see it there; here it can, and only file permissions stop it."""
    private = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))
    # The checkout itself may live under /tmp (CI clones anywhere): fall back to the home cache then.
    candidates = (Path(__file__).resolve().parent, Path.home().resolve() / ".cache" / "lf_rewards")
    base = next(c for c in candidates if not any(c.is_relative_to(p) for p in private))
    root = base / f".sandbox-outside-{os.getpid()}"
    (root / "sub").mkdir(parents=True)
    (root / "keep.txt").write_text("keep me")
    (root / "sub" / "data.bin").write_bytes(bytes(range(256)))
    yield root
    shutil.rmtree(root)


def hidden_from_programs(path: Path) -> bool:
    """Whether programs see ``path`` as missing: below a directory the sandbox covers, not bound back."""
    return any(path.is_relative_to(d) for d in ISOLATION["hidden_dirs"]) and \
        not any(path.is_relative_to(d) for d in ISOLATION["bound_dirs"])


def snapshot(root: Path) -> dict[str, tuple]:
    return {
        str(p.relative_to(root)): (p.stat().st_mode, p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else b"")
        for p in sorted(root.rglob("*"))
    } | {".": (root.stat().st_mode, root.stat().st_mtime_ns, b"")}


def server_pids() -> list[int]:
    run_program("pass", "")  # make sure an idle server exists
    return [s.proc.pid for s in sandbox._POOL._idle if s.alive()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def gone(pid: int, within_s: float = 10.0) -> bool:
    """Whether ``pid`` is dead, allowing a SIGKILL already sent some time to be delivered."""
    deadline = time.monotonic() + within_s
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def processes_of_uid(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
            if str(uid) in uids:
                found.append(int(entry.name))
    return found


def run_hostile(code: str, outside: Path, limits: SandboxLimits = FAST, tests: str = ""):
    """Run ``code``; check the caller and the servers survive and ``outside`` is unchanged."""
    servers, before = server_pids(), snapshot(outside)
    result = run_program(textwrap.dedent(code), tests, limits=limits)
    assert all(alive(pid) for pid in servers), "a sandbox server died"
    assert snapshot(outside) == before, "something outside the sandbox changed"
    assert run_program("x = 1", "assert x == 1").passed, "the sandbox no longer works"
    return result


# ------------------------------------------------------------------------------------------------
# What a run reports
# ------------------------------------------------------------------------------------------------


def test_passing_program():
    result = run_program("def add(a, b):\n    return a + b\n", "assert add(1, 2) == 3\nassert add(0, 0) == 0")
    assert result.status == "passed" and result.passed and result.message == ""


def test_failing_assert_reports_actual_expected_and_line():
    result = run_program("def add(a, b):\n    return a - b\n", "assert add(2, 0) == 2\nassert add(1, 2) == 3\n")
    assert result.status == "failed" and not result.passed
    assert result.failed_test == "assert add(1, 2) == 3"
    assert (result.actual, result.expected) == ("-1", "3")
    assert result.part == "tests" and result.line == 2
    assert "assert add(1, 2) == 3" in result.message and "-1" in result.message and "Traceback" in result.message


def test_check_candidate_style_with_pytest_approx():
    tests = "from pytest import approx\n\ndef check(candidate):\n\tassert candidate(1) == approx(0.3)\n\ncheck(f)\n"
    assert run_program("def f(x):\n    return 0.1 + 0.2\n", tests).passed
    failed = run_program("def f(x):\n    return 0.5\n", tests)
    assert failed.status == "failed" and failed.actual == "0.5" and "0.3" in failed.expected


def test_exception_reports_type_and_program_line():
    program = "def div(a, b):\n    c = a\n    return c / b\n"
    result = run_program(program, "assert div(1, 0) == 0")
    assert result.status == "failed"
    assert result.exception == "ZeroDivisionError: division by zero"
    assert (result.part, result.line, result.line_source) == ("program", 3, "return c / b")
    assert result.failed_test == "assert div(1, 0) == 0"


def test_setup_runs_before_program_and_tests_in_one_namespace():
    result = run_program("def f():\n    return CONST\n", "assert f() == 7", setup="CONST = 7")
    assert result.passed


@pytest.mark.parametrize(
    ("program", "tests", "setup", "part", "status"),
    [("def f(:\n    pass\n", "assert True", "", "program", "failed"), ("a\x00b", "", "", "program", "failed"),
     ("x = 1\n", "assert x ==", "", "tests", "error"), ("x = 1\n", "assert x == 1", "y = (", "setup", "error")],
)
def test_code_that_does_not_parse_is_a_per_item_result(program, tests, setup, part, status):
    """A program that does not parse fails; tests or setup code that do not parse cannot judge it: ``error``."""
    result = run_program(program, tests, setup=setup)
    assert result.status == status and result.part == part
    assert "not parse" in result.message


def test_output_before_a_failure_is_captured():
    for tests in ("assert f() == 1", "for _ in [0]:\n    assert f() == 1"):  # both ways of judging
        result = run_program("print('before')\ndef f():\n    print('inside')\n    return 1 / 0\n", tests)
        assert result.status == "failed" and result.stdout == "before\ninside\n"
    result = run_program("print('before')\nraise ValueError('no')\n", "assert True")
    assert result.exception == "ValueError: no" and result.stdout == "before\n"


def test_stdin_is_empty_and_output_is_captured():
    result = run_program("print('hello')\nimport sys\nprint('oops', file=sys.stderr)\ninput()\n", "")
    assert result.status == "failed" and result.exception.startswith("EOFError")
    assert result.stdout == "hello\n" and result.stderr == "oops\n"


def test_run_programs_keeps_order_and_goes_on_after_bad_items():
    jobs = [
        ("def f():\n    return 1\n", "assert f() == 1"),
        SandboxJob("def f(:\n", "assert f() == 1"),
        ("import sys\nsys.exit(1)", ""),
        ("def f():\n    return 2\n", "assert f() == 1"),
        SandboxJob("y = 2", "assert y == 2", setup="pass"),
    ] * 2
    results = run_programs(jobs, workers=2, limits=FAST, progress=False)
    assert [r.status for r in results] == ["passed", "failed", "crashed", "failed", "passed"] * 2


def test_bad_arguments_raise_in_the_caller():
    with pytest.raises(TypeError, match=r"jobs\[1\]\.program"):
        run_programs([("x = 1", ""), (None, "")], progress=False)
    with pytest.raises(ValueError, match="timeout_s"):
        SandboxLimits(timeout_s=0)


def test_a_dead_server_is_replaced():
    for pid in server_pids():
        os.kill(pid, 9)
    assert run_program("x = 1", "assert x == 1").passed


# ------------------------------------------------------------------------------------------------
# Hostile programs
# ------------------------------------------------------------------------------------------------


@needs_namespaces
def test_killing_the_parent_and_everything_else(outside):
    targets = [os.getpid(), *server_pids()]
    result = run_hostile(
        f"""
        import ctypes, os, signal
        libc = ctypes.CDLL(None)
        outcomes = []
        for pid in [os.getppid(), *{targets}]:
            try:
                os.kill(pid, signal.SIGKILL)
                outcomes.append("killed")
            except OSError as e:
                outcomes.append(type(e).__name__)
            libc.kill(pid, signal.SIGKILL)  # no Python in the way
        print(outcomes, flush=True)
        try:
            os.kill(-1, signal.SIGKILL)  # every process it is allowed to signal
        except ProcessLookupError:
            pass  # none: it is alone in its PID namespace
        """,
        outside,
    )
    assert result.status == "passed", result.message
    outcomes = ast.literal_eval(result.stdout.strip())
    assert len(outcomes) == 1 + len(targets) and "killed" not in outcomes[1:]  # none of the outside processes
    assert alive(os.getpid())


def test_sys_exit(outside):
    result = run_hostile("import sys\nsys.exit(3)", outside, tests="assert True")
    assert result.status == "crashed" and "sys.exit(3)" in result.message


def test_os_exit_before_the_tests_finish(outside):
    result = run_hostile("import os\nos._exit(0)", outside, tests="assert False")
    assert result.status == "crashed" and "exited with code 0" in result.message


def test_segfault(outside):
    result = run_hostile("import ctypes\nctypes.string_at(0)", outside)
    assert result.status == "crashed" and "SIGSEGV" in result.message


@needs_namespaces
@pytest.mark.parametrize("fork", ["os.fork()", "ctypes.CDLL(None).fork()"])
def test_fork_bomb_is_contained(outside, fork):
    result = run_hostile(
        f"""
        import ctypes, os
        print(os.getuid(), flush=True)
        while True:
            try:
                {fork}
            except OSError:
                pass
        """,
        outside,
        limits=SandboxLimits(timeout_s=3, max_processes=8),
    )
    assert result.status == "timeout" and result.limit == "wall_clock" and "wall-clock timeout" in result.message
    uid = int(result.stdout.split()[0])
    assert uid != 0 and processes_of_uid(uid) == [], "processes of the bomb survived"


@needs_namespaces  # as root without them, RLIMIT_NPROC would not hold
def test_process_limit_is_reported(outside):
    result = run_hostile("import os\nfor _ in range(50):\n    os.fork()\n", outside)
    assert result.status == "resource_limit" and result.limit == "processes"
    assert "process/thread limit of 8" in result.message


def test_filling_memory(outside):
    result = run_hostile("chunks = []\nwhile True:\n    chunks.append(' ' * 10**6)\n", outside,
                         limits=SandboxLimits(timeout_s=60, memory_mb=128))
    assert result.status == "resource_limit" and result.limit == "memory"
    assert "memory limit of 128 MB" in result.message


def test_infinite_loop_hits_the_wall_clock_timeout(outside):
    result = run_hostile("while True:\n    pass\n", outside, limits=SandboxLimits(timeout_s=1, cpu_time_s=60))
    assert result.status == "timeout" and result.limit == "wall_clock" and "1 s" in result.message


def test_infinite_loop_hits_the_cpu_time_limit(outside):
    result = run_hostile("while True:\n    pass\n", outside, limits=SandboxLimits(timeout_s=60, cpu_time_s=1))
    assert result.status == "resource_limit" and result.limit == "cpu_time"
    assert "CPU-time limit of 1 s" in result.message


def test_huge_prints(outside):
    result = run_hostile("while True:\n    print('x' * 1000)\n", outside)
    assert result.status == "resource_limit" and result.limit == "output"
    assert "output limit of 10000 bytes" in result.message
    assert 0 < len(result.stdout) <= 10_000


def test_big_files_hit_the_output_limit(outside):
    result = run_hostile("with open('big.bin', 'wb') as f:\n    f.write(bytes(10**6))\n", outside)
    assert result.status == "resource_limit" and result.limit == "output"


@needs_namespaces
def test_deleting_files_in_cwd_and_trying_outside(outside):
    marker = f"sandbox-test-marker-{os.getpid()}"
    result = run_hostile(
        f"""
        import json, os, shutil, tempfile
        for name in ("a.txt", {marker!r}):
            open(name, "w").write("x")
        with open(os.path.join(tempfile.gettempdir(), "left_in_tmp"), "w") as f:
            f.write("x")
        print(sorted(os.listdir(".")), flush=True)
        for name in os.listdir("."):
            os.remove(name)
        errors = []
        for attempt in (lambda: os.remove({str(outside / "keep.txt")!r}),
                        lambda: open({str(outside / "keep.txt")!r}, "a").write("changed"),
                        lambda: open({str(outside / "new.txt")!r}, "w"),
                        lambda: os.chmod({str(outside)!r}, 0o777),
                        lambda: shutil.rmtree({str(outside)!r})):
            try:
                attempt()
            except OSError as e:
                errors.append(type(e).__name__)
        print(json.dumps([errors, sorted(os.listdir("."))]))
        """,
        outside,
    )
    assert result.status == "passed", result.message
    created, after = result.stdout.splitlines()
    assert created == str(sorted(["a.txt", "left_in_tmp", marker]))  # /tmp is its own directory
    errors, left = json.loads(after)
    # PermissionError where the program sees the directory; FileNotFoundError where the sandbox hides it.
    expected = "FileNotFoundError" if hidden_from_programs(outside) else "PermissionError"
    assert errors == [expected] * 5 and left == []
    assert not Path("/tmp/left_in_tmp").exists()
    assert not list(Path(tempfile.gettempdir()).glob(f"lf-sandbox-*/{marker}")), "the work directory was not removed"


@needs_namespaces
def test_private_files_stay_private_while_modules_still_import(outside):
    private = outside / "private"
    private.mkdir(mode=0o700)
    (private / "token").write_text("s3cret")
    # The interpreter may itself live under a closed directory (pyenv under /root, mode 0700).
    closed_home = Path.home() / f".lf-sandbox-secret-{os.getpid()}"
    closed_home.write_text("s3cret")
    closed_home.chmod(0o600)
    try:
        result = run_hostile(
            f"""
            import xml.dom.minidom, json, email.parser  # not imported by the server: read from the interpreter's dirs
            outcomes = []
            for path in ({str(private / "token")!r}, {str(closed_home)!r}):
                try:
                    outcomes.append(open(path).read())
                except OSError as e:
                    outcomes.append(type(e).__name__)
            print(outcomes)
            """,
            outside,
        )
    finally:
        closed_home.unlink()
    assert result.status == "passed", result.message
    assert "s3cret" not in result.stdout
    assert not ISOLATION["reads_private_files"]


@needs_namespaces
def test_data_outside_the_system_directories_is_invisible(outside):
    """A data set with the tests' answers, readable by everyone, is out of a program's reach (it sees an
    empty directory there); the interpreter's own directories are still there to import from."""
    if not hidden_from_programs(outside):
        pytest.skip(f"{outside} is not below a directory the sandbox hides here ({ISOLATION['hidden_dirs']})")
    answers = outside / "answers.jsonl"
    answers.write_text('{"test": "assert add(1, 2) == 3"}\n')
    answers.chmod(0o644)
    result = run_hostile(
        f"""
        import json, os, sys
        outcomes = []
        for attempt in (lambda: open({str(answers)!r}).read(), lambda: os.listdir({str(outside)!r})):
            try:
                outcomes.append(attempt())
            except OSError as e:
                outcomes.append(type(e).__name__)
        print(json.dumps([outcomes, os.path.isdir(sys.prefix)]))
        """,
        outside,
    )
    assert result.status == "passed", result.message
    assert json.loads(result.stdout) == [["FileNotFoundError", "FileNotFoundError"], True]


def test_no_network(outside):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    try:
        result = run_hostile(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n", outside)
        assert result.status == "failed" and result.exception.split(":")[0] in ("OSError", "PermissionError")
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()


def test_environment_is_scrubbed(outside, monkeypatch):
    monkeypatch.setenv("LF_SANDBOX_TEST_SECRET", "s3cret")
    sandbox.shutdown()  # the next server starts from this process, with the secret set
    result = run_hostile("import os\nprint(sorted(os.environ.items()))\n", outside)
    assert result.passed
    assert "s3cret" not in result.stdout and "LF_SANDBOX_TEST_SECRET" not in result.stdout
    assert "'PATH'" in result.stdout


# ------------------------------------------------------------------------------------------------
# The fallback without root (forced here with the server's --unprivileged flag; benign programs only,
# since in this mode on this machine the program keeps root's uid)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unprivileged_server():
    server = sandbox._SandboxServer("--unprivileged")
    yield server
    server.close()


def test_fallback_reports_its_isolation(unprivileged_server):
    assert not any(unprivileged_server.isolation[k] for k in
                   ("network_namespace", "pid_namespace", "mount_namespace", "separate_uid"))


def test_fallback_refuses_sockets(unprivileged_server):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    try:
        program = f"import socket\nsocket.create_connection(('127.0.0.1', {listener.getsockname()[1]}), timeout=2)\n"
        result = unprivileged_server.run(SandboxJob(program, ""), FAST)
        assert result.status == "failed" and result.exception.startswith("PermissionError: network access is disabled")
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()


def test_fallback_kills_what_the_program_leaves_behind(unprivileged_server):
    program = "import subprocess\nchild = subprocess.Popen(['sleep', '60'])\nprint(child.pid, flush=True)\n"
    result = unprivileged_server.run(SandboxJob(program, ""), FAST)
    assert result.status == "passed", result.message
    assert gone(int(result.stdout)), "the program's child outlived it"
    result = unprivileged_server.run(SandboxJob(program + "while True:\n    pass\n", ""), SandboxLimits(timeout_s=3))
    assert result.status == "timeout" and gone(int(result.stdout))
