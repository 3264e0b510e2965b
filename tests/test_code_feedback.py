"""Feedback from execution (real sandbox runs turned into sentences) and from human annotations."""

from __future__ import annotations

import dataclasses
import json

import pytest

from language_feedback.code_data import CodeFeedbackRecord, CodeProblem
from language_feedback.code_feedback import Draft, ExecutionFeedback, HumanFeedback, feedback_from_execution
from language_feedback.sandbox import ExecResult, SandboxLimits, run_programs

PROBLEM = CodeProblem(
    task_id="1", text="Add two numbers.", reference_code="def add(a, b):\n    return a + b\n", test_setup_code="",
    tests=["assert add(1, 2) == 3", "assert add(2, 2) == 4"], entry_point="add",
    prompt='"""\nAdd two numbers.\n\n>>> Example: add(1, 2) = 3\n"""\n\ndef add(a, b):\n',
)
TESTS = "\n".join(PROBLEM.tests)


@pytest.fixture(scope="module")
def results():
    programs = {
        "passed": "def add(a, b):\n    return a + b\n",
        "wrong_value": "def add(a, b):\n    return a * b\n",
        "exception": "def add(a, b):\n    total = a + b\n    return total / 0\n",
        "syntax": "def add(a, b)\n    return a + b\n",
        "missing_function": "def plus(a, b):\n    return a + b\n",
        "loop": "def add(a, b):\n    while True:\n        pass\n",
        "memory": "def add(a, b):\n    return bytearray(4 * 1024**3)\n",
        "exit": "import sys\nsys.exit(2)\n",
        "error_at_import": "import no_such_module_here\n",
    }
    loop = programs.pop("loop")
    outs = run_programs([(p, TESTS) for p in programs.values()], limits=SandboxLimits(memory_mb=256), progress=False)
    looped = run_programs([(loop, TESTS)], limits=SandboxLimits(timeout_s=1), progress=False)
    return dict(zip(programs, outs)) | {"loop": looped[0]}


def test_passed(results):
    assert feedback_from_execution(results["passed"], PROBLEM) == "The program passes all the tests."


def test_wrong_value_names_the_test_actual_and_expected(results):
    text = feedback_from_execution(results["wrong_value"], PROBLEM)
    assert text == "The test `assert add(1, 2) == 3` failed: the code returned 2 but 3 was expected."


def test_exception_names_type_line_and_source(results):
    text = feedback_from_execution(results["exception"], PROBLEM)
    assert "ZeroDivisionError: division by zero" in text
    assert "line 3 of the program (`return total / 0`)" in text and "`assert add(1, 2) == 3`" in text


def test_code_that_does_not_parse(results):
    text = feedback_from_execution(results["syntax"], PROBLEM)
    assert text.startswith("The program does not parse: SyntaxError") and "line 1" in text


def test_missing_entry_point_is_named_when_the_problem_is_given(results):
    assert feedback_from_execution(results["missing_function"], PROBLEM) == (
        "The program does not define the function `add` that the tests call."
    )
    assert "NameError" in feedback_from_execution(results["missing_function"])


def test_limits_and_crashes(results):
    assert "did not finish in time" in feedback_from_execution(results["loop"], PROBLEM)
    assert "memory limit of 256 MB" in feedback_from_execution(results["memory"], PROBLEM)
    assert "sys.exit(2)" in feedback_from_execution(results["exit"], PROBLEM)
    text = feedback_from_execution(results["error_at_import"], PROBLEM)
    assert "ModuleNotFoundError" in text and "before any test ran" in text


def test_execution_feedback_batch(results):
    provider = ExecutionFeedback()
    texts = provider([Draft(PROBLEM, "", results["passed"]), Draft(PROBLEM, "", results["wrong_value"])])
    assert texts[0].startswith("The program passes") and "returned 2" in texts[1]


def record(task_id: str, program: str, feedback: str) -> CodeFeedbackRecord:
    return CodeFeedbackRecord(task_id=task_id, prompt="def f():\n", original_program=program, feedback=feedback,
                              refinement="def f():\n    return 1\n", test="def check(candidate):\n    pass\n",
                              entry_point="f")


def draft(task_id: str, program: str = "") -> Draft:
    return Draft(dataclasses.replace(PROBLEM, task_id=task_id), program, ExecResult("failed", "", "", "", 0.0))


def test_human_feedback_lookup_and_missing_items():
    human = HumanFeedback([record("1", "def f():\n    return 0\n", " Return one. "),
                           record("1", "def f():\n    return 2\n", "Return one, not two."),
                           record("2", "x", "")])
    assert "1" in human and 1 in human and "3" not in human
    assert human.feedback_for(1) == "Return one."
    texts = human([draft("1"), draft("1", "def f():\n    return 2\n"), draft("3"), draft("2")])
    # the annotation written on that exact program wins; unknown task and empty feedback: "" each, the batch goes on
    assert texts == ["Return one.", "Return one, not two.", "", ""] and human.missing == ["3", "2"]


def test_human_feedback_from_file(tmp_path):
    row = {"task_id": 9, "prompt": "def f():\n", "original_model_completion": "def f():\n    return 0\n",
           "Feedback": "Return one.", "completion": "\n    return 1\n",
           "test": "def check(candidate):\n    assert candidate() == 1\n"}
    path = tmp_path / "fb.jsonl"
    path.write_text(json.dumps(row) + "\n")
    assert HumanFeedback.from_file(path)([draft("9")]) == ["Return one."]


def test_a_program_the_sandbox_could_not_judge_gets_no_feedback():
    result = run_programs([("def add(a, b):\n    return a + b\n", "assert add(1, 2) ==")], progress=False)[0]
    assert result.status == "error" and "the tests do not parse" in result.message
    assert feedback_from_execution(result, PROBLEM) == "" and feedback_from_execution(result) == ""
