"""Supervised fine-tuning on prompt → completion pairs with TRL's ``SFTTrainer`` (loss on completion tokens only).

Used for every ILF fine-tuning step: π_θ on prompt → selected refinement, and π_Refine on
(old output, feedback) → refinement. Examples are ``{"prompt": str, "completion": str}``; TRL
tokenizes ``prompt + completion + eos`` and, with ``completion_only_loss=True``, sets the labels of
the prompt tokens to -100, so only the completion (and its eos) is learned. LoRA goes through peft;
a LoRA model is merged before saving, so the saved directory is a plain model that
``from_pretrained`` / ``rlhf.models.load_causal_lm`` loads like any other.

Prompt/completion boundary: the prompt must end on a token boundary (e.g. end the prompt with
``":"`` and start the completion with ``"\\n"`` rather than splitting inside a whitespace run), or
TRL warns that the tokenized prompt is not a prefix of the tokenized prompt+completion.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rlhf.artifacts import atomic_path
from rlhf.sharding import check_launch, gather_model
from rlhf.training import LoraSettings, TrainingSettings

logger = logging.getLogger(__name__)

METADATA_FILE = "sft.json"

__all__ = ["build_sft_trainer", "sft", "validate_examples"]


def validate_examples(examples: Any, where: str = "examples") -> list[dict[str, str]]:
    """Check ``examples`` is a non-empty list of ``{"prompt": str, "completion": non-empty str}``; name the bad item."""
    if isinstance(examples, (str, Mapping)) or not isinstance(examples, Sequence):
        raise TypeError(f"{where}: expected a list of {{'prompt', 'completion'}} dicts, got {type(examples).__name__}")
    if len(examples) == 0:
        raise ValueError(f"{where}: no examples to train on")
    rows = []
    for i, ex in enumerate(examples):
        if not isinstance(ex, Mapping):
            raise TypeError(f"{where}[{i}]: expected a dict with 'prompt' and 'completion', got {type(ex).__name__}")
        for key in ("prompt", "completion"):
            if not isinstance(ex.get(key), str):
                raise TypeError(f"{where}[{i}].{key}: expected a string, got {type(ex.get(key)).__name__}")
        if not ex["completion"].strip():
            raise ValueError(f"{where}[{i}].completion: empty completion (nothing to learn)")
        rows.append({"prompt": ex["prompt"], "completion": ex["completion"]})
    return rows


def build_sft_trainer(
    model_or_path: Any,
    examples: Sequence[Mapping[str, str]],
    trainer_dir: str | Path,
    *,
    tokenizer: Any = None,
    lora: LoraSettings | None = None,
    settings: TrainingSettings | None = None,
    callbacks: list[Any] | None = None,
):
    """An ``SFTTrainer`` on a prompt–completion dataset with completion-only loss (what :func:`sft` trains with).

    ``callbacks`` are ``transformers.TrainerCallback`` objects handed to the trainer. Raises ``ConfigError`` when
    the launch asks for sharding it cannot have (:func:`rlhf.sharding.check_launch`).
    """
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from rlhf.models import resolve_model_path

    settings = settings or TrainingSettings()
    rows = validate_examples(examples)
    if isinstance(model_or_path, (str, Path)):
        model = resolve_model_path(model_or_path, "causal_lm")
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
    else:
        model = model_or_path
        if tokenizer is None:
            raise ValueError("tokenizer: required when a model object (not a path) is given")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = settings.trl_config(SFTConfig, trainer_dir, completion_only_loss=True)
    peft_config = lora.peft_config(task_type="CAUSAL_LM") if lora is not None else None
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
        peft_config=peft_config, callbacks=callbacks,
    )
    check_launch(trainer.accelerator)
    return trainer


def sft(
    model_or_path: Any,
    examples: Sequence[Mapping[str, str]],
    output_dir: str | Path,
    *,
    tokenizer: Any = None,
    lora: LoraSettings | None = None,
    trainer_dir: str | Path | None = None,
    settings: TrainingSettings | None = None,
    callbacks: list[Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune a causal LM on ``examples`` (prompt → completion, loss on completion tokens only).

    ``model_or_path`` is a local path, an embedded name (``rlhf.models``) or a model object (then pass
    ``tokenizer``). The trained model (merged, when ``lora`` is given) and tokenizer are written
    atomically to ``output_dir`` with ``sft.json`` (settings and metrics). Trainer checkpoints and
    TensorBoard logs go to ``trainer_dir`` (default ``<output_dir>.trainer``); with ``save_steps`` a
    rerun resumes from the last checkpoint. Under ``accelerate launch`` every process trains and the
    main process saves; under FSDP or ZeRO-3 the shards are gathered first (:func:`rlhf.sharding.gather_model`),
    so the saved model is complete. ``callbacks`` go to the trainer. Returns the metrics: examples, steps,
    training loss.
    """
    from transformers.trainer_utils import get_last_checkpoint

    settings = settings or TrainingSettings()
    output_dir = Path(output_dir)
    trainer_dir = Path(trainer_dir) if trainer_dir is not None else output_dir.with_name(output_dir.name + ".trainer")
    trainer = build_sft_trainer(model_or_path, examples, trainer_dir, tokenizer=tokenizer, lora=lora, settings=settings,
                                callbacks=callbacks)

    last = get_last_checkpoint(str(trainer_dir)) if trainer_dir.is_dir() else None
    if last:
        logger.info("resuming fine-tuning from %s", last)
    result = trainer.train(resume_from_checkpoint=last)
    metrics = {
        "n_examples": len(trainer.train_dataset),
        "train_steps": int(result.global_step),
        "train_loss": float(result.training_loss),
    }

    accelerator = trainer.accelerator
    model = gather_model(accelerator, trainer.model_wrapped)  # every process takes part; the main one gets the model
    if accelerator.is_main_process:
        if lora is not None:
            model = model.merge_and_unload()  # a plain model: loads without peft, generates at full speed
        with atomic_path(output_dir) as tmp:
            model.save_pretrained(str(tmp))
            trainer.processing_class.save_pretrained(str(tmp))
            meta = {
                "base_model": model_or_path if isinstance(model_or_path, (str, Path)) else type(model_or_path).__name__,
                "lora": asdict(lora) if lora is not None else None,
                "settings": asdict(settings),
                "metrics": metrics,
            }
            (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        for checkpoint in trainer_dir.glob("checkpoint-*"):
            shutil.rmtree(checkpoint, ignore_errors=True)  # the saved model supersedes them; TensorBoard logs stay
    accelerator.wait_for_everyone()
    return metrics
