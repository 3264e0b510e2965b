"""Online RL experiments on text: the training itself is :func:`rlhf.grpo.train_grpo`.

- :func:`run_summarization_grpo`: GRPO on the summarization prompts of an SLF5K-format split, with a learned
  (Bradley–Terry) reward model from ``recipes/train_reward_model.py`` as the reward.
- :class:`CodeRL`: GRPO or SDPO on MBPP problems with the execution reward (the sandbox's unforgeable verdict,
  :class:`~language_feedback.execution_reward.ExecutionReward`). For SDPO, the sandbox's failure message on
  the base model's own program for each problem is the feedback in words the self-teacher reads
  (``privileged_context``): language feedback from execution, learned online.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from transformers import TrainerCallback

from language_feedback.prompts import summarize_prompt
from language_feedback.summarization_data import load_slf5k
from rlhf.artifacts import read_jsonl, write_jsonl_atomic
from rlhf.config import ConfigError, runtime_field
from rlhf.experiment import Experiment
from rlhf.grpo import logged, train_grpo
from rlhf.preference import PreferenceRewardModel
from rlhf.training import GRPOSettings, LoraSettings


@dataclass
class SummarizationGRPOConfig:
    model: str = "smollm2-135m-instruct"  # the policy
    reward_model: str = ""  # <output_dir>/model of recipes/train_reward_model.py
    reward_batch_size: int = 8
    reward_max_length: int = 1024
    data: str = ""  # SLF5K-format JSONL file, directory of <split>.jsonl, or JeremyAlain/SLF5K
    split: str = "train"
    limit: int = 0  # 0 = every post of the split
    output_dir: str = "runs/grpo"
    lora: LoraSettings | None = None
    grpo: GRPOSettings = field(default_factory=GRPOSettings)

    def __post_init__(self) -> None:
        if not self.reward_model:
            raise ConfigError("pass a reward model directory (<output_dir>/model of recipes/train_reward_model.py)",
                              key="reward_model")
        if not self.data:
            raise ConfigError("pass SLF5K-format data (a JSONL file or a directory of <split>.jsonl)", key="data")


def run_summarization_grpo(config: SummarizationGRPOConfig) -> dict[str, Any]:
    """Train; return the reward's log key, its logged ``(step, mean)`` values and the full log history."""
    samples = load_slf5k(config.data, config.split)
    samples = samples[: config.limit] if config.limit else samples
    rm = PreferenceRewardModel(config.reward_model, batch_size=config.reward_batch_size,
                               max_length=config.reward_max_length)
    history = train_grpo(config.model, [summarize_prompt(s.title, s.post) for s in samples], [rm],
                         config.output_dir, settings=config.grpo, lora=config.lora)
    key = f"rewards/{rm.name}/mean"
    return {"reward_key": key, "rewards": logged(history, key), "log_history": history,
            "policy": str(Path(config.output_dir) / "final")}


@dataclass
class SDPOSettings:
    """What SDPO adds to the GRPO settings (``trl.experimental.sdpo.SDPOConfig`` names)."""

    distillation_weight: float = 1.0  # 1: pure self-distillation; 0: GRPO's policy gradient
    teacher_model_kind: str = "ema"  # base | live | ema
    use_successful_as_teacher: bool = True  # a rollout that passes every test is a demonstration
    include_environment_feedback: bool = True  # the sandbox's failure message goes into the teacher's prompt
    success_reward_threshold: float = 1.0


@dataclass
class CodeRLConfig:
    algorithm: Literal["grpo", "sdpo"] = "grpo"
    model: str = "smollm2-135m-instruct"
    mbpp_path: str = "../shared/data/mbpp.jsonl"
    train_tasks: str = "311-974"  # the paper's policy-training split (task ids or ranges)
    limit: int = 0  # 0 = every task of train_tasks
    reward: Literal["fraction", "all_or_nothing"] = "fraction"  # of the problem's tests passed
    skip_errors: bool = True  # programs the sandbox could not judge are left out, not scored 0
    sandbox_workers: int = runtime_field(2)
    output_dir: str = "runs/grpo_code"
    lora: LoraSettings | None = None
    grpo: GRPOSettings = field(default_factory=lambda: GRPOSettings(max_completion_length=128))
    sdpo: SDPOSettings = field(default_factory=SDPOSettings)

    def __post_init__(self) -> None:
        from language_feedback.code_ilf import parse_task_ids

        parse_task_ids(self.train_tasks, "train_tasks")
        if not Path(self.mbpp_path).is_file():
            raise ConfigError(f"no file at {self.mbpp_path}; pass --mbpp_path /path/to/mbpp.jsonl (the reference data "
                              "is not part of the repository)", key="mbpp_path")


