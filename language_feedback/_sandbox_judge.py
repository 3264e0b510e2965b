"""The trusted side of a sandbox verdict, in the caller's process: planning the tests and judging the values.

:func:`plan_tests` parses a job's tests with ``ast``. Tests made only of asserts of the form
``assert EXPR <op> EXPR``, ``assert EXPR`` or ``assert not EXPR`` (at top level, or in a HumanEval-style
``def check(candidate)`` called as ``check(f)``), where one side is data the caller can evaluate itself
(a literal, ``tuple``/``list``/``set``/``frozenset``/``float`` of one, ``pytest.approx`` of one, or a name the
tests bound to one) and the other side is a call to the function under test with its inputs (at most inside
one-argument wrappers such as ``int(f(x))``), are judged here, in the *parent* mode: the program process gets
the program, the setup code, the tests' imports and each call (``candidate`` renamed to the function under
test), evaluates it and sends its value back as data (:mod:`language_feedback._sandbox_shared`);
:func:`judge_parent` compares it with the test's operator. The expected side never leaves this process. Every
other test source (loops, helpers, tolerances computed from the value, two sides that both need evaluating...)
goes to the *trusted harness*, a separate process that runs the tests with the program's functions replaced by
proxies (see ``_sandbox_server.py``).
"""

from __future__ import annotations

import ast
import builtins
import copy
import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from language_feedback._sandbox_shared import (
    NotPlainData,
    describe,
    failure_report,
    from_tree,
    safe_repr,
    valid_frames,
)

COMPARE_OPS: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Eq: ("==", operator.eq), ast.NotEq: ("!=", operator.ne), ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le), ast.Gt: (">", operator.gt), ast.GtE: (">=", operator.ge),
    ast.Is: ("is", operator.is_), ast.IsNot: ("is not", operator.is_not),
    ast.In: ("in", lambda a, b: a in b), ast.NotIn: ("not in", lambda a, b: a not in b),
}
_OPS_BY_NAME = {name: fn for name, fn in COMPARE_OPS.values()}
# Builtins the caller may apply to literal data while evaluating an expected value: cheap, pure.
_PARENT_BUILTINS = {"tuple": tuple, "list": list, "set": set, "frozenset": frozenset, "float": float}
PARSE_FAILURES = {"setup": "the test setup code does not parse", "program": "the program does not parse",
                  "tests": "the tests do not parse"}
OUTPUT_LIMIT = "output limit of {max_output_bytes} bytes exceeded (stdout, stderr or a file)"
MAX_RECORD_CHARS = 2_000_000  # one record on the value channel (a value is at most 1,000,000 characters)
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class ParentTest:
    """One assert judged in the caller.

    ``remote`` is the expression (source, line) the program process evaluates, or None when both sides are
    data; ``sides`` are the compared sides in order, each ``None`` for the remote value or ``(value,)``.
    ``op`` is the comparison (None: the assert checks one value's truth), ``negated`` for ``assert not``.
    ``frames`` lead from the top of the tests to the assert (``[file, line, function, source]``).
    """

    segment: str
    frames: tuple[tuple[str, int, str, str], ...]
    op: str | None
    negated: bool
    sides: tuple[tuple[Any] | None, ...]
    remote: tuple[str, int] | None
    message: str | None


@dataclass(frozen=True)
class TestPlan:
    """How a job's tests are judged: ``mode`` is "parent", "trusted_harness", or "error" (``error`` says why,
    ``error_part`` names the part that is wrong). ``program_names`` are the names the harness takes from the
    program; ``lines`` the lines of the tests, for reports; ``program_must_define`` the builtin names the parent
    mode takes as functions under test (see :meth:`for_program`)."""

    __test__ = False  # not a pytest test class

    mode: str
    tests: tuple[ParentTest, ...] = ()
    prelude: tuple[tuple[str, int], ...] = ()
    program_names: tuple[str, ...] = ()
    error: str = ""
    error_part: str = ""
    lines: tuple[str, ...] = ()
    program_must_define: frozenset[str] = frozenset()

    def for_program(self, program: str) -> TestPlan:
        """This plan, or the trusted harness's if the parent mode needs the program to define a function with
        the name of a builtin (``sum``) and it does not."""
        if self.mode != "parent" or not self.program_must_define or \
                self.program_must_define <= _top_level_definitions(program, self.program_must_define):
            return self
        return TestPlan("trusted_harness", program_names=self.program_names, lines=self.lines)


