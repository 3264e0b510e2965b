"""Settings shared by the TRL trainers the toolkit runs: SFT (``language_feedback.finetune``) and
Bradley–Terry reward models (``rlhf.preference``). Field names follow transformers' ``TrainingArguments``
where one exists, so YAML configs read like TRL's."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class LoraSettings:
    """LoRA (peft). For reward models the score head is always trained and saved in full."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # "all-linear" lets peft pick every linear layer except the output head, for any architecture.
    target_modules: list[str] | str = "all-linear"


@dataclass
class TrainingSettings:
    """Optimisation settings for :func:`language_feedback.finetune.sft` and :func:`rlhf.preference.train_reward_model`."""

    learning_rate: float = 1e-5
    epochs: float = 1.0
    batch_size: int = 8  # per process
    gradient_accumulation_steps: int = 1
    max_length: int = 1024
    seed: int = 0
    gradient_checkpointing: bool = False
    bf16: bool | None = None  # None: bf16 when a bf16-capable GPU is present, fp32 otherwise
    logging_steps: int = 10
    save_steps: int | None = None  # checkpoint every N steps so that a killed run resumes mid-training
    report_to: list[str] = field(default_factory=list)  # e.g. ["tensorboard"]

    def trainer_arguments(self, output_dir: str | Path) -> dict[str, Any]:
        """Keyword arguments for TRL's ``SFTConfig`` and ``RewardConfig``."""
        has_bf16_gpu = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return {
            "output_dir": str(output_dir),
            "learning_rate": self.learning_rate,
            "num_train_epochs": self.epochs,
            "per_device_train_batch_size": self.batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "max_length": self.max_length,
            "seed": self.seed,
            # transformers 5 renamed gradient_checkpointing (TRL defaults the old name to True); set the new one
            "gradient_checkpointing": None,
            "activation_checkpointing": self.gradient_checkpointing,
            "bf16": self.bf16 if self.bf16 is not None else has_bf16_gpu,
            # Without a GPU, TrainingArguments re-initialises accelerate's state as single-process unless told
            # to use the CPU: under `accelerate launch`/torchrun on CPU each process would then train alone.
            "use_cpu": not torch.cuda.is_available(),
            "logging_steps": self.logging_steps,
            "save_strategy": "steps" if self.save_steps else "no",
            "save_steps": self.save_steps or 500,
            "report_to": self.report_to or "none",
        }
