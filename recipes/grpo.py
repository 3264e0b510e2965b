"""GRPO (TRL ``GRPOTrainer``) on summarization prompts with a learned reward model as the reward.

    python recipes/grpo.py --config recipes/configs/grpo_cpu.yaml --reward_model runs/reward_model_cpu
    accelerate launch --config_file recipes/accelerate/<config>.yaml recipes/grpo.py --config <gpu config>

``reward_model`` is a directory written by ``recipes/train_reward_model.py`` (full model or LoRA
adapter). It is exposed to TRL through ``rlhf.reward.as_trl_reward_func``, so TRL logs its mean and
std as ``rewards/<reward model name>/mean|std`` (TensorBoard with ``--grpo.report_to [tensorboard]``).
Prompts are the summarization prompts of ``split`` in the SLF5K-format ``data``. Prints the logged
mean reward of the first and last logging steps and saves the policy to ``<output_dir>/final``; with
``grpo.save_steps`` a rerun resumes from the last checkpoint.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from language_feedback.prompts import summarize_prompt
from language_feedback.summarization_data import load_slf5k
from rlhf.artifacts import atomic_path, write_json_atomic
from rlhf.config import load_config
from rlhf.models import resolve_model_path
from rlhf.preference import PreferenceRewardModel
from rlhf.reward import as_trl_reward_func
from rlhf.training import LoraSettings


@dataclass
class GRPOSettings:
    """The ``trl.GRPOConfig`` fields this recipe sets."""

    learning_rate: float = 1e-6
    max_steps: int = 20
    batch_size: int = 4  # completions per device and step; a multiple of num_generations
    gradient_accumulation_steps: int = 1
    num_generations: int = 4  # completions per prompt (the group GRPO normalizes over)
    max_completion_length: int = 48
    temperature: float = 1.0
    beta: float = 0.0  # KL coefficient; 0 skips the reference model
    logging_steps: int = 1
    save_steps: int | None = None
    seed: int = 0
    bf16: bool = False
    gradient_checkpointing: bool = False  # saves memory on big models, costs time on small ones
    report_to: list[str] = field(default_factory=list)


@dataclass
class GRPORecipeConfig:
    model: str = "smollm2-135m-instruct"  # the policy
    reward_model: str = ""  # directory written by recipes/train_reward_model.py
    reward_batch_size: int = 8
    reward_max_length: int = 1024
    data: str = ""  # SLF5K-format JSONL file, directory of <split>.jsonl, or JeremyAlain/SLF5K
    split: str = "train"
    limit: int = 0  # 0 = every post of the split
    output_dir: str = "runs/grpo"
    use_lora: bool = False
    lora: LoraSettings = field(default_factory=LoraSettings)
    grpo: GRPOSettings = field(default_factory=GRPOSettings)


def main(argv: list[str] | None = None) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers.trainer_utils import get_last_checkpoint
    from trl import GRPOConfig, GRPOTrainer

    config = load_config(GRPORecipeConfig, argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not config.reward_model or not config.data:
        raise SystemExit("pass --reward_model (a directory from recipes/train_reward_model.py) and --data (SLF5K format)")
    samples = load_slf5k(config.data, config.split)
    samples = samples[: config.limit] if config.limit else samples
    prompts = Dataset.from_list([{"prompt": summarize_prompt(s.title, s.post)} for s in samples])
    rm = PreferenceRewardModel(config.reward_model, batch_size=config.reward_batch_size,
                               max_length=config.reward_max_length)

    g, output_dir = config.grpo, Path(config.output_dir)
    args = GRPOConfig(
        output_dir=str(output_dir), learning_rate=g.learning_rate, max_steps=g.max_steps,
        per_device_train_batch_size=g.batch_size, gradient_accumulation_steps=g.gradient_accumulation_steps,
        num_generations=g.num_generations, max_completion_length=g.max_completion_length,
        temperature=g.temperature, beta=g.beta, logging_steps=g.logging_steps, seed=g.seed, bf16=g.bf16,
        gradient_checkpointing=g.gradient_checkpointing,
        save_strategy="steps" if g.save_steps else "no", save_steps=g.save_steps or 500,
        report_to=g.report_to or "none",
    )
    peft_config = None
    if config.use_lora:
        lora = config.lora
        peft_config = LoraConfig(task_type="CAUSAL_LM", r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                 target_modules=lora.target_modules)
    trainer = GRPOTrainer(
        model=resolve_model_path(config.model), reward_funcs=[as_trl_reward_func(rm)], args=args,
        train_dataset=prompts, peft_config=peft_config,
    )
    last = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    trainer.train(resume_from_checkpoint=last)

    with atomic_path(output_dir / "final") as tmp:
        trainer.save_model(str(tmp))
    reward_key = f"rewards/{rm.name}/mean"
    rewards = [(log["step"], log[reward_key]) for log in trainer.state.log_history if reward_key in log]
    write_json_atomic(output_dir / "log_history.json", trainer.state.log_history)
    if rewards:
        print(f"{reward_key}: step {rewards[0][0]} {rewards[0][1]:.4f} -> step {rewards[-1][0]} {rewards[-1][1]:.4f}")
    print(f"policy: {output_dir / 'final'}")
    return {"reward_key": reward_key, "rewards": rewards, "log_history": json.loads(json.dumps(trainer.state.log_history))}


if __name__ == "__main__":
    main()