class _Harness(Exception):
    """The tests need the trusted harness (the message says why)."""


class _NotData(Exception):
    """An expression is not data the caller can evaluate."""


def _parse(part: str, source: str) -> ast.Module | str:
    try:
        return ast.parse(source, f"<{part}>")
    except SyntaxError as exc:
        text = (exc.text or "").strip()
        return f"{PARSE_FAILURES[part]}: SyntaxError: {exc.msg} (line {exc.lineno}{': ' + text if text else ''})"
    except (ValueError, MemoryError, RecursionError) as exc:  # null bytes, too deeply nested
        return f"{PARSE_FAILURES[part]}: {type(exc).__name__}: {exc}"


@lru_cache(maxsize=2048)
def plan_tests(tests: str, setup: str = "") -> TestPlan:
    """Parse the tests (and check the setup code parses) and choose how they are judged."""
    setup_tree = _parse("setup", setup)
    if isinstance(setup_tree, str):
        return TestPlan("error", error=setup_tree, error_part="setup")
    tree = _parse("tests", tests)
    if isinstance(tree, str):
        return TestPlan("error", error=tree, error_part="tests")
    lines = tuple(_LINE_BREAKS.split(tests))  # as the tokenizer counts lines (str.splitlines also splits at \f)
    program_names = _program_names(tree)
    try:
        return _Planner(tests, lines, _names(setup_tree)[1], program_names).plan(tree)
    except _Harness:
        return TestPlan("trusted_harness", program_names=program_names, lines=lines)
    except RecursionError:
        return TestPlan("error", error="the tests are nested too deeply to judge", error_part="tests")


