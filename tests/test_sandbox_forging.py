"""Programs written to forge a "passed" verdict, run for real in the sandbox: none may pass.

Every attack is a whole program for the task ``add(a, b)`` that does not solve it (the real answers appear
nowhere in it) and tries one way to make the verdict say "passed" anyway: values equal to anything, exiting
or reporting success early, patching what the tests or the harness look up, reaching the harness's state,
reading the expected values, breaking the value channel or the proxy protocol. Each runs against the two
ways the sandbox judges: asserts judged in the caller (``judged_by="parent"``) and tests run by the trusted
harness (``judged_by="trusted_harness"``: a loop with a generator and a mutable argument, and tolerance asserts
that look like the first kind but compute with the value). An attack must end as a real failure of the program: "failed",
"crashed", "timeout" or "resource_limit", never "passed" and never "error" (which a reward may skip).
The controls (honest programs in the same styles) must pass in both modes.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from language_feedback.sandbox import SandboxJob, SandboxLimits, run_programs, sandbox_isolation

ISOLATION = sandbox_isolation()
if not (ISOLATION["pid_namespace"] and ISOLATION["separate_uid"] and ISOLATION["mount_namespace"]):
    pytest.skip(f"the verdict guarantee needs root's isolation layers (here: {ISOLATION})", allow_module_level=True)

LIMITS = SandboxLimits(timeout_s=15, cpu_time_s=10, memory_mb=512, max_processes=8, max_output_bytes=200_000)

# Judged in the caller: asserts of the form `assert CALL == DATA` (pytest.approx included).
PARENT_TESTS = """\
from pytest import approx

assert add(1, 2) == 3
assert add(20, 22) == 42
assert add(-7, 3) == -4
assert add(0.5, 0.25) == approx(0.75)
assert add([1, 2], [3]) == [1, 2, 3]
"""

# Run by the trusted harness: a loop, a tolerance computed from the value, a generator, a mutable argument.
HARNESS_TESTS = """\
def check(candidate):
    for a, b, total in [(1, 2, 3), (20, 22, 42), (-7, 3, -4)]:
        assert candidate(a, b) == total
    assert abs(candidate(0.5, 0.25) - 0.75) < 1e-9
    assert all(candidate(x, 0) == x for x in range(5))
    xs = [1, 2]
    assert candidate(xs, [3]) == xs + [3]

check(add)
"""

# Tolerances computed from the value: they look like MBPP asserts but must go to the trusted harness.
TOLERANCE_TESTS = """\
assert abs(add(0.5, 0.25) - 0.75) < 1e-9
assert abs(add(1, 2) - 3) < 1e-9
"""

# test style -> (tests, which side must judge them)
MODES = {"parent": (PARENT_TESTS, "parent"), "harness": (HARNESS_TESTS, "trusted_harness"),
         "tolerance": (TOLERANCE_TESTS, "trusted_harness")}

# Finds answers the way a forging program would: any text that looks like the tests, anywhere it can look.
FIND_ANSWERS = r'''
import ast, re

def answers_in(text, table):
    for line in text.replace("\\n", "\n").splitlines():  # also inside reprs of strings
        line = line.strip()
        if line.startswith("assert add(") and "==" in line:
            try:
                test = ast.parse(line).body[0].test
                expected = test.comparators[0]
                if isinstance(expected, ast.Call):  # approx(x)
                    expected = expected.args[0]
                table[repr(tuple(ast.literal_eval(a) for a in test.left.args))] = ast.literal_eval(expected)
            except Exception:
                pass
    for a, b, total in re.findall(r"\((-?\d+), (-?\d+), (-?\d+)\)", text):
        if int(a) + int(b) == int(total):  # a test case, not any triple
            table.setdefault(repr((int(a), int(b))), int(total))
    return table

def answer(table, a, b):
    return table.get(repr((a, b)), 0)  # what it found, else a wrong value
'''

ANYTHING = """
class Anything:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __lt__(self, other): return True
    def __sub__(self, other): return self
    def __abs__(self): return self
    def __bool__(self): return True
    __hash__ = object.__hash__
