"""Execution rewards for RL on code: each completion runs against its problem's unit tests in the sandbox.

The verdicts come from :mod:`language_feedback.sandbox`, where a program cannot forge a pass (values cross
as plain data; the comparison happens outside the program's process), so an RL loop maximizing this reward
cannot do it by objects equal to anything, early exits or patching the tests. What it can still do is
fit the tests it is rewarded on: hold out tests to measure how well the programs generalize.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from language_feedback.code_data import CodeProblem, sandbox_job
from language_feedback.prompts import CODE_STOP_STRINGS, code_completion, code_prompt
from language_feedback.sandbox import ExecResult, SandboxLimits, run_programs
from rlhf.reward import PromptCompletion, RewardModel

REWARDS = ("fraction", "all_or_nothing")


class ExecutionReward(RewardModel):
    """Reward of a code completion: how it fares against its problem's unit tests in the sandbox.

    Items are :class:`~rlhf.reward.PromptCompletion` pairs. The prompt identifies the problem: it is the
    prompt the policy saw, ``code_prompt(problem.prompt)`` for one of ``problems``. The program run is that
    prompt followed by the completion, cut at the first of ``stop_strings`` (where the function ends, as code
    ILF stops generating; pass ``()`` to run the whole completion).

    ``reward``: "fraction" (default) is the fraction of the problem's tests the program passes (each assert
    judged in the caller counts; tests the sandbox's trusted harness runs as a whole count as one test), and
    "all_or_nothing" is 1.0 when every test passes, else 0.0. A program the sandbox could not judge (status
    "error": tests that do not parse, a failed sandbox server) is NaN with ``skip_errors`` -- TRL then leaves
    it out (:func:`rlhf.reward.as_trl_reward_func` gives it None) -- else 0.0. Since NaN marks skipped items,
    combine this model with others (``WeightedSum``, ``RunningNormalization``) only with ``skip_errors=False``.

    After each call, ``last_results`` holds the batch's :class:`~language_feedback.sandbox.ExecResult` s and
    :meth:`batch_metrics` its pass rate and error count (logged per step when used through TRL).
    """

    name = "execution"

    def __init__(self, problems: Sequence[CodeProblem], *, reward: str = "fraction", skip_errors: bool = True,
                 workers: int = 2, limits: SandboxLimits | None = None,
                 stop_strings: Sequence[str] = CODE_STOP_STRINGS):
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.problems: dict[str, CodeProblem] = {}
        for i, problem in enumerate(problems):
            if not isinstance(problem, CodeProblem):
                raise TypeError(f"problems[{i}]: expected a CodeProblem, got {type(problem).__name__}")
            key = code_prompt(problem.prompt)
            known = self.problems.setdefault(key, problem)
            if sandbox_job(known, "") != sandbox_job(problem, ""):
                raise ValueError(f"problems {known.task_id} and {problem.task_id} have the same prompt but different "
                                 "tests: a completion's prompt must identify its problem")
        if not self.problems:
            raise ValueError("ExecutionReward needs at least one problem")
        self.reward, self.may_skip, self.workers = reward, skip_errors, workers
        self.limits = limits or SandboxLimits()
        self.stop_strings = tuple(stop_strings)
        self.last_results: list[ExecResult] = []
        self._window: list[ExecResult] = []  # every result since window_metrics() was last called

    def program(self, item: PromptCompletion, index: int = 0) -> tuple[CodeProblem, str]:
        """The problem an item is for and the program that runs for it."""
        if not isinstance(item, PromptCompletion):
            raise TypeError(f"batch[{index}]: expected a PromptCompletion, got {type(item).__name__}")
        if item.conversational:
            raise TypeError(f"batch[{index}]: execution rewards read plain-text prompts and completions (TRL's standard "
                            "format), not chat messages")
        prompt = code_prompt(item.prompt)
        problem = self.problems.get(prompt)
        if problem is None:
            raise KeyError(f"batch[{index}]: the prompt is not the prompt of any of the {len(self.problems)} problems "
                           f"(expected code_prompt(problem.prompt)); it starts {prompt[:80]!r}")
        body = item.completion
        cuts = [body.find(s) for s in self.stop_strings if s in body]
        return problem, prompt + code_completion(body[: min(cuts)] if cuts else body)

    def score(self, batch: Sequence[PromptCompletion]) -> torch.Tensor:
        jobs = [sandbox_job(*self.program(item, i)) for i, item in enumerate(batch)]
        self.last_results = run_programs(jobs, workers=self.workers, limits=self.limits, progress=False)
        self._window.extend(self.last_results)
        return torch.tensor([self._reward(r) for r in self.last_results], dtype=torch.float32)

    def _reward(self, result: ExecResult) -> float:
        if result.status == "error":
            return math.nan if self.may_skip else 0.0
        if self.reward == "all_or_nothing" or result.tests_total == 0:
            return float(result.passed)
        return result.tests_passed / result.tests_total

    def batch_metrics(self) -> dict[str, float]:
        """``errors`` (programs the sandbox could not judge) and ``pass_rate`` (programs that passed every
        test, among those judged; absent when none was) of the last batch."""
        return _metrics(self.last_results)

    def window_metrics(self) -> dict[str, float]:
        """The same over every batch since the previous call (a trainer's logging window), then reset."""
        window, self._window = self._window, []
        return _metrics(window)


def _metrics(results: Sequence[ExecResult]) -> dict[str, float]:
    judged = [r for r in results if r.status != "error"]
    metrics = {"errors": float(len(results) - len(judged))}
    if judged:
        metrics["pass_rate"] = sum(r.passed for r in judged) / len(judged)
    return metrics
