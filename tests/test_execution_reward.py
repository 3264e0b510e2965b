"""ExecutionReward: real sandbox runs of completions, the two reward modes, skipped items, and TRL's GRPO."""

from __future__ import annotations

import math

import pytest
import torch

from language_feedback.code_data import CodeProblem
from language_feedback.execution_reward import ExecutionReward
from language_feedback.prompts import code_prompt
from language_feedback.sandbox import SandboxLimits
from rlhf.reward import FunctionReward, PromptCompletion, WeightedSum, as_trl_reward_func

ADD = CodeProblem(
    task_id="1", text="Add two numbers.", reference_code="def add(a, b):\n    return a + b\n", test_setup_code="",
    tests=["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(0, 5) == 5"], entry_point="add",
    prompt='"""\nAdd two numbers.\n\n>>> Example: add(1, 2) = 3\n"""\n\ndef add(a, b):\n',
)
# HumanEval style with a loop: judged by the sandbox's trusted harness, as one test.
DOUBLE = CodeProblem(
    task_id="HumanEval/x", text="Double.", reference_code="def double(x):\n    return 2 * x\n", test_setup_code="",
    tests=[], entry_point="double", prompt='def double(x):\n    """Double x."""\n',
    test_code="def check(candidate):\n    for x in range(4):\n        assert candidate(x) == 2 * x\n",
)
# Tests that do not parse: the sandbox cannot judge any program for this problem.
BROKEN = CodeProblem(
    task_id="2", text="Negate.", reference_code="def neg(a):\n    return -a\n", test_setup_code="",
    tests=["assert neg(1) == "], entry_point="neg", prompt='"""\nNegate.\n"""\n\ndef neg(a):\n',
)
LIMITS = SandboxLimits(timeout_s=20)


def item(problem: CodeProblem, body: str) -> PromptCompletion:
    return PromptCompletion(code_prompt(problem.prompt), body)


def test_fraction_all_or_nothing_and_skipped_items():
    batch = [
        item(ADD, "\n    return a + b\n"),
        item(ADD, "\n    return 4 if a == 2 else a + b + (a == 0)\n"),  # 2 of 3 tests
        item(ADD, "\n    return a +\n"),  # does not parse
        item(DOUBLE, "\n    return x + x\n"),
        item(DOUBLE, "\n    return x * x\n"),  # right for 0 and 2 only: the harness's one test fails
        item(BROKEN, "\n    return -a\n"),
    ]
    fraction = ExecutionReward([ADD, DOUBLE, BROKEN], limits=LIMITS)
    rewards = fraction(batch)
    assert rewards[:5].tolist() == pytest.approx([1.0, 2 / 3, 0.0, 1.0, 0.0]) and math.isnan(rewards[5])
    assert [r.status for r in fraction.last_results] == ["passed", "failed", "failed", "passed", "failed", "error"]
    assert fraction.batch_metrics() == {"errors": 1.0, "pass_rate": 2 / 5}
    strict = ExecutionReward([ADD, DOUBLE, BROKEN], reward="all_or_nothing", skip_errors=False, limits=LIMITS)
    assert strict(batch).tolist() == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]


def test_the_completion_is_cut_where_the_function_ends():
    reward = ExecutionReward([ADD], limits=LIMITS)
    junk = "\n    return a + b\n\nassert add(1, 2) == 4\nprint(add(1, 2))\n"
    assert reward([item(ADD, junk)]).tolist() == [1.0]
    whole = ExecutionReward([ADD], stop_strings=(), limits=LIMITS)
    assert whole([item(ADD, junk)]).tolist() == [0.0] and whole.last_results[0].part == "program"


def test_bad_input_is_named():
    reward = ExecutionReward([ADD], limits=LIMITS)
    with pytest.raises(KeyError, match=r"batch\[1\]: the prompt is not the prompt of any of the 1 problems"):
        reward([item(ADD, "\n    return a + b\n"), PromptCompletion("def other():", "\n    pass\n")])
    with pytest.raises(ValueError, match="reward must be one of"):
        ExecutionReward([ADD], reward="partial")
    twin = CodeProblem(**{**ADD.__dict__, "task_id": "9", "tests": ["assert add(1, 1) == 2"]})
    with pytest.raises(ValueError, match="problems 1 and 9 have the same prompt but different tests"):
        ExecutionReward([ADD, twin])


def test_nan_means_skipped_only_for_models_that_say_so():
    skipping = ExecutionReward([BROKEN], limits=LIMITS)
    assert as_trl_reward_func(skipping)(prompts=[code_prompt(BROKEN.prompt)], completions=["\n    return -a\n"]) == [None]
    with pytest.raises(ValueError, match="non-finite rewards"):
        WeightedSum([skipping], [1.0])([item(BROKEN, "\n    return -a\n")])
    with pytest.raises(ValueError, match="non-finite rewards"):
        FunctionReward(lambda batch: torch.tensor([math.nan]), "plain")([0])


