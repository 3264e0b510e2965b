"""How the sandbox judges: which tests the caller judges itself, per-test counts, what the trusted harness
reports, and the strict value format (real sandbox runs, plus the pure planning and format functions)."""

from __future__ import annotations

import collections

import pytest

from language_feedback._sandbox_judge import plan_tests
from language_feedback._sandbox_shared import MAX_DEPTH, NotPlainData, ValueTooLarge, from_tree, to_tree
from language_feedback.sandbox import SandboxJob, SandboxLimits, run_program, run_programs

LIMITS = SandboxLimits(timeout_s=20, memory_mb=256)


@pytest.mark.parametrize(
    ("tests", "mode"),
    [
        ("assert f(1) == 2\nassert f(2)==(3, [4])\n", "parent"),
        ("assert set(f(1)) == {1, frozenset({2})}\nassert not f(0)\nassert f(3)\nassert 3 in f(3)\n", "parent"),
        ("import math\nassert f(math.pi) == 2.0, 'message'\n", "parent"),  # imports go to the program process
        ("from pytest import approx\n\ndef check(candidate):\n    assert candidate(1) == approx(0.3)\n\ncheck(f)\n",
         "parent"),
        ("METADATA = {'author': 'x'}\nEXPECTED = [1, 2]\nassert f(0) == EXPECTED\n", "parent"),
        ("for x in range(3):\n    assert f(x) == x\n", "trusted_harness"),
        ("assert int(f(1)) == 2\nassert tuple(f(range(3))) == (1,)\nassert f(x=[1, 2 * 3]) == 7\n", "parent"),
        ("assert abs(f(1) - 0.3) < 1e-6\n", "trusted_harness"),  # 0.3 is part of the expected value
        ("import math\nassert math.isclose(f(1), 0.3)\n", "trusted_harness"),
        ("assert round(f(1), 2) == 0.3\n", "trusted_harness"),
        ("assert f(1)[0] == 0.3\n", "trusted_harness"),
        ("assert f([Pair(1, 2), Pair(3, 4)], 2) == 1\nassert f(g(3)) == 2\n", "parent"),  # f's inputs
        ("from math import isclose\nassert isclose(f(1), 0.3)\n", "trusted_harness"),  # bound by the tests
        ("assert f(1) == g(1)\n", "trusted_harness"),
        ("import math\nassert f(1) == math.sqrt(2)\n", "trusted_harness"),
        ("X = [1]\nassert f(X) == 1\n", "trusted_harness"),  # the program process does not have X
        ("assert 0 < f(1) < 2\n", "trusted_harness"),
        ("assert f(1) ==\n", "error"),
    ],
)
def test_which_tests_the_caller_judges(tests, mode):
    assert plan_tests(tests).mode == mode


def test_which_function_is_under_test():
    """The program process may evaluate a call to the program's function, not to one the tests or the setup
    code provide (the program could replace it, and its arguments may hold the expected value)."""
    assert plan_tests("assert close(f(1), 0.3)\n", "def close(a, b):\n    return abs(a - b) < 1e-6\n").mode == \
        "trusted_harness"
    plan = plan_tests("assert sum(10, 15) == 6\n")  # MBPP 126: the function under test is called `sum`
    assert plan.mode == "parent" and plan.program_must_define == {"sum"}
    assert plan.for_program("def sum(a, b):\n    return 6\n").mode == "parent"
    assert plan.for_program("x = 1  # def sum(a, b)\ndef summary():\n    pass\n").mode == "trusted_harness"
    assert plan_tests("assert abs(f(1) - 0.3) < 1e-6\n").for_program("def abs(x):\n    return 0\n").mode == \
        "trusted_harness"  # a program's `abs` does not make a tolerance a call under test
    ran = run_programs([SandboxJob("def sum(a, b):\n    return a + b - 19\n", "assert sum(10, 15) == 6\n"),
                        SandboxJob("pass\n", "assert sum(10, 15) == 6\n")], limits=LIMITS, progress=False)
    assert [(r.status, r.judged_by) for r in ran] == [("passed", "parent"), ("failed", "trusted_harness")]
    assert ran[1].exception.startswith("TypeError")  # the builtin sum, as in plain Python


