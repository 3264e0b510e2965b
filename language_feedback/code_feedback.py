"""Feedback in words on programs: one interface for people, test runs and critic models.

A :class:`FeedbackProvider` takes :class:`Draft` s (a problem, a program and its test result) and returns
one string per draft; an empty string means "no feedback for this one", and the batch goes on. The
providers: :class:`HumanFeedback` (annotations), :class:`ExecutionFeedback` (the test result in a
sentence, :func:`feedback_from_execution`) and :class:`language_feedback.critic.CriticFeedback` (a
causal LM reads program and test result).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from language_feedback.code_data import CodeFeedbackRecord, CodeProblem, load_code_feedback
from language_feedback.sandbox import ExecResult

_PART_NAMES = {"program": "the program", "tests": "the tests", "setup": "the test setup code"}


def _code(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return f"`{text if len(text) <= limit else text[: limit - 3] + '...'}`"


def _at_line(result: ExecResult) -> str:
    if result.line is None:
        return ""
    where = f" at line {result.line} of {_PART_NAMES.get(result.part, 'the program')}"
    return where + (f" ({_code(result.line_source)})" if result.line_source else "")


def _parse_error(result: ExecResult) -> bool:
    return result.status == "failed" and " not parse: " in result.message.partition("\n")[0]


def feedback_from_execution(result: ExecResult, problem: CodeProblem | None = None) -> str:
    """Turn a sandbox result into one or two sentences of feedback.

    Says which test failed with the actual and expected values, or which exception was raised on
    which line, or which limit was hit; with ``problem``, also names a missing entry point. A result
    with status "error" (the sandbox could not judge the program) gets no feedback: "".
    """
    status = result.status
    if status == "error":
        return ""
    if status == "passed":
        return "The program passes all the tests."
    if status == "timeout":
        return "The program did not finish in time: it may loop forever or be far too slow."
    if status == "resource_limit":
        reason = result.message.splitlines()[0] if result.message else "a resource limit"
        return f"The program was stopped because it exceeded a limit: {reason}."
    if status == "crashed":
        reason = result.message.splitlines()[0] if result.message else "it stopped unexpectedly"
        return f"The program crashed: {reason}."
    if _parse_error(result):
        what = result.message.partition(":")[0]
        return f"{what[:1].upper()}{what[1:]}: {result.exception}{_at_line(result)}."
    if problem is not None and result.exception.startswith("NameError") and f"'{problem.entry_point}'" in result.exception:
        return f"The program does not define the function `{problem.entry_point}` that the tests call."
    test = f"The test {_code(result.failed_test)}" if result.failed_test else "The program"
    if result.actual is not None and result.expected is not None:
        return f"{test} failed: the code returned {result.actual} but {result.expected} was expected."
    if result.exception.startswith("AssertionError"):
        detail = result.exception.partition(": ")[2]
        return f"{test} failed{': ' + detail if detail else ''}."
    if result.exception:
        if result.failed_test:
            return f"{test} raised {result.exception}{_at_line(result)}."
        return f"The program raised {result.exception}{_at_line(result)} before any test ran."
    return f"The program failed the tests: {result.message.splitlines()[0] if result.message else 'no details'}."


@dataclass(frozen=True)
class Draft:
    """A program to give feedback on: its problem, its text and the result of running the problem's tests."""

    problem: CodeProblem
    program: str
    result: ExecResult


class FeedbackProvider(ABC):
    """Feedback in words on drafts: one string per draft, in order ("" when there is none for a draft)."""

    name: str = "feedback"

    @abstractmethod
    def __call__(self, drafts: Sequence[Draft]) -> list[str]:
        """One feedback string per draft."""


class ExecutionFeedback(FeedbackProvider):
    """Feedback from the test results: :func:`feedback_from_execution` of each draft."""

    name = "execution"

    def __call__(self, drafts: Sequence[Draft]) -> list[str]:
        return [feedback_from_execution(d.result, d.problem) for d in drafts]


class HumanFeedback(FeedbackProvider):
    """Feedback written by people, looked up by task id and, when one was written on it, by the exact program.

    A draft whose task has no annotation, or an empty one, gets "" and its task id is listed in
    :attr:`missing`; the batch goes on.
    """

    name = "human"

    def __init__(self, records: Iterable[CodeFeedbackRecord]):
        self.by_task: dict[str, list[CodeFeedbackRecord]] = {}
        for record in records:
            self.by_task.setdefault(str(record.task_id), []).append(record)
        self.missing: list[str] = []

    @classmethod
    def from_file(cls, path: str | Path) -> HumanFeedback:
        """Annotations from a file in the format of ``mbpp_code_feedback.jsonl``."""
        return cls(load_code_feedback(path))

    def __contains__(self, task_id: object) -> bool:
        return str(task_id) in self.by_task

    def feedback_for(self, task_id: str | int, program: str | None = None) -> str:
        """The annotation for a task ("" if none). With ``program``, the one written on that exact program
        if there is one (annotations are about a specific program), else the task's first annotation."""
        records = self.by_task.get(str(task_id), [])
        if program is not None:
            exact = [r for r in records if r.original_program == program]
            records = exact or records
        return records[0].feedback.strip() if records else ""

    def __call__(self, drafts: Sequence[Draft]) -> list[str]:
        texts = [self.feedback_for(d.problem.task_id, d.program) for d in drafts]
        self.missing = [str(d.problem.task_id) for d, text in zip(drafts, texts) if not text]
        return texts