def test_inside_trl_grpo_reward_computation(tiny_lm_path, tmp_path):
    """TRL's GRPOTrainer calls the reward with its own arguments, takes None for the skipped items, and logs
    the reward, the pass rate and the error count."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    class Recording(ExecutionReward):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.seen, self.returned, self.errors = [], [], []

        def score(self, batch):
            self.seen.extend(batch)
            rewards = super().score(batch)
            self.returned.extend(rewards.tolist())
            self.errors.append(self.batch_metrics()["errors"])
            return rewards

    reward = Recording([ADD, BROKEN], limits=LIMITS)
    args = GRPOConfig(  # one step: both prompts, 4 completions each
        output_dir=str(tmp_path), per_device_train_batch_size=8, num_generations=4, max_completion_length=8,
        max_steps=1, logging_steps=1, report_to=[], use_cpu=True, save_strategy="no", bf16=False,
    )
    trainer = GRPOTrainer(model=tiny_lm_path, reward_funcs=as_trl_reward_func(reward), args=args,
                          train_dataset=Dataset.from_dict({"prompt": [code_prompt(ADD.prompt), code_prompt(BROKEN.prompt)]}))
    trainer.train()
    assert sorted(x.prompt for x in reward.seen) == sorted([code_prompt(ADD.prompt)] * 4 + [code_prompt(BROKEN.prompt)] * 4)
    skipped = [math.isnan(r) for r in reward.returned]
    assert skipped == [x.prompt == code_prompt(BROKEN.prompt) for x in reward.seen]
    assert [r.status for r in reward.last_results].count("error") == 4
    logged = {k: v for row in trainer.state.log_history for k, v in row.items()}
    assert logged["execution/errors"] == pytest.approx(sum(reward.errors) / len(reward.errors)) == 4.0
    judged = [r for r in reward.returned if not math.isnan(r)]
    assert logged["rewards/execution/mean"] == pytest.approx(sum(judged) / len(judged))  # skipped items left out


MBPP_ROWS = [
    {"task_id": 311, "text": "Add two numbers.", "code": "def add(a, b):\n    return a + b",
     "test_setup_code": "", "test_list": ["assert add(1, 2) == 3", "assert add(2, 2) == 4"], "challenge_test_list": []},
    {"task_id": 312, "text": "Negate a number.", "code": "def neg(a):\n    return -a",
     "test_setup_code": "", "test_list": ["assert neg(1) == -1", "assert neg(-3) == 3"], "challenge_test_list": []},
]


@pytest.mark.parametrize("algorithm", ["grpo", "sdpo"])
def test_code_rl_recipe_logs_reward_pass_rate_and_errors_per_step(tiny_lm_path, tmp_path, algorithm, capsys):
    import json

    from _recipes import load_recipe

    mbpp = tmp_path / "mbpp.jsonl"
    mbpp.write_text("".join(json.dumps(r) + "\n" for r in MBPP_ROWS))
    out = tmp_path / algorithm
    result = load_recipe("grpo_code.py").main([
        "--algorithm", algorithm, "--model", tiny_lm_path, "--mbpp_path", str(mbpp), "--train_tasks", "311-312",
        "--output_dir", str(out), "--sandbox_workers", "1",
        "--grpo", ("{learning_rate: 1.0e-4, max_steps: 2, per_device_train_batch_size: 4, num_generations: 2, "
                  "max_completion_length: 8, logging_steps: 1, report_to: []}"),
    ])
    assert [row["step"] for row in result["per_step"]] == [1, 2]
    for row in result["per_step"]:
        # The tiny model writes no valid body: reward 0, nothing passes, every program judged.
        assert row["reward"] == 0.0 and row["pass_rate"] == 0.0 and row["errors"] == 0.0
    printed = capsys.readouterr().out
    assert "step 1: reward 0.000, pass_rate 0.000, errors 0.000" in printed
    prompts = [json.loads(line) for line in (out / "prompts" / "prompts.jsonl").read_text().splitlines()]
    if algorithm == "sdpo":
        # The teacher's privileged context is the sandbox's failure message on the base model's own program.
        assert result["n_with_feedback"] == 2
        assert all(p["privileged_context"].startswith(("The program", "The test")) for p in prompts)
    else:
        assert all(set(p) == {"prompt"} for p in prompts)
    assert (out / "trainer" / "final" / "config.json").is_file()
