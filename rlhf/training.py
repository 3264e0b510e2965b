"""Settings for the TRL trainers the toolkit runs, and the one LoRA convention.

- :class:`TrainingSettings`: SFT (``language_feedback.finetune``) and Bradley–Terry reward models
  (``rlhf.preference``); :class:`GRPOSettings` adds GRPO's sampling fields. Every field is named as the
  TRL config argument it sets (``SFTConfig``, ``RewardConfig``, ``GRPOConfig``), so a YAML section reads
  like a TRL config; :meth:`TrainingSettings.trl_config` builds the TRL config in one place.
- :class:`LoraSettings`: LoRA through peft for every model the toolkit trains (SFT, reward models, GRPO,
  CLIP fine-tuning), field names as in ``peft.LoraConfig``; :meth:`LoraSettings.peft_config` converts it.
  A config holds ``lora: LoraSettings | None``: ``None`` (``lora: null``) trains every weight.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from rlhf.config import ConfigError

T = TypeVar("T")


@dataclass
class LoraSettings:
    """LoRA (peft ``LoraConfig`` names). For reward models the score head is always trained and saved in full."""

    r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    #: None: the model family's default (every linear layer but the output head for language models;
    #: for CLIP, the layers ``vlm_rewards.finetune`` names).
    target_modules: list[str] | str | None = None

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ConfigError(f"must be >= 1, got {self.r}", key="r")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"must be in [0, 1), got {self.lora_dropout}", key="lora_dropout")

    def peft_config(self, *, task_type: str | None = None, default_targets: list[str] | str = "all-linear",
                    modules_to_save: list[str] | None = None) -> Any:
        """The ``peft.LoraConfig`` (``task_type`` e.g. "CAUSAL_LM", "SEQ_CLS"; None for a plain module)."""
        from peft import LoraConfig

        return LoraConfig(
            task_type=task_type, r=self.r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
            target_modules=self.target_modules if self.target_modules is not None else default_targets,
            modules_to_save=modules_to_save,
        )


@dataclass
class TrainingSettings:
    """Optimisation settings (TRL argument names) for SFT and reward-model training."""

    learning_rate: float = 1e-5
    num_train_epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    lr_scheduler_type: str = "linear"
    warmup_steps: float = 0  # an integer count, or a fraction of the training steps below 1
    max_length: int = 1024
    seed: int = 0
    gradient_checkpointing: bool = False
    bf16: bool | None = None  # None: bf16 when a bf16-capable GPU is present, fp32 otherwise
    logging_steps: int = 10
    save_steps: int | None = None  # checkpoint every N steps so that a killed run resumes mid-training
    report_to: list[str] = field(default_factory=list)  # e.g. ["tensorboard"]

    def __post_init__(self) -> None:
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "logging_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", key=name)
        if self.learning_rate <= 0:
            raise ConfigError(f"must be > 0, got {self.learning_rate}", key="learning_rate")
        if self.num_train_epochs <= 0 and self.max_steps <= 0:
            raise ConfigError("set num_train_epochs > 0 or max_steps > 0", key="num_train_epochs")
        if self.save_steps is not None and self.save_steps < 1:
            raise ConfigError(f"must be >= 1 or null, got {self.save_steps}", key="save_steps")

    def trl_config(self, config_cls: type[T], output_dir: str | Path, **extra: Any) -> T:
        """``config_cls`` (``trl.SFTConfig``, ``RewardConfig``, ``GRPOConfig``) with these settings.

        Fields the TRL class does not have (``max_length`` for GRPO) are left out; ``extra`` sets more
        arguments (e.g. ``completion_only_loss=True``).
        """
        has_bf16_gpu = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        accepted = {f.name for f in dataclasses.fields(config_cls)}
        values = {k: v for k, v in dataclasses.asdict(self).items() if k in accepted}
        values.update(
            output_dir=str(output_dir),
            # transformers 5 renamed gradient_checkpointing (TRL defaults the old name to True); set the new one
            gradient_checkpointing=None,
            activation_checkpointing=self.gradient_checkpointing,
            bf16=self.bf16 if self.bf16 is not None else has_bf16_gpu,
            # Without a GPU, TrainingArguments re-initialises accelerate's state as single-process unless told
            # to use the CPU: under `accelerate launch`/torchrun on CPU each process would then train alone.
            use_cpu=not torch.cuda.is_available(),
            save_strategy="steps" if self.save_steps else "no",
            save_steps=self.save_steps or 500,
            report_to=self.report_to or "none",
        )
        return config_cls(**values, **extra)


@dataclass
class GRPOSettings(TrainingSettings):
    """GRPO (``trl.GRPOConfig`` names): sampling on top of the optimisation settings."""

    learning_rate: float = 1e-6
    max_steps: int = 20
    per_device_train_batch_size: int = 4  # completions per device and step; a multiple of num_generations
    num_generations: int = 4  # completions per prompt (the group GRPO normalizes over)
    max_completion_length: int = 48
    temperature: float = 1.0
    top_p: float = 1.0
    beta: float = 0.0  # KL coefficient; 0 skips the reference model
    logging_steps: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_generations < 2:
            raise ConfigError(f"GRPO needs >= 2 completions per prompt, got {self.num_generations}",
                              key="num_generations")