def _names(tree: ast.AST) -> tuple[set[str], set[str]]:
    """(names loaded, names bound) anywhere in ``tree``, in one walk."""
    loaded, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).partition(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return loaded, bound


def _program_names(tree: ast.Module) -> tuple[str, ...]:
    """Names the tests use without defining them: the trusted harness takes these from the program.

    Builtins keep their builtin meaning (a program that redefines ``abs`` does not change the tests' ``abs``),
    except a name passed at top level to a test function (``check(sum)``): that is the function under test.
    """
    loaded, bound = _names(tree)
    under_test = {arg.id for stmt in tree.body if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
                  for arg in stmt.value.args if isinstance(arg, ast.Name)}
    return tuple(sorted(n for n in loaded - bound if n in under_test or not hasattr(builtins, n)))


class _Rename(ast.NodeTransformer):
    def __init__(self, old: str, new: str):
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.copy_location(ast.Name(id=self.new, ctx=node.ctx), node) if node.id == self.old else node


class _Planner:
    """Walks the tests in order; raises :class:`_Harness` at the first thing the parent mode cannot judge."""

    def __init__(self, source: str, lines: tuple[str, ...], setup_names: set[str], program_names: tuple[str, ...]):
        self.source, self.lines, self.setup_names, self.program_names = source, lines, setup_names, program_names
        self.program_must_define: set[str] = set()
        self.env: dict[str, tuple[Any]] = {}  # names the tests bound to data: name -> (value,)
        self.imported: set[str] = set()  # names bound by the tests' imports (the program process runs these)
        self.approx: set[str] = set()  # names bound to pytest.approx, and to pytest
        self.pytest: set[str] = set()
        self.checks: dict[str, ast.FunctionDef] = {}
        self.tests: list[ParentTest] = []
        self.prelude: list[tuple[str, int]] = []

    def line(self, lineno: int) -> str:
        return self.lines[lineno - 1].strip() if 0 < lineno <= len(self.lines) else ""

    def plan(self, tree: ast.Module) -> TestPlan:
        for stmt in tree.body:
            if isinstance(stmt, ast.FunctionDef):
                self.add_check(stmt)
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                self.call_check(stmt)
            else:
                self.statement(stmt, frames=(), rename=None)
        return TestPlan("parent", tests=tuple(self.tests), prelude=tuple(self.prelude), lines=self.lines,
                        program_names=self.program_names, program_must_define=frozenset(self.program_must_define))

    def add_check(self, node: ast.FunctionDef) -> None:
        args = node.args
        if (node.decorator_list or node.returns or len(args.args) != 1 or args.posonlyargs or args.kwonlyargs
                or args.vararg or args.kwarg or args.defaults):
            raise _Harness(f"test function {node.name}")
        self.checks[node.name] = node

    def call_check(self, stmt: ast.Expr) -> None:
        call = stmt.value
        if not (isinstance(call.func, ast.Name) and call.func.id in self.checks and len(call.args) == 1
                and isinstance(call.args[0], ast.Name) and not call.keywords):
            raise _Harness("a call other than check(function)")
        check = self.checks[call.func.id]
        frames = (("<tests>", stmt.lineno, "<module>", self.line(stmt.lineno)),)
        rename = (check.args.args[0].arg, call.args[0].id)
        for inner in check.body:
            self.statement(inner, frames=frames, rename=rename, function=check.name)

    def statement(self, stmt: ast.stmt, *, frames: tuple, rename: tuple[str, str] | None,
                  function: str = "<module>") -> None:
        if isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
            return
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            self.add_import(stmt)
        elif isinstance(stmt, ast.Assign) and not frames and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name = stmt.targets[0].id
            try:
                self.env[name] = (self.data(stmt.value),)
            except _NotData:
                raise _Harness("an assignment of something other than data") from None
            self.imported.discard(name)
            self.approx.discard(name)
            self.pytest.discard(name)
        elif isinstance(stmt, ast.Assert):
            self.add_assert(stmt, frames + (("<tests>", stmt.lineno, function, self.line(stmt.lineno)),), rename)
        else:
            raise _Harness(f"a {type(stmt).__name__} statement")

    def segment(self, node: ast.AST) -> str:
        """The source text of ``node`` (as ``ast.get_source_segment``, without splitting the source again)."""
        first, last = node.lineno - 1, node.end_lineno - 1
        if not (0 <= first <= last < len(self.lines)):
            return ast.unparse(node)
        text = [line.encode() for line in self.lines[first:last + 1]]  # column offsets count UTF-8 bytes
        text[-1] = text[-1][: node.end_col_offset]
        text[0] = text[0][node.col_offset:]
        return b"\n".join(text).decode(errors="replace")

    def add_import(self, stmt: ast.Import | ast.ImportFrom) -> None:
        for alias in stmt.names:
            bound = alias.asname or alias.name.partition(".")[0]
            self.env.pop(bound, None)
            self.imported.add(bound)
            self.approx.discard(bound)
            self.pytest.discard(bound)
            if isinstance(stmt, ast.Import) and alias.name == "pytest":
                self.pytest.add(bound)
            elif isinstance(stmt, ast.ImportFrom) and stmt.module == "pytest" and stmt.level == 0 \
                    and alias.name == "approx":
                self.approx.add(bound)
        self.prelude.append((ast.unparse(stmt), stmt.lineno))

    def add_assert(self, node: ast.Assert, frames: tuple, rename: tuple[str, str] | None) -> None:
        message = None
        if node.msg is not None:
            try:
                message = str(ast.literal_eval(node.msg))
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                raise _Harness("an assert message that is not a literal") from None
        test, negated = node.test, False
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            test, negated = test.operand, True
        if isinstance(test, ast.Compare):
            if len(test.ops) != 1:
                raise _Harness("a chained comparison")
            op = COMPARE_OPS[type(test.ops[0])][0]
            operands = [test.left, test.comparators[0]]
        else:
            op, operands = None, [test]
        sides: list[tuple[Any] | None] = []
        remote = None
        for operand in operands:
            try:
                sides.append((self.data(operand),))
            except _NotData:
                if remote is not None:
                    raise _Harness("both sides of a comparison need evaluating") from None
                remote = self.remote_expression(operand, rename)
                sides.append(None)
        segment = " ".join(self.segment(node).split())
        self.tests.append(ParentTest(segment, frames, op, negated, tuple(sides), remote, message))

    def remote_expression(self, node: ast.expr, rename: tuple[str, str] | None) -> tuple[str, int]:
        """The source and line of an expression for the program process to evaluate: a call to the function
        under test (any arguments: they are its inputs), possibly inside one-argument wrappers (``int(f(x))``).

        Anything else could carry part of the expected value into the program process, with a function the
        program can replace: ``abs(f(x) - 0.3)``, ``math.isclose(f(x), 0.3)``, ``round(f(x), 2)``. The trusted
        harness runs those tests.
        """
        if rename is not None:
            node = _Rename(*rename).visit(copy.deepcopy(node))
        self.call_under_test(node, rename[1] if rename else None)
        if self.env and _names(node)[0] & self.env.keys():
            raise _Harness("an expression using a name the tests define")  # the program process does not have it
        return (ast.unparse(node) if rename is not None else self.segment(node)), node.lineno

    def call_under_test(self, node: ast.expr, candidate: str | None) -> None:
        """Check that ``node`` calls the function under test, inside one-argument wrappers at most."""
        while isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            wrapper = len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Call)
            bound_elsewhere = name is None or name in self.env or name in self.imported or name in self.checks \
                or name in self.setup_names
            if name is not None and name == candidate:
                return
            if not bound_elsewhere and not hasattr(builtins, name):
                return  # a function of the program (or not defined at all: then it fails as in Python)
            if wrapper:
                node = node.args[0]
                continue
            calls_inside = any(isinstance(n, ast.Call) for arg in (*node.args, *(k.value for k in node.keywords))
                               for n in ast.walk(arg))
            if not bound_elsewhere and not calls_inside:
                # MBPP's `sum(10, 15)`: the program's own `sum`, if it defines one. Not `abs(f(x) - 0.3)`,
                # `round(f(x), 2)`: those apply the builtin to the value under test.
                self.program_must_define.add(name)
                return
            break
        raise _Harness("an expression that is not a call to the function under test")

    def data(self, node: ast.expr) -> Any:
        """The value of ``node`` if it is data the caller can evaluate without running any test code."""
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            pass
        if isinstance(node, ast.Name) and node.id in self.env:
            return self.env[node.id][0]
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and not any(isinstance(e, ast.Starred) for e in node.elts):
            items = [self.data(e) for e in node.elts]
            try:
                return {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)](items)
            except TypeError:  # an unhashable set member
                raise _NotData from None
        if isinstance(node, ast.Dict) and None not in node.keys:
            try:
                return {self.data(k): self.data(v) for k, v in zip(node.keys, node.values)}
            except TypeError:
                raise _NotData from None
        if not isinstance(node, ast.Call) or any(isinstance(a, ast.Starred) for a in node.args) \
                or any(k.arg is None for k in node.keywords):
            raise _NotData
        function = self.parent_function(node.func)
        args = [self.data(a) for a in node.args]
        kwargs = {k.arg: self.data(k.value) for k in node.keywords}
        try:
            return function(*args, **kwargs)
        except Exception:  # noqa: BLE001 - e.g. float("x"): not data here; the harness will run it as written
            raise _NotData from None

    def parent_function(self, node: ast.expr) -> Callable:
        if isinstance(node, ast.Name):
            if node.id in self.approx:
                return _approx()
            if node.id not in self.env and node.id not in self.imported and node.id in _PARENT_BUILTINS:
                return _PARENT_BUILTINS[node.id]
        elif (isinstance(node, ast.Attribute) and node.attr == "approx" and isinstance(node.value, ast.Name)
              and node.value.id in self.pytest):
            return _approx()
        raise _NotData