class CodeRL(Experiment):
    """GRPO or SDPO on MBPP with the execution reward; :meth:`run` returns the per-step log."""

    def __init__(self, config: CodeRLConfig):
        from language_feedback.code_data import load_mbpp
        from language_feedback.code_ilf import parse_task_ids

        wanted = parse_task_ids(config.train_tasks, "train_tasks")
        problems = load_mbpp(config.mbpp_path, wanted)
        if not problems:
            raise ConfigError(f"none of the task ids {config.train_tasks!r} is in {config.mbpp_path}", key="train_tasks")
        self.problems = problems[: config.limit] if config.limit else problems
        super().__init__(config)

    def prompts(self, out: Path) -> None:
        """The policy's prompts; for SDPO, with the sandbox's feedback on the base model's own (greedy) program."""
        from language_feedback.prompts import code_prompt

        rows = [{"prompt": code_prompt(p.prompt)} for p in self.problems]
        if self.config.algorithm == "sdpo":
            from language_feedback.code_feedback import feedback_from_execution
            from language_feedback.code_ilf import sample_and_test
            from language_feedback.sandbox import ExecResult
            from rlhf.models import load_causal_lm

            model, tokenizer = load_causal_lm(self.config.model)
            drafts = sample_and_test(model, tokenizer, self.problems, num_samples=1, temperature=0.0,
                                     max_new_tokens=self.config.grpo.max_completion_length, generation_batch_size=8,
                                     seed=self.config.grpo.seed, workers=self.config.sandbox_workers, timeout_s=10.0,
                                     progress=False)
            for row, problem, draft in zip(rows, self.problems, drafts):
                result = ExecResult(**draft["result"])  # no feedback when the draft passed or was not judged
                row["privileged_context"] = "" if result.passed else feedback_from_execution(result, problem)
        write_jsonl_atomic(out / "prompts.jsonl", rows)

    def run(self) -> dict[str, Any]:
        from language_feedback.execution_reward import ExecutionReward

        cfg = self.config
        rows = read_jsonl(self.run_dir.stage("prompts", self.prompts) / "prompts.jsonl")
        reward = ExecutionReward(self.problems, reward=cfg.reward, skip_errors=cfg.skip_errors,
                                 workers=cfg.sandbox_workers)
        history = train_grpo(cfg.model, rows, [reward], self.run_dir.path / "trainer", settings=cfg.grpo,
                             lora=cfg.lora, algorithm=cfg.algorithm,
                             algorithm_args=dataclasses.asdict(cfg.sdpo) if cfg.algorithm == "sdpo" else None,
                             callbacks=[ExecutionMetricsCallback(reward)])
        reward_key = {"grpo": f"rewards/{reward.name}/mean", "sdpo": f"self_distillation/rewards/{reward.name}"}
        keys = {"reward": reward_key[cfg.algorithm], "pass_rate": f"{reward.name}/pass_rate",
                "errors": f"{reward.name}/errors"}
        steps = sorted({step for key in keys.values() for step, _ in logged(history, key)})
        per_step = [{"step": step, **{name: dict(logged(history, key)).get(step) for name, key in keys.items()}}
                    for step in steps]
        return {"per_step": per_step, "policy": str(self.run_dir.path / "trainer" / "final"),
                "n_with_feedback": sum(bool(r.get("privileged_context")) for r in rows)}


class ExecutionMetricsCallback(TrainerCallback):
    """Adds the execution reward's pass rate and unjudged-program count over each logging window to the log.

    GRPO passes ``log_metric`` to reward functions, SDPO does not; this gives both the same log keys
    (``<reward name>/pass_rate``, ``<reward name>/errors``), computed over every program of the window.
    """

    def __init__(self, reward: Any):
        self.reward = reward

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        metrics = self.reward.window_metrics()
        if state.log_history:
            state.log_history[-1].update({f"{self.reward.name}/{k}": v for k, v in metrics.items()})
