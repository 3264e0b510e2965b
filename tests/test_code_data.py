"""Loaders for MBPP, HumanEval and code-feedback annotations, on small fixture files written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from language_feedback.code_data import (
    CodeDataError,
    load_code_feedback,
    load_humaneval,
    load_mbpp,
    sandbox_job,
    signature_block,
)
from language_feedback.code_data import tests_for as runnable_tests  # "tests_for" would be collected by pytest
from language_feedback.prompts import mbpp_prompt
from language_feedback.sandbox import SandboxLimits, run_programs

MBPP_ROWS = [
    {
        "task_id": 12,
        "text": "Write a function to add two numbers.",
        "code": "import math\r\ndef helper(x):\r\n\treturn x\r\ndef add_nums(a, b): \r\n\treturn helper(a) + b",
        "test_setup_code": "",
        "test_list": ["assert add_nums(1, 2) == 3", "assert add_nums(0, 0)==0"],
        "challenge_test_list": [],
    },
    {
        "task_id": 3,
        "text": "Write a function to scale a value.",
        "code": "def scale(v,\n          k=2):\n    return v * k * FACTOR\n",
        "test_setup_code": "FACTOR = 1",
        "test_list": ["assert scale(2) == 4"],
        "challenge_test_list": [],
    },
    {
        "task_id": 7,
        "text": "Write a function returning one.",
        "code": "def one(): return 1",
        "test_setup_code": "",
        "test_list": ["assert one() == 1"],
    },
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def mbpp_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "mbpp.jsonl", MBPP_ROWS)


def test_load_mbpp_fields_sorted_and_entry_point(mbpp_file):
    problems = load_mbpp(mbpp_file)
    assert [p.task_id for p in problems] == ["3", "7", "12"]
    add = problems[2]
    assert add.entry_point == "add_nums"  # not the helper defined first
    assert add.reference_code == MBPP_ROWS[0]["code"]  # kept exactly as written (\r\n, tabs)
    assert add.tests == MBPP_ROWS[0]["test_list"]
    assert problems[0].test_setup_code == "FACTOR = 1"


def test_mbpp_prompt_is_the_paper_format(mbpp_file):
    add, = load_mbpp(mbpp_file, task_ids=[12])
    assert add.prompt == (
        '"""\nWrite a function to add two numbers.\n\n>>> Example: add_nums(1, 2) = 3\n"""\n\n'
        "import math\ndef helper(x):\n\treturn x\ndef add_nums(a, b):\n"
    )
    scale, one = load_mbpp(mbpp_file, task_ids=[7, 3])
    assert scale.prompt.endswith('"""\n\ndef scale(v,\n          k=2):\n')  # a signature over two lines
    assert one.prompt.endswith('>>> Example: one() = 1\n"""\n\ndef one():\n')  # a one-line def is cut at its body


def test_signature_block_and_prompt_helpers():
    assert signature_block("X = 1\ndef f(a):  \n    return a\n", "f") == "X = 1\ndef f(a):"
    assert mbpp_prompt("Task.", "assert f(1)==[1]", "def f(a):") == (
        '"""\nTask.\n\n>>> Example: f(1)=[1]\n"""\n\ndef f(a):\n'
    )


def test_load_mbpp_unknown_task_ids(mbpp_file):
    with pytest.raises(KeyError, match="no task.*99"):
        load_mbpp(mbpp_file, task_ids=[3, 99])


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ("{not json", r"line 2: invalid JSON"),
        ("[1, 2]", r"line 2: expected a JSON object"),
        ({**MBPP_ROWS[1], "task_id": 4, "text": ""}, r"line 2: field 'text' is empty"),
        ({k: v for k, v in MBPP_ROWS[1].items() if k != "code"}, r"line 2: missing field 'code'"),
        ({**MBPP_ROWS[1], "task_id": 4, "test_list": "assert f()"}, r"line 2: field 'test_list' must be a list"),
        ({**MBPP_ROWS[1], "task_id": 4, "code": "def f(:\n"}, r"line 2: field 'code' does not parse"),
        ({**MBPP_ROWS[1], "task_id": 4, "test_list": ["assert g() == 1"]}, r"line 2: the tests call none"),
        ({**MBPP_ROWS[1], "task_id": None}, r"line 2: field 'task_id'"),
        (MBPP_ROWS[0], r"line 2: duplicate task_id '12' \(first at .*, line 1\)"),
    ],
)
def test_bad_mbpp_rows_name_file_line_and_field(tmp_path, bad_row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [MBPP_ROWS[0], bad_row])
    with pytest.raises(CodeDataError, match=f"bad.jsonl, {message}"):
        load_mbpp(path)