def _top_level_definitions(program: str, names: frozenset[str]) -> set[str]:
    """Which of ``names`` the program defines at top level (``def`` or ``class`` at the start of a line)."""
    pattern = r"^(?:async[ \t]+def|def|class)[ \t]+(" + "|".join(map(re.escape, sorted(names))) + r")\b"
    return set(re.findall(pattern, program, flags=re.MULTILINE))


def _approx() -> Callable:
    try:
        from pytest import approx
    except ImportError:  # pytest is a test dependency; without it the harness runs these tests
        raise _NotData from None
    return approx


# ------------------------------------------------------------------------------------------------
# Judging
# ------------------------------------------------------------------------------------------------


def parse_records(data: bytes) -> list[dict | None]:
    """The records on a value channel, one JSON object per line; a line that is not one ends the list as None."""
    records: list[dict | None] = []
    for line in data.split(b"\n")[:-1]:  # an unterminated last line was cut off: not a record
        try:
            record = json.loads(line) if len(line) <= MAX_RECORD_CHARS else None
        except (ValueError, RecursionError):
            record = None
        if type(record) is not dict or type(record.get("kind")) is not str:
            records.append(None)
            break
        records.append(record)
    return records


def termination(process: dict, limits: dict, *, records_complete: bool) -> dict | None:
    """How a process ended, as a report (status, limit, message, exception); None for a normal end.

    ``process`` holds what the server saw (``timed_out``, ``signal``, ``exit_code``, ``cpu_s``).
    """
    signal_name = process.get("signal")
    if process.get("timed_out"):
        return {"status": "timeout", "limit": "wall_clock",
                "message": f"wall-clock timeout of {limits['timeout_s']:g} s exceeded"}
    if signal_name == "SIGXCPU" or (signal_name == "SIGKILL" and process.get("cpu_s", 0) >= limits["cpu_time_s"]):
        # As pid 1 the program ignores SIGXCPU; the kernel's SIGKILL at the hard limit ends it instead.
        return {"status": "resource_limit", "limit": "cpu_time", "exception": signal_name,
                "message": f"CPU-time limit of {limits['cpu_time_s']} s exceeded"}
    if signal_name == "SIGXFSZ":
        return {"status": "resource_limit", "limit": "output", "exception": "SIGXFSZ",
                "message": OUTPUT_LIMIT.format(**limits)}
    if signal_name:
        return {"status": "crashed", "message": f"killed by signal {signal_name}", "exception": signal_name}
    code = process.get("exit_code")
    if not records_complete:
        return {"status": "crashed", "message": f"the program exited with code {code} before the tests finished"}
    if code != 0:
        return {"status": "crashed", "message": f"the program exited with code {code}"}
    return None