"""



# The end of every attack that looks for the expected values: scan() builds a table, add() answers from it.
ANSWER_FROM_SCAN = """
TABLE = scan()
def add(a, b):
    return answer(TABLE, a, b)
"""


def attack(*parts: str) -> str:
    """A program made of several snippets, each indented its own way."""
    return "\n".join(textwrap.dedent(part) for part in parts)


ATTACKS: dict[str, str] = {
    # --- values equal to anything ------------------------------------------------------------------
    "always_equal_object": attack(ANYTHING, "def add(a, b):\n    return Anything()\n"),
    "int_subclass_equal_to_anything": """
        class Int(int):
            def __eq__(self, other): return True
            def __ne__(self, other): return False
            def __lt__(self, other): return True
            def __sub__(self, other): return self
            def __abs__(self): return self
            __hash__ = int.__hash__
        def add(a, b):
            return Int(0)
        """,
    "str_subclass_equal_to_anything": """
        class Str(str):
            def __eq__(self, other): return True
            def __ne__(self, other): return False
            __hash__ = str.__hash__
        def add(a, b):
            return Str("no")
        """,
    "list_subclass_equal_to_anything": """
        class List(list):
            def __eq__(self, other): return True
            def __ne__(self, other): return False
        def add(a, b):
            return List()
        """,
    "float_subclass_equal_to_anything": """
        class Float(float):
            def __eq__(self, other): return True
            def __sub__(self, other): return Float(0.0)
            def __abs__(self): return Float(0.0)
            def __lt__(self, other): return True
            __hash__ = float.__hash__
        def add(a, b):
            return Float(1.5)
        """,
    "counter_subclass_equal_to_anything": """
        import collections
        class Counter(collections.Counter):
            def __eq__(self, other): return True
        def add(a, b):
            return Counter()
        """,
    "class_named_int": """
        class int(int):  # type(v).__name__ == "int", but not the int
            def __eq__(self, other): return True
            def __ne__(self, other): return False
            def __lt__(self, other): return True
            def __sub__(self, other): return self
            def __abs__(self): return self
            __hash__ = 0 .__class__.__hash__
        def add(a, b):
            return int(7)
        """,
    "class_property_claims_int": attack(ANYTHING, """
        class Fake(Anything):
            __class__ = property(lambda self: int)  # isinstance(Fake(), int) is True
        def add(a, b):
            return Fake()
        """),
    "class_assignment": attack(ANYTHING, """
        class Plain:
            pass
        class Equal(Anything):
            pass
        def add(a, b):
            value = Plain()
            value.__class__ = Equal  # an object that was plain when made
            return value
        """),
    "reduce_runs_code_on_load": """
        class Evil:
            def __reduce__(self):
                return (eval, ("__import__('pathlib').Path('/tmp/lf-sandbox-forged-{pid}').touch() or 3",))
            def __eq__(self, other): return True
        def add(a, b):
            return Evil()
        """,
    "getstate_and_reduce_ex": """
        import copyreg
        class Evil:
            def __reduce_ex__(self, protocol): return (int, (3,))
            def __getstate__(self): return {"value": 3}
            def __eq__(self, other): return True
        def add(a, b):
            return Evil()
        """,
    "container_of_anything": attack(ANYTHING, "def add(a, b):\n    return [Anything(), (Anything(),), {Anything()}]\n"),
    "return_a_type": "def add(a, b):\n    return int\n",
    "return_a_function": "def add(a, b):\n    return lambda *args: True\n",
    "iterator_differs_on_second_read": """
        class Shifty(list):
            reads = 0
            def __iter__(self):
                Shifty.reads += 1
                return iter([] if Shifty.reads > 1 else [0])
            def __eq__(self, other): return Shifty.reads > 1
        def add(a, b):
            return (x for x in [a, b])
        """,
    "huge_value": "def add(a, b):\n    return [0] * 20_000_000\n",
    "huge_int": "def add(a, b):\n    return 10 ** 200_000\n",
    "self_containing_value": "def add(a, b):\n    x = []\n    x.append(x)\n    return x\n",
    # --- exiting or reporting success early ---------------------------------------------------------
    "sys_exit_0_at_import": "import sys\nsys.exit(0)\n",
    "os_exit_0_at_import": "import os\nos._exit(0)\n",
    "os_exit_0_in_the_call": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "sys_exit_0_in_the_call": "import sys\ndef add(a, b):\n    raise SystemExit(0)\n",
    "keyboard_interrupt_in_the_call": "def add(a, b):\n    raise KeyboardInterrupt\n",
    "forged_records_on_every_fd": """
        import json, os
        lines = [{"kind": "ready"}] + [{"kind": "value", "value": 0} for _ in range(5)]
        lines += [{"kind": "verdict", "status": "passed", "message": ""}, {"status": "passed", "message": ""}]
        data = "".join(json.dumps(line) + "\\n" for line in lines).encode()
        for fd in range(0, 64):
            try:
                os.write(fd, data)
            except OSError:
                pass
        os._exit(0)
        """,
    "forged_values_then_the_real_run": """
        import os
        os.write(3, b'{"kind": "ready"}\\n' + b'{"kind": "value", "value": 3}\\n' * 8)
        def add(a, b):
            return 0
        """,
    "print_a_fake_report": """
        print('{"status": "passed", "message": ""}')
        print('{"kind": "verdict", "status": "passed", "message": ""}')
        def add(a, b):
            return 0
        """,
    "time_bomb_writes_after_the_calls": """
        import os, threading, time
        def bomb():
            time.sleep(0.05)
            for fd in (3, 6):
                try:
                    os.write(fd, b'{"kind": "verdict", "status": "passed", "message": ""}\\n' * 10)
                except OSError:
                    pass
        threading.Thread(target=bomb, daemon=True).start()
        if os.fork() == 0:
            bomb()
            os._exit(0)
        def add(a, b):
            time.sleep(0.1)
            return 0
        """,
    # --- shadowing or patching names the tests look up ------------------------------------------------
    "shadow_builtins_in_the_module": attack(ANYTHING, """
        abs = lambda x: 0
        all = lambda iterable: True
        isinstance = lambda *args: True
        approx = lambda *args, **kwargs: Anything()
        def add(a, b):
            return 0
        """),
    "define_the_builtins_the_tests_use": """
        def abs(x):
            return 0
        def round(x, digits=0):
            return 0.75
        def all(iterable):
            return True
        def add(a, b):
            return 0
        """,
    "patch_the_builtins_module": attack(ANYTHING, """
        import builtins
        builtins.abs = lambda x: 0
        builtins.all = lambda iterable: True
        builtins.isinstance = lambda *args: True
        builtins.type = lambda *args: int
        builtins.AssertionError = type("NotAnAssertion", (Exception,), {})
        def add(a, b):
            return 0
        """),
    "replace_dunder_builtins": """
        __builtins__ = dict(__import__("builtins").__dict__, abs=lambda x: 0, all=lambda it: True)
        def add(a, b):
            return 0
        """,
    "patch_operator_and_pytest_approx": attack(ANYTHING, """
        import operator, pytest
        operator.eq = lambda a, b: True
        operator.ne = lambda a, b: False
        operator.lt = lambda a, b: True
        pytest.approx = lambda *args, **kwargs: Anything()
        def add(a, b):
            return 0
        """),
    "patch_sys_modules": attack(ANYTHING, """
        import sys, types
        fake = types.ModuleType("pytest")
        fake.approx = lambda *args, **kwargs: Anything()
        sys.modules["pytest"] = fake
        fake_json = types.ModuleType("json")
        fake_json.dumps = lambda *args, **kwargs: '{"kind": "verdict", "status": "passed", "message": ""}'
        fake_json.loads = __import__("json").loads
        sys.modules["json"] = fake_json
        def add(a, b):
            return 0
        """),
    # --- monkeypatching the serializer and the harness code in the program's process --------------------
    "patch_the_serializer": """
        import sys
        main = sys.modules["__main__"]
        main.to_tree = lambda value: 3
        main._value_record = lambda value: {"kind": "value", "value": 3}
        main._dumps = lambda record: '{"kind": "verdict", "status": "passed", "message": ""}'
        shared = sys.modules.get("_sandbox_shared")
        if shared is not None:
            shared.to_tree = lambda value: 3
        def add(a, b):
            return 0
        """,
    "patch_the_record_sender": """
        import os, sys
        main = sys.modules["__main__"]
        def send(record):
            forged = {"kind": "value", "value": 3} if record.get("kind") != "ready" else record
            os.write(3, (__import__("json").dumps(forged) + "\\n").encode())
        main._send = send
        main._compare = lambda left, right, op, index: True
        def add(a, b):
            return 0
        """,
    "lie_about_names_to_the_harness": """
        import sys
        main = sys.modules["__main__"]
        main._describe_name = lambda namespace, name: {"kind": "value", "value": {"tuple": []}} \\
            if name == "add" else {"kind": "module", "module": "builtins"}
        def add(a, b):
            return 0
        """,
    # --- reaching harness state: frames, gc, trace/profile, sys.modules ---------------------------------
    "walk_the_frames": attack(FIND_ANSWERS, """
        import sys
        table = {}
        frame = sys._getframe()
        while frame is not None:
            for value in list(frame.f_locals.values()) + list(frame.f_globals.values()):
                if isinstance(value, (str, bytes, dict, list, tuple)):
                    answers_in(repr(value), table)
            frame = frame.f_back
        def add(a, b):
            return answer(table, a, b)
        """),
    "scan_every_object_with_gc": attack(FIND_ANSWERS, """
        import gc, sys
        def scan():
            table = {}
            for obj in gc.get_objects():
                if isinstance(obj, (dict, list, tuple)):
                    answers_in(repr(obj)[:100_000], table)
            for module in list(sys.modules.values()):
                answers_in(repr(getattr(module, "__dict__", {}))[:100_000], table)
            return table
        def add(a, b):
            return answer(scan(), a, b)
        """),
    "read_the_tests_from_linecache": attack(FIND_ANSWERS, """
        import linecache
        def add(a, b):
            table = {}
            for entry in list(linecache.cache.values()):
                answers_in("".join(entry[2]), table)
            return answer(table, a, b)
        """),
    "trace_and_profile_the_comparison": """
        import sys, threading, ctypes
        def tracer(frame, event, arg):
            if frame.f_code.co_name in ("_compare", "__sandbox_compare__", "_judge_test", "judge_parent"):
                frame.f_locals["right"] = frame.f_locals.get("left")
                ctypes.pythonapi.PyFrame_LocalsToFast(ctypes.py_object(frame), ctypes.c_int(0))
            return tracer
        sys.settrace(tracer)
        sys.setprofile(lambda frame, event, arg: None)
        threading.settrace(tracer)
        def add(a, b):
            return 0
        """,
    # --- reading the expected values from memory or files -------------------------------------------------
    "scan_own_memory": attack(FIND_ANSWERS, """
        import re
        def scan():
            table = {}
            with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
                budget = 64 << 20
                for line in maps:
                    start, end = (int(x, 16) for x in line.split()[0].split("-"))
                    if "r" not in line.split()[1] or end - start > budget:
                        continue
                    try:
                        mem.seek(start)
                        answers_in(mem.read(end - start).decode("latin-1"), table)
                    except (OSError, ValueError, OverflowError):
                        continue
                    budget -= end - start
            return table
        """, ANSWER_FROM_SCAN),
    "read_other_processes": attack(FIND_ANSWERS, """
        import os
        def scan():
            table, me = {}, os.readlink("/proc/self")
            for pid in filter(str.isdigit, os.listdir("/proc")):
                if pid == me:  # its own pipes would block a read; scan_own_memory covers itself
                    continue
                for name in ("cmdline", "environ"):
                    try:
                        with open(f"/proc/{pid}/{name}", "rb") as f:
                            answers_in(f.read().decode("latin-1"), table)
                    except OSError:
                        pass
                try:
                    for fd in os.listdir(f"/proc/{pid}/fd"):
                        with open(f"/proc/{pid}/fd/{fd}", "rb") as f:
                            answers_in(f.read(1 << 20).decode("latin-1"), table)
                except OSError:
                    pass
                try:
                    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
                        for line in maps:
                            start, end = (int(x, 16) for x in line.split()[0].split("-"))
                            mem.seek(start)
                            answers_in(mem.read(min(end - start, 1 << 22)).decode("latin-1"), table)
                except (OSError, ValueError, OverflowError):
                    pass
            return table
        """, ANSWER_FROM_SCAN),
    "search_files_for_the_tests": attack(FIND_ANSWERS, """
        import os
        def scan():
            table, seen = {}, 0
            for root in (".", "/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~"), "/run", "/home", "/srv"):
                for folder, dirs, files in os.walk(root):
                    for name in files:
                        seen += 1
                        if seen > 5000:
                            return table
                        try:
                            with open(os.path.join(folder, name), "rb") as f:
                                answers_in(f.read(1 << 20).decode("latin-1"), table)
                        except OSError:
                            pass
            return table
        """, ANSWER_FROM_SCAN),
    # --- against the trusted side itself --------------------------------------------------------------------
    "kill_every_process_it_can": """
        import os, signal
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
        def add(a, b):
            return 0
        """,
    "ptrace_every_process": """
        import ctypes, os
        libc = ctypes.CDLL(None)
        for pid in filter(str.isdigit, os.listdir("/proc")):
            libc.ptrace(16, int(pid), 0, 0)  # PTRACE_ATTACH
        def add(a, b):
            return 0
        """,
    "flood_the_value_channel": """
        import os
        chunk = b"x" * (1 << 20)
        for fd in (3, 6):
            try:
                for _ in range(64):
                    os.write(fd, chunk)
            except OSError:
                pass
        def add(a, b):
            return 0
        """,
    "malformed_records": """
        import os
        bad = [b'{"kind": "ready"}', b'{"kind": "raised", "exception": "X", "frames": [["<elsewhere>", 1, "f", "x"]]}',
               b'{"kind": "value", "value": {"set": [[1]]}}', b'{"kind": "value", "value": {"dict": 5}}',
               b'{"kind": "names", "names": {"add": {"kind": "callable"}}}', b"[" * 100_000, b"\\xff\\xfe"]
        for fd in (3, 6):
            try:
                os.write(fd, b"\\n".join(bad) + b"\\n")
            except OSError:
                pass
        def add(a, b):
            return 0
        """,
    "mutate_the_arguments": """
        def add(a, b):
            if isinstance(a, list):
                a.clear()  # then `xs + [3]` in the tests would be [3], if the tests saw this list
                return b
            return a + b
        """,
}


# Attacks aimed at one test style only (this one is right about numbers; it cheats with a list argument).
ONLY_IN = {"mutate_the_arguments": ("parent", "harness")}
RUNS = [(name, mode) for name in sorted(ATTACKS) for mode in MODES if mode in ONLY_IN.get(name, MODES)]


def program(name: str) -> str:
    return textwrap.dedent(ATTACKS[name]).replace("{pid}", str(os.getpid()))


@pytest.fixture(scope="module")
def attack_results():
    """Every attack in both modes, run as one batch (the way a training loop runs them)."""
    jobs = [SandboxJob(program(name), MODES[mode][0]) for name, mode in RUNS]
    return dict(zip(RUNS, run_programs(jobs, workers=2, limits=LIMITS, progress=False)))


def test_there_are_enough_attacks():
    assert len(ATTACKS) >= 25


@pytest.mark.parametrize(("name", "mode"), RUNS)
def test_attack_does_not_pass(attack_results, name, mode):
    result = attack_results[(name, mode)]
    assert "does not parse" not in result.message  # the attack itself ran
    assert result.status in ("failed", "crashed", "timeout", "resource_limit"), (result.status, result.message)
    assert result.tests_passed < result.tests_total
    assert result.judged_by == MODES[mode][1]


def test_nothing_ran_on_the_trusted_side(attack_results):
    """The __reduce__ attack would create this file if anything unpickled its value outside the sandbox."""
    assert not Path(f"/tmp/lf-sandbox-forged-{os.getpid()}").exists()


def test_what_the_attacks_are_told(attack_results):
    """Failures say what happened, in the words execution feedback uses."""
    int_subclass = attack_results[("int_subclass_equal_to_anything", "parent")]
    assert int_subclass.failed_test == "assert add(1, 2) == 3"
    assert int_subclass.exception.startswith("TypeError: the value is of type Int, not plain data")
    huge = attack_results[("huge_value", "parent")]
    assert huge.exception.startswith("ValueError: the value is too large to judge")
    exited = attack_results[("os_exit_0_at_import", "harness")]
    assert exited.status == "crashed" and "exited with code 0 before the tests finished" in exited.message
    mutated = attack_results[("mutate_the_arguments", "harness")]
    assert mutated.failed_test == "assert candidate(xs, [3]) == xs + [3]"
    assert (mutated.actual, mutated.expected) == ("[3]", "[1, 2, 3]")  # the tests' list was not emptied


# ------------------------------------------------------------------------------------------------
# Controls: honest programs pass in both modes
# ------------------------------------------------------------------------------------------------

CONTROLS = {
    "correct": "def add(a, b):\n    return a + b\n",
    "prints_a_lot": "def add(a, b):\n    for i in range(500):\n        print('working on it', i)\n    return a + b\n",
    "float_equal_to_an_int": "def add(a, b):\n    return float(a + b) if not isinstance(a, list) else a + b\n",
    "helper_function_and_class": """
        class Accumulator:
            def __init__(self, start):
                self.total = start
            def plus(self, other):
                self.total = self.total + other
                return self
        def unwrap(acc):
            return acc.total
        def add(a, b):
            return unwrap(Accumulator(a).plus(b))
        """,
}

NESTED_PROGRAM = """
import collections
def shapes(n):
    return {"square": [(0, 0), (0, n), (n, n), (n, 0)], "sides": {4}, "names": ("a", "b"),
            "nested": [[1, [2, (3, frozenset({4}))]], {"k": None}], "count": collections.Counter("aab")}
