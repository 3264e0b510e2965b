"""Online RL on text with any of the toolkit's reward models: TRL's GRPO, or its SDPO (self-distillation with
language feedback as privileged context), resumable, saved atomically.

Every reward model is exposed through :func:`rlhf.reward.as_trl_reward_func`, so TRL logs each one's mean
and std as ``rewards/<name>/mean|std`` (and a model's ``batch_metrics`` as ``<name>/<metric>``). Checkpoints
(``settings.save_steps``) go to ``output_dir`` and a rerun resumes from the last one; the final policy is
written atomically to ``<output_dir>/final``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from rlhf.artifacts import atomic_path, write_json_atomic
from rlhf.models import resolve_model_path
from rlhf.reward import RewardModel, as_trl_reward_func
from rlhf.sharding import check_launch, gather_model
from rlhf.training import GRPOSettings, LoraSettings

Algorithm = Literal["grpo", "sdpo"]


def train_grpo(
    model: str,
    prompts: Sequence[str] | Sequence[dict[str, Any]],
    reward_models: Sequence[RewardModel],
    output_dir: str | Path,
    *,
    settings: GRPOSettings,
    lora: LoraSettings | None = None,
    algorithm: Algorithm = "grpo",
    algorithm_args: dict[str, Any] | None = None,
    callbacks: list[Any] | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` (path, hub id or embedded name) online on ``prompts``; return TRL's log history.

    ``prompts`` are strings, or dataset rows with a ``"prompt"`` key and further columns (SDPO reads the
    feedback of a row from ``"privileged_context"``). ``algorithm`` "grpo" is ``trl.GRPOTrainer``; "sdpo" is
    ``trl.experimental.sdpo.SDPOTrainer``, with ``algorithm_args`` (e.g. ``include_environment_feedback``)
    added to its config. The log history is also written to ``log_history.json``. Under FSDP or ZeRO-3 the
    policy's shards are gathered before it is saved (:func:`rlhf.sharding.gather_model`).
    """
    from datasets import Dataset
    from transformers.trainer_utils import get_last_checkpoint

    if algorithm == "grpo":
        from trl import GRPOConfig as ConfigClass
        from trl import GRPOTrainer as TrainerClass
    elif algorithm == "sdpo":
        from trl.experimental.sdpo import SDPOConfig as ConfigClass
        from trl.experimental.sdpo import SDPOTrainer as TrainerClass
    else:
        raise ValueError(f"algorithm must be 'grpo' or 'sdpo', got {algorithm!r}")
    output_dir = Path(output_dir)
    rows = [p if isinstance(p, dict) else {"prompt": p} for p in prompts]
    if not rows:
        raise ValueError("online RL: no prompts")
    trainer = TrainerClass(
        model=resolve_model_path(model), reward_funcs=[as_trl_reward_func(rm) for rm in reward_models],
        args=settings.trl_config(ConfigClass, output_dir, **(algorithm_args or {})),
        train_dataset=Dataset.from_list(rows),
        peft_config=lora.peft_config(task_type="CAUSAL_LM") if lora is not None else None, callbacks=callbacks,
    )
    check_launch(trainer.accelerator)
    last = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    trainer.train(resume_from_checkpoint=last)
    # every process takes part in gathering the policy (sharded under FSDP or ZeRO-3); the main process writes it
    policy = gather_model(trainer.accelerator, trainer.model_wrapped)
    if trainer.accelerator.is_main_process:
        with atomic_path(output_dir / "final") as tmp:
            policy.save_pretrained(str(tmp))  # the full model, or the LoRA adapter
            trainer.processing_class.save_pretrained(str(tmp))
        write_json_atomic(output_dir / "log_history.json", trainer.state.log_history)
    trainer.accelerator.wait_for_everyone()
    return json.loads(json.dumps(trainer.state.log_history))


def logged(log_history: Sequence[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    """``(step, value)`` of every logging step that recorded ``key`` (e.g. ``rewards/<name>/mean``)."""
    return [(entry["step"], entry[key]) for entry in log_history if key in entry]