def _limit_report(report: dict, limit: Any, limits: dict) -> dict:
    texts = {"memory": f"memory limit of {limits['memory_mb']} MB exceeded (MemoryError)",
             "output": OUTPUT_LIMIT.format(**limits),
             "processes": f"process/thread limit of {limits['max_processes']} reached"}
    if limit in texts:
        report.update(status="resource_limit", limit=limit, message=f"{texts[limit]}\n{report['message']}")
    return report


def _raised(record: dict, limits: dict, frames: list[list]) -> dict:
    return _limit_report(failure_report(str(record.get("exception", "an exception"))[:2000], frames),
                         record.get("limit"), limits)


def _test_frames(test: ParentTest, child_frames: list[list], lines: tuple[str, ...]) -> list[list]:
    """The traceback of a test whose expression raised in the program process: the test's own frames down
    to the assert (at the line the program process reports), then the program's frames, with the source
    of test lines taken from this process's copy of the tests."""
    frames = [list(f) for f in test.frames]
    rest = child_frames
    if child_frames and child_frames[0][0] == "<tests>":
        frames[-1][1] = child_frames[0][1]
        frames[-1][3] = _line(lines, child_frames[0][1])
        rest = child_frames[1:]
    return frames + [[f[0], f[1], f[2], _line(lines, f[1]) if f[0] == "<tests>" else f[3]] for f in rest]


def _line(lines: tuple[str, ...], lineno: int) -> str:
    return lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""


def _judge_test(test: ParentTest, record: dict | None, lines: tuple[str, ...], limits: dict) -> dict | str | None:
    """None if the test passed, else its failure report; "stop" if the record is missing or broken."""
    frames = [list(f) for f in test.frames]
    values = []
    for side in test.sides:
        if side is not None:
            values.append(side[0])
            continue
        kind = record.get("kind") if record else None
        if kind == "value":
            try:
                values.append(from_tree(record.get("value")))
            except ValueError as exc:
                return failure_report(f"ValueError: the program's value cannot be judged ({exc})", frames)
        elif kind == "raised":
            child_frames = valid_frames(record.get("frames"))
            if child_frames is None:
                return "stop"
            return _raised(record, limits, _test_frames(test, child_frames, lines))
        elif kind == "not_plain":
            return failure_report(f"TypeError: {NotPlainData(str(record.get('type'))[:200])}", frames)
        elif kind == "too_large":
            return failure_report(f"ValueError: {str(record.get('detail'))[:300]}", frames)
        elif kind == "exit":
            code = str(record.get("code"))[:200]
            return {"status": "crashed", "exception": f"SystemExit: {code}",
                    "message": f"the program called sys.exit({code}) before the tests finished"}
        else:
            return "stop"
    assertion = "AssertionError" if test.message is None else describe(AssertionError(test.message))
    try:
        if test.op is None:
            holds = bool(values[0])
        else:
            holds = bool(_OPS_BY_NAME[test.op](values[0], values[1]))
    except Exception as exc:  # noqa: BLE001 - e.g. '<' between str and int, as in plain Python
        return failure_report(describe(exc), frames)
    if holds != test.negated:
        return None
    if test.op is not None and not test.negated:
        # Which side is the value under test: the one the program computed (the left one if neither).
        actual, expected = (values[1], values[0]) if test.sides[1] is None else (values[0], values[1])
        return failure_report(assertion, frames, comparison=(test.segment, safe_repr(actual), safe_repr(expected)))
    return failure_report(assertion, frames, assertion=True)