def test_the_program_process_gets_no_expected_value():
    plan = plan_tests("from pytest import approx\nassert f(1, [2]) == 'zebra-7781'\nassert f(2) == approx(9.25)\n")
    sent = repr((plan.prelude, [t.remote for t in plan.tests]))
    assert "f(1, [2])" in sent and "f(2)" in sent
    assert "zebra" not in sent and "9.25" not in sent


def test_the_harness_takes_only_the_tests_free_names_from_the_program():
    plan = plan_tests("def check(candidate):\n    for x in range(2):\n        assert abs(candidate(x) - helper(x)) < 1\n\n"
                      "check(sum)\n")
    assert plan.program_names == ("helper", "sum")  # `abs` stays the builtin; `sum` is the function under test


def test_every_test_is_counted_and_the_first_failure_reported():
    tests = "assert f(1) == 1\nassert f(2) == 5\nassert f(0) == 0\nassert f(3) == 3\n"
    result = run_program("def f(x):\n    return float(x)\n", tests, limits=LIMITS)
    assert (result.status, result.judged_by, result.tests_passed, result.tests_total) == ("failed", "parent", 3, 4)
    assert result.failed_test == "assert f(2) == 5" and (result.actual, result.expected) == ("2.0", "5")
    raised = run_program("def f(x):\n    return 10 // x\n", "assert f(0) == 1\nassert f(5) == 2\n", limits=LIMITS)
    assert raised.exception == "ZeroDivisionError: integer division or modulo by zero"
    assert (raised.part, raised.line, raised.failed_test) == ("program", 2, "assert f(0) == 1")
    assert (raised.tests_passed, raised.tests_total) == (1, 2)  # the second test still ran


def test_asserts_are_cut_from_the_tests_where_python_sees_them():
    tests = 'assert f("a\x0cb\u2028c") == 5\r\nassert f(\n    "x"\n) == 1\nassert f("yz") == 3\n'
    result = run_program("def f(s):\n    return len(s)\n", tests, limits=LIMITS)
    assert (result.judged_by, result.tests_passed, result.tests_total) == ("parent", 2, 3)
    assert (result.failed_test, result.line, result.actual) == ('assert f("yz") == 3', 5, "2")


def test_values_compare_as_plain_python_values():
    program = ("import collections\ndef f(x):\n    return {'float': 4.0, 'counter': collections.Counter('aab'),\n"
               "            'default': collections.defaultdict(list, {1: [2]}), 'set': {(1, 2)}, 'bytes': b'\\x00',\n"
               "            'complex': 1j, 'nan': float('nan')}[x]\n")
    tests = ("assert f('float') == 4\nassert f('counter') == {'a': 2, 'b': 1}\nassert f('default') == {1: [2]}\n"
             "assert f('set') == {(1, 2)}\nassert f('bytes') == b'\\x00'\nassert f('complex') == 1j\n"
             "assert f('nan') != float('nan')\nassert f('float') is not None\n")
    result = run_program(program, tests, limits=LIMITS)
    assert result.passed, result.message
    assert result.tests_passed == result.tests_total == 8


def test_harness_reports_a_failing_assert_and_the_programs_exception():
    tests = "def check(candidate):\n    for x in [1, 2]:\n        assert candidate(x) == x * 10\n\ncheck(f)\n"
    wrong = run_program("def f(x):\n    return x * 3\n", tests, limits=LIMITS)
    assert (wrong.status, wrong.judged_by, wrong.tests_passed, wrong.tests_total) == ("failed", "trusted_harness", 0, 1)
    assert (wrong.failed_test, wrong.actual, wrong.expected) == ("assert candidate(x) == x * 10", "3", "10")
    raising = run_program("def f(x):\n    y = x\n    return y / 0\n", tests, limits=LIMITS)
    assert raising.exception == "ZeroDivisionError: division by zero"
    assert (raising.part, raising.line, raising.line_source) == ("program", 3, "return y / 0")
    assert raising.failed_test == "assert candidate(x) == x * 10"