"""
NESTED_EXPECTED = ("{'square': [(0, 0), (0, 2), (2, 2), (2, 0)], 'sides': {4}, 'names': ('a', 'b'), "
                   "'nested': [[1, [2, (3, frozenset({4}))]], {'k': None}], 'count': {'a': 2, 'b': 1}}")
NESTED_TESTS = {
    "parent": f"assert shapes(2) == {NESTED_EXPECTED}\n",
    "harness": f"for n in [2]:\n    assert shapes(n) == {NESTED_EXPECTED}\n",
    "tolerance": "assert len(shapes(2)) - 5 < 1e-9\n",
}


@pytest.mark.parametrize("mode", MODES)
def test_controls_pass(mode):
    tests, judge = MODES[mode]
    names = sorted(CONTROLS)
    jobs = [SandboxJob(textwrap.dedent(CONTROLS[n]), tests) for n in names]
    jobs.append(SandboxJob(NESTED_PROGRAM, NESTED_TESTS[mode]))
    results = run_programs(jobs, workers=2, limits=LIMITS, progress=False)
    for name, result in zip([*names, "nested_containers"], results):
        assert result.passed, (name, result.message)
        assert result.judged_by == judge and result.tests_passed == result.tests_total >= 1
    calls = {"parent": 5, "harness": 10, "tolerance": 2}[mode]  # add() calls the tests make
    assert results[names.index("prints_a_lot")].stdout.count("working on it") == 500 * calls