def judge_parent(plan: TestPlan, records: list[dict | None], process: dict, limits: dict) -> dict:
    """The verdict of a parent-mode job from the program process's records and how the process ended.

    Every test is judged (not only up to the first failure), so ``tests_passed`` counts them all; the
    status and message are those of the first test that did not pass, as when the tests run as a script.
    """
    total = len(plan.tests)
    first = records[0] if records else None
    kind = first.get("kind") if first else None
    if kind != "ready":
        if kind == "syntax":
            part = first.get("part") if first.get("part") in PARSE_FAILURES else "program"
            exception, text = str(first.get("exception"))[:500], str(first.get("text"))[:500]
            line = first.get("line") if type(first.get("line")) is int else None
            report = {"status": "failed", "part": part, "line": line, "line_source": text, "exception": exception,
                      "message": f"{PARSE_FAILURES[part]}: {exception} (line {line}{': ' + text if text else ''})"}
        elif kind == "raised" and valid_frames(first.get("frames")) is not None:
            frames = [[f[0], f[1], f[2], _line(plan.lines, f[1]) if f[0] == "<tests>" else f[3]]
                      for f in valid_frames(first["frames"])]
            report = _raised(first, limits, frames)
        elif kind == "exit":
            code = str(first.get("code"))[:200]
            report = {"status": "crashed", "exception": f"SystemExit: {code}",
                      "message": f"the program called sys.exit({code}) before the tests finished"}
        elif not records:
            report = termination(process, limits, records_complete=False)
        else:
            report = _broken_channel()
        return {**report, "tests_passed": 0, "tests_total": total}
    values = records[1:]
    passed, failure, end = 0, None, None  # end: why no later test has a value (the process stopped, or lied)
    for test in plan.tests:
        if end is None and test.remote is not None:
            if values and values[0] is not None:
                outcome = _judge_test(test, values.pop(0), plan.lines, limits)
                if outcome == "stop":
                    end = _broken_channel()
                elif outcome is not None and outcome["status"] == "crashed":
                    end = outcome  # sys.exit: the program process is gone
            else:
                end = _broken_channel() if values else termination(process, limits, records_complete=False)
        elif end is None:
            outcome = _judge_test(test, None, plan.lines, limits)
        outcome = end or outcome
        if outcome is None:
            passed += 1
        elif failure is None:
            failure = outcome
    if failure is None:
        failure = termination(process, limits, records_complete=True)
    report = failure or {"status": "passed", "message": ""}
    return {**report, "tests_passed": passed, "tests_total": total}


def _broken_channel() -> dict:
    return {"status": "crashed",
            "message": "the program process wrote something other than the sandbox's records on its value channel"}


_REPORT_FIELDS = {"message": str, "failed_test": str, "actual": str, "expected": str, "exception": str,
                  "part": str, "line": int, "line_source": str, "limit": str}


def judge_harness(records: list[dict | None], harness: dict, program: dict, limits: dict) -> dict:
    """The verdict of a harness-mode job from the harness's report and how both processes ended.

    The whole test source counts as one test (``tests_total`` 1): the harness runs it as written.
    """
    report = records[0] if records and records[0] and records[0]["kind"] == "verdict" else None
    if harness.get("timed_out"):
        report = termination(harness, limits, records_complete=False)
    elif report is None:
        cpu = termination(harness, limits, records_complete=False)
        report = cpu if cpu["status"] == "resource_limit" else {
            "status": "error", "message": f"the trusted test harness ended without a verdict ({cpu['message']})"}
    elif report.get("status") == "program_record":  # the program failed before any test ran
        record = report.get("record")
        report = judge_parent(TestPlan("parent"), [record if type(record) is dict else None], program, limits)
    elif report.get("status") == "program_ended":
        end = termination(program, limits, records_complete=False)
        report = {**{k: v for k, v in report.items() if k == "failed_test"}, **end}
    status = report.get("status")
    if status not in ("passed", "failed", "timeout", "crashed", "resource_limit", "error"):
        report = {"status": "error", "message": f"the trusted test harness gave an unknown status {status!r:.40}"}
    clean = {k: v for k, v in report.items() if k in _REPORT_FIELDS and type(v) is _REPORT_FIELDS[k]}
    clean = _limit_report({"status": report["status"], "message": "", **clean}, clean.get("limit"), limits) \
        if report["status"] == "failed" else {"status": report["status"], "message": "", **clean}
    return {**clean, "tests_passed": int(clean["status"] == "passed"), "tests_total": 1}