def test_harness_tests_see_the_programs_exceptions_and_data():
    tests = ("def check(candidate):\n    for bad in [-1, -2]:\n        try:\n            candidate(bad)\n"
             "        except ValueError as e:\n            assert 'negative' in str(e)\n        else:\n"
             "            assert False\n    assert candidate(4) == LIMIT - 6\n\ncheck(f)\n")
    program = "LIMIT = 10\ndef f(x):\n    if x < 0:\n        raise ValueError('negative input')\n    return x\n"
    assert run_program(program, tests, limits=LIMITS).passed


def test_harness_reports_what_it_cannot_send_as_an_error():
    result = run_program("def f(g):\n    return g(1)\n", "for _ in [0]:\n    assert f(lambda x: x) == 1\n",
                         limits=LIMITS)
    assert result.status == "error" and "cannot be sent to the program" in result.message


def test_a_batch_mixes_modes_and_statuses():
    jobs = [SandboxJob("def f(x):\n    return x\n", "assert f(1) == 1"),
            SandboxJob("def f(x):\n    return x\n", "for x in [1]:\n    assert f(x) == x"),
            SandboxJob("def f(x):\n    return x\n", "assert f(1) =="),
            SandboxJob("def f(x)\n", "assert f(1) == 1"),
            SandboxJob("import os\nos._exit(3)\n", "for x in [1]:\n    assert f(x) == x")]
    results = run_programs(jobs, limits=LIMITS, progress=False)
    assert [(r.status, r.judged_by) for r in results] == [
        ("passed", "parent"), ("passed", "trusted_harness"), ("error", ""), ("failed", "parent"),
        ("crashed", "trusted_harness")]
    assert "exited with code 3" in results[4].message


# ------------------------------------------------------------------------------------------------
# The value format
# ------------------------------------------------------------------------------------------------


def test_plain_values_round_trip_exactly():
    values = [None, True, 0, -(2**100), 1.5, float("inf"), -0.0, 2 + 3j, "é\n", b"\x00\xff", [1, [2]], (1, (2,)),
              {1: "a", (2, 3): [4]}, {1, (2, 3)}, frozenset({1}), collections.Counter("aab"),
              collections.OrderedDict([("b", 1), ("a", 2)]), collections.defaultdict(set, {1: {2}})]
    for value in values:
        rebuilt = from_tree(to_tree(value))
        assert rebuilt == value and type(rebuilt) is type(value) and repr(rebuilt) == repr(value)


def test_anything_else_is_refused():
    class Int(int):
        pass

    for value in (Int(3), object(), int, len, iter([]), range(3), bytearray(b"x"), [1, Int(2)], {Int(1): 1},
                  collections.defaultdict(lambda: 0)):
        with pytest.raises(NotPlainData):
            to_tree(value)
    nested: list = []
    for _ in range(MAX_DEPTH + 1):
        nested = [nested]
    for value in (nested, "x" * 2_000_000, [0] * 300_000, 10**20_000):
        with pytest.raises(ValueTooLarge):
            to_tree(value)


def test_what_is_accepted_can_be_sent_again():
    """The decoder charges what the encoder does: a tree a program forges (say, 45,000 floats) is refused, or
    the value it gives can be sent on (the tests may pass it back to the program); never accepted here and
    refused there, which would stop the trusted harness as if the tests were bad."""
    for item in (0.5, 7, 2**64, "ab", None, True, [], {"tuple": []}, {"bytes": "00ff"}, {"complex": [1, 2.5]},
                 {"dict": []}, {"defaultdict": ["list", []]}):
        for n in (10_000, 30_000, 45_000, 100_000, 250_000):
            try:
                value = from_tree([item] * n)
            except ValueTooLarge:
                continue
            to_tree(value)


@pytest.mark.parametrize("tree", [
    {"tuple": [1], "set": [2]}, {"object": []}, {"set": [[1]]}, {"dict": [[1]]}, {"dict": 5}, {"bytes": "zz"},
    {"complex": ["1", 2]}, {"defaultdict": ["os.system", []]}, {"Counter": [[[1], 1]]}, ("tuple",), {"tuple": 5},
])
def test_malformed_trees_are_refused(tree):
    with pytest.raises(ValueError):
        from_tree(tree)