def test_load_mbpp_missing_file_and_unreachable_hub(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_mbpp(tmp_path / "missing.jsonl")
    with pytest.raises(FileNotFoundError, match="pass the path of an MBPP JSONL file"):
        load_mbpp("no-such-org/no-such-mbpp")


def test_mbpp_tests_run_in_the_sandbox(mbpp_file):
    problems = load_mbpp(mbpp_file)
    jobs = [sandbox_job(p, p.reference_code) for p in problems]
    jobs.append(sandbox_job(problems[2], problems[2].prompt + "\treturn a - b\n"))  # a wrong body
    results = run_programs(jobs, limits=SandboxLimits(timeout_s=20), progress=False)
    assert [r.status for r in results] == ["passed", "passed", "passed", "failed"]
    assert results[-1].failed_test == "assert add_nums(1, 2) == 3"


PROMPT = '"""\nWrite a function to double.\n\n>>> Example: double(2) = 4\n"""\n\nimport math\ndef double(x):\n'
FEEDBACK_ROWS = [
    {
        "task_id": 5,
        "prompt": PROMPT,
        "original_model_completion": PROMPT + "    return x + 2\n",
        "Feedback": "Multiply by two instead of adding two.",
        "completion": "\n    return x * 2\r\n",
        "unedited_annotator_completion": PROMPT[:-1] + "\n    return x * 2\r\n",
        "test": "from pytest import approx\n\ndef check(candidate):\n\tassert candidate(3) == approx(6)\n",
        "passed": True,
    },
    {  # the annotator added an import above the signature: prompt + completion would not run
        "task_id": "6",
        "prompt": '"""\nCount.\n"""\n\ndef count(xs):\n',
        "original_model_completion": '"""\nCount.\n"""\n\ndef count(xs):\n    return len(xs)\n',
        "Feedback": "Use collections.Counter.",
        "completion": "\n    return collections.Counter(xs)[1]",
        "unedited_annotator_completion": '"""\nCount.\n"""\nimport collections\ndef count(xs):\n    return collections.Counter(xs)[1]',
        "test": "def check(candidate):\n    assert candidate([1, 1, 2]) == 2\n",
    },
]


@pytest.fixture
def feedback_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "feedback.jsonl", FEEDBACK_ROWS)


def test_load_code_feedback(feedback_file):
    first, second = load_code_feedback(feedback_file)
    assert (first.task_id, second.task_id) == ("5", "6")
    assert first.entry_point == "double" and first.feedback == FEEDBACK_ROWS[0]["Feedback"]
    assert first.original_program == FEEDBACK_ROWS[0]["original_model_completion"]
    assert first.refinement == FEEDBACK_ROWS[0]["unedited_annotator_completion"]
    assert first.prompt.rstrip() + first.refinement_completion == first.refinement
    assert second.refinement == FEEDBACK_ROWS[1]["unedited_annotator_completion"]
    assert runnable_tests(first).endswith("\ncheck(double)\n")


def test_feedback_refinements_pass_and_originals_fail_in_the_sandbox(feedback_file):
    records = load_code_feedback(feedback_file)
    jobs = [sandbox_job(r, r.refinement) for r in records] + [sandbox_job(r, r.original_program) for r in records]
    statuses = [r.status for r in run_programs(jobs, progress=False)]
    assert statuses == ["passed", "passed", "failed", "failed"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Feedback": None}, r"line 2: missing field 'Feedback'"),
        ({"prompt": "no signature here"}, r"line 2: field 'prompt' has no function signature"),
        ({"test": "assert True"}, r"line 2: field 'test' has no check\(candidate\)"),
        ({"test": "def check(candidate):\nassert"}, r"line 2: field 'test' does not parse"),
        ({"completion": 3}, r"line 2: field 'completion' must be a string"),
    ],
)
def test_bad_feedback_rows_name_file_line_and_field(tmp_path, change, message):
    path = write_jsonl(tmp_path / "fb.jsonl", [FEEDBACK_ROWS[0], {**FEEDBACK_ROWS[1], **change}])
    with pytest.raises(CodeDataError, match=f"fb.jsonl, {message}"):
        load_code_feedback(path)


def test_empty_feedback_is_kept_for_the_provider_to_skip(tmp_path):
    path = write_jsonl(tmp_path / "fb.jsonl", [FEEDBACK_ROWS[0], {**FEEDBACK_ROWS[1], "Feedback": " "}])
    assert [r.feedback for r in load_code_feedback(path)] == [FEEDBACK_ROWS[0]["Feedback"], " "]


def test_load_humaneval_from_the_package():
    problems = load_humaneval()
    assert len(problems) == 164 and problems[0].task_id == "HumanEval/0"
    first = problems[0]
    assert first.entry_point == "has_close_elements" and "def check(candidate)" in first.test_code
    assert first.tests[0].startswith("assert has_close_elements(")
    jobs = [sandbox_job(p, p.reference_code) for p in problems[:3]]
    jobs.append(sandbox_job(first, first.prompt + "    return False\n"))
    statuses = [r.status for r in run_programs(jobs, progress=False)]
    assert statuses == ["passed", "passed", "passed", "failed"]
