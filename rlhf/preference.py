"""Bradley–Terry reward models: training through TRL's ``RewardTrainer`` and scoring text.

A comparison is ``{"prompt", "chosen", "rejected"}`` in TRL's standard format (strings) or its
conversational format (lists of chat messages). Training uses TRL's explicit-prompt preference format:
the trainer scores ``prompt + chosen + eos`` and ``prompt + rejected + eos`` (conversations: the chat
template of prompt + chosen messages) with an ``AutoModelForSequenceClassification`` (``num_labels=1``)
and minimises ``-log σ(r_chosen − r_rejected)``. The format trained on is recorded in
``reward_model.json`` (``prompt_format``), and :class:`PreferenceRewardModel` tokenizes exactly the same
way at inference, so a score means the same thing in training and in use; an item in the other format
is an error, not a silent flattening.

The sequence-classification head reads the hidden state at the rightmost non-pad token. For
that to be the last real token whatever the padding side, scoring passes explicit
``position_ids`` (left padding would otherwise shift GPT-2-style absolute positions) and sets
``config.pad_token_id`` to the tokenizer's pad token, as TRL does during training.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from rlhf.artifacts import atomic_path, iter_jsonl
from rlhf.lm_choice import NextTokenChoice, resolve_chat_template
from rlhf.metrics import outcomes_from_scores
from rlhf.models import resolve_model_path
from rlhf.reward import PromptCompletion, RewardModel
from rlhf.sharding import check_launch, gather_model
from rlhf.training import LoraSettings, TrainingSettings

logger = logging.getLogger(__name__)

COMPARISON_FIELDS = ("prompt", "chosen", "rejected")
METADATA_FILE = "reward_model.json"
PROMPT_FORMATS = ("text", "conversational")


def validate_comparisons(comparisons: Any, where: str = "comparisons") -> list[dict[str, str]]:
    """Check that every comparison has string ``prompt``, non-empty ``chosen`` and ``rejected``.

    Returns the comparisons as plain dicts holding only the three fields. Raises ``ValueError``
    naming the position (``where[i]``) and the field at fault.
    """
    if isinstance(comparisons, (str, bytes)) or not isinstance(comparisons, Sequence):
        raise TypeError(f"{where}: expected a list of {{'prompt','chosen','rejected'}} dicts, got {type(comparisons).__name__}")
    if len(comparisons) == 0:
        raise ValueError(f"{where}: no comparisons")
    return [_check_comparison(row, f"{where}[{i}]") for i, row in enumerate(comparisons)]


def _check_comparison(row: Any, where: str) -> dict[str, str]:
    if not isinstance(row, Mapping):
        raise TypeError(f"{where}: expected a dict with {COMPARISON_FIELDS}, got {type(row).__name__}")
    for key in COMPARISON_FIELDS:
        if key not in row or row[key] is None:
            raise ValueError(f"{where}: missing comparison field {key!r}")
    if all(isinstance(row[key], str) for key in COMPARISON_FIELDS):
        empty = [key for key in ("chosen", "rejected") if not row[key].strip()]
    elif all(_is_conversation(row[key]) for key in COMPARISON_FIELDS):
        empty = [key for key in ("chosen", "rejected") if not row[key] or not any(m["content"] for m in row[key])]
    else:
        kinds = {key: type(row[key]).__name__ for key in COMPARISON_FIELDS}
        raise TypeError(f"{where}: prompt, chosen and rejected must all be strings or all be lists of chat messages "
                        f"({{'role', 'content'}}), got {kinds}")
    if empty:
        raise ValueError(f"{where}: field {empty[0]!r} is empty")
    return {key: row[key] for key in COMPARISON_FIELDS}


def _is_conversation(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)


def prompt_format(comparisons: Sequence[Mapping[str, Any]]) -> str:
    """"conversational" for comparisons of chat messages, "text" for strings (all rows share one format)."""
    formats = {"conversational" if _is_conversation(r["prompt"]) else "text" for r in comparisons}
    if len(formats) > 1:
        raise ValueError("comparisons mix plain-text and conversational rows; use one format")
    return formats.pop()


def load_comparisons_jsonl(path: str | Path) -> list[dict[str, str]]:
    """Read comparisons from a JSONL file (one ``{"prompt","chosen","rejected"}`` object a line).

    A bad row raises ``ValueError`` naming the file and line.
    """
    out = [_check_comparison(row, where) for _, where, row in iter_jsonl(path)]
    if not out:
        raise ValueError(f"{path}: no comparisons")
    return out


def _ensure_pad_token(tokenizer: Any) -> None:
    # Same fallback as TRL's RewardTrainer, so training and scoring agree on what padding is.
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


class PreferenceRewardModel(RewardModel):
    """A Bradley–Terry reward model scoring ``PromptCompletion`` batches.

    ``model`` is a directory written by :func:`train_reward_model` (full model or LoRA adapter),
    any sequence-classification checkpoint with one label, or an already loaded model (then pass
    ``tokenizer``); one loaded from a directory goes to the current GPU when there is one. Text is
    scored as ``prompt + completion + eos``, as TRL trains it; inputs longer than ``max_length``
    tokens keep their last ``max_length`` tokens (the end is where the score is read) and a warning
    counts them.
    """

    def __init__(
        self,
        model: str | Path | Any,
        tokenizer: Any = None,
        *,
        batch_size: int = 8,
        max_length: int = 1024,
        device: str | torch.device | None = None,
        padding_side: str | None = None,
        name: str | None = None,
        prompt_format: str | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.prompt_format = prompt_format or "text"
        if isinstance(model, (str, Path)):
            path = Path(resolve_model_path(model, "reward_model"))
            self.model, loaded_tokenizer = _load_reward_model(path)
            tokenizer = tokenizer or loaded_tokenizer
            # A run directory's reward model is <output_dir>/model: name it after the run.
            self.name = name or f"rm_{path.parent.name if path.name == 'model' else path.name}"
            if prompt_format is None and (path / METADATA_FILE).is_file():
                self.prompt_format = json.loads((path / METADATA_FILE).read_text()).get("prompt_format", "text")
            if device is None and torch.cuda.is_available():
                device = torch.device("cuda", torch.cuda.current_device())  # accelerate sets it per process
        else:
            if tokenizer is None:
                raise ValueError("PreferenceRewardModel: pass `tokenizer` together with an already loaded model")
            self.model = model
            self.name = name or "preference_rm"
        if self.prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {self.prompt_format!r}")
        _ensure_pad_token(tokenizer)
        self.tokenizer = tokenizer
        self.model.config.pad_token_id = tokenizer.pad_token_id
        if device is not None:
            self.model.to(device)
        self.batch_size, self.max_length = batch_size, max_length
        self.padding_side = padding_side or tokenizer.padding_side
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _encode(self, item: PromptCompletion) -> list[int]:
        # Mirrors trl RewardTrainer._prepare_dataset: the chat template of prompt + completion messages for
        # conversations; otherwise prompt + completion text with EOS appended if missing.
        if item.conversational != (self.prompt_format == "conversational"):
            given = "chat messages" if item.conversational else "plain text"
            raise ValueError(
                f"{self.name} was trained on {self.prompt_format} prompts but was given {given}; score items in the "
                "format it was trained on (reward_model.json, prompt_format)")
        return encode(self.tokenizer, item.prompt, item.completion)

    def _collate(self, ids: list[list[int]]) -> dict[str, torch.Tensor]:
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, x in enumerate(ids):
            cols = slice(width - len(x), width) if self.padding_side == "left" else slice(0, len(x))
            input_ids[row, cols] = torch.tensor(x, dtype=torch.long)
            attention_mask[row, cols] = 1
        # Real tokens get positions 0..len-1 whatever the padding side, as in (right-padded) training.
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}

    def score(self, batch: Sequence[PromptCompletion]) -> torch.Tensor:
        for i, item in enumerate(batch):
            if not isinstance(item, PromptCompletion):
                raise TypeError(f"{self.name}: batch[{i}] is {type(item).__name__}, expected PromptCompletion")
        encoded = [self._encode(item) for item in batch]
        n_long = sum(len(x) > self.max_length for x in encoded)
        if n_long:
            logger.warning("%s: %d of %d inputs longer than %d tokens; kept their last %d tokens",
                           self.name, n_long, len(encoded), self.max_length, self.max_length)
            encoded = [x[-self.max_length:] for x in encoded]
        was_training = self.model.training
        self.model.eval()
        scores = []
        try:
            with torch.inference_mode():
                for start in range(0, len(encoded), self.batch_size):
                    inputs = {k: v.to(self.device) for k, v in self._collate(encoded[start:start + self.batch_size]).items()}
                    scores.append(self.model(**inputs, use_cache=False).logits[:, 0].float().cpu())
        finally:
            self.model.train(was_training)
        return torch.cat(scores)

    def score_texts(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
        """Convenience: score parallel lists of prompts and completions."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        return self([PromptCompletion(p, c) for p, c in zip(prompts, completions)])


def _load_reward_model(path: Path) -> tuple[Any, Any]:
    """Load a full sequence-classification reward model or a LoRA adapter (score head included)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    if not path.is_dir():
        raise FileNotFoundError(f"reward model directory {path} does not exist")
    if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
        inside = sorted({str(c.parent) for pattern in ("*/config.json", "*/adapter_config.json")
                         for c in path.glob(pattern)})
        hint = f"; the reward model inside it is {inside[0]}" if len(inside) == 1 else (
            f"; models inside it: {', '.join(inside[:5])}" if inside else "; train one with recipes/train_reward_model.py")
        raise FileNotFoundError(f"{path} is not a reward model directory (no config.json){hint}")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if (path / "adapter_config.json").exists():
        from peft import PeftModel

        base = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
        model = AutoModelForSequenceClassification.from_pretrained(resolve_model_path(base), num_labels=1)
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
        return model, tokenizer
    config = AutoConfig.from_pretrained(path)
    if config.num_labels != 1 or not any(a.endswith("ForSequenceClassification") for a in config.architectures or []):
        raise ValueError(
            f"{path} is not a reward model (architectures={config.architectures}, num_labels={config.num_labels}): "
            "train one with rlhf.preference.train_reward_model"
        )
    return AutoModelForSequenceClassification.from_pretrained(path), tokenizer


def preference_accuracy(rm: RewardModel, comparisons: Sequence[Mapping[str, str]]) -> float:
    """Fraction of comparisons where ``rm`` scores ``chosen`` above ``rejected`` (a tie counts ½)."""
    rows = validate_comparisons(comparisons)
    batch = [PromptCompletion(r["prompt"], r["chosen"]) for r in rows]
    batch += [PromptCompletion(r["prompt"], r["rejected"]) for r in rows]
    scores = rm(batch)
    return float(outcomes_from_scores(scores[: len(rows)].tolist(), scores[len(rows):].tolist()).mean())


def train_reward_model(
    model_name_or_path: str | Path,
    comparisons: Sequence[Mapping[str, str]],
    output_dir: str | Path,
    *,
    eval_comparisons: Sequence[Mapping[str, str]] | None = None,
    lora: LoraSettings | None = None,
    settings: TrainingSettings | None = None,
    trainer_dir: str | Path | None = None,
    callbacks: list[Any] | None = None,
) -> dict[str, Any]:
    """Train a Bradley–Terry reward model with TRL's ``RewardTrainer``; save it atomically to ``output_dir``.

    ``output_dir`` receives the model (or LoRA adapter with the score head), the tokenizer and
    ``reward_model.json`` (settings and metrics). Checkpoints and TensorBoard logs go to ``trainer_dir``
    (default ``<output_dir>.trainer/``); with ``settings.save_steps`` a rerun resumes from the last
    checkpoint. Returns metrics: training loss, sample counts (comparisons longer than
    ``max_length`` are dropped by TRL and counted), and, with ``eval_comparisons``, held-out
    accuracy before (``eval_accuracy_before``) and after (``eval_accuracy``) training.
    ``callbacks`` are ``transformers.TrainerCallback`` objects handed to the trainer. Under FSDP or ZeRO-3 the
    shards are gathered before saving (:func:`rlhf.sharding.gather_model`), so the saved model is complete.
    """
    from datasets import Dataset
    from transformers import AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint
    from trl import RewardConfig, RewardTrainer

    settings = settings or TrainingSettings(learning_rate=1e-4)
    train_rows = validate_comparisons(comparisons, "comparisons")
    eval_rows = validate_comparisons(eval_comparisons, "eval_comparisons") if eval_comparisons is not None else None
    model_path = resolve_model_path(model_name_or_path)
    output_dir = Path(output_dir)
    work_dir = Path(trainer_dir) if trainer_dir is not None else output_dir.with_name(output_dir.name + ".trainer")

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    _ensure_pad_token(tokenizer)
    n_kept = _count_within_max_length(tokenizer, train_rows, settings.max_length)
    if n_kept == 0:
        raise ValueError(f"comparisons: all {len(train_rows)} are longer than max_length={settings.max_length} tokens")
    if n_kept < len(train_rows):
        logger.warning("%d of %d training comparisons are longer than max_length=%d tokens; TRL drops them",
                       len(train_rows) - n_kept, len(train_rows), settings.max_length)

    config = settings.trl_config(RewardConfig, work_dir)
    peft_config = lora.peft_config(task_type="SEQ_CLS", modules_to_save=["score"]) if lora is not None else None
    trainer = RewardTrainer(
        model=model_path, args=config, train_dataset=Dataset.from_list(train_rows),
        processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks,
    )
    check_launch(trainer.accelerator)

    metrics: dict[str, Any] = {"n_train": len(train_rows), "n_train_used": n_kept}
    if eval_rows is not None:
        metrics["n_eval"] = len(eval_rows)
        metrics["eval_accuracy_before"] = preference_accuracy(_in_memory_rm(trainer, settings, eval_rows), eval_rows)

    last = get_last_checkpoint(str(work_dir)) if work_dir.is_dir() else None
    if last:
        logger.info("resuming reward-model training from %s", last)
    result = trainer.train(resume_from_checkpoint=last)
    metrics["train_loss"] = float(result.training_loss)
    metrics["train_steps"] = int(result.global_step)
    if eval_rows is not None:
        metrics["eval_accuracy"] = preference_accuracy(_in_memory_rm(trainer, settings, eval_rows), eval_rows)

    accelerator = trainer.accelerator
    # Under `accelerate launch` every process trains and takes part in gathering the model (sharded under FSDP or
    # ZeRO-3); the main process writes it: the full model, or the LoRA adapter with the score head.
    model = gather_model(accelerator, trainer.model_wrapped)
    if accelerator.is_main_process:
        with atomic_path(output_dir) as tmp:
            model.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
            meta = {
                "base_model": str(model_name_or_path),
                "base_model_path": model_path,
                "prompt_format": prompt_format(train_rows),
                "lora": asdict(lora) if lora is not None else None,
                "settings": asdict(settings),
                "metrics": metrics,
            }
            (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        for checkpoint in work_dir.glob("checkpoint-*"):
            shutil.rmtree(checkpoint, ignore_errors=True)  # the finished model supersedes them
        if work_dir.is_dir() and not any(work_dir.iterdir()):
            work_dir.rmdir()
    accelerator.wait_for_everyone()
    return metrics


def _in_memory_rm(trainer: Any, settings: TrainingSettings, rows: list[dict]) -> PreferenceRewardModel:
    return PreferenceRewardModel(trainer.model, trainer.processing_class, batch_size=settings.per_device_train_batch_size,
                                 max_length=settings.max_length, prompt_format=prompt_format(rows))


def encode(tokenizer: Any, prompt: Any, completion: Any) -> list[int]:
    """Token ids of one side of a comparison, as TRL's RewardTrainer tokenizes it: the chat template of the
    prompt and completion messages, or prompt + completion text with EOS appended if missing."""
    if isinstance(prompt, list):
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("conversational comparisons need a tokenizer with a chat template")
        return tokenizer.apply_chat_template(prompt + completion, tokenize=True, return_dict=True)["input_ids"]
    text = prompt + completion
    return tokenizer(text if text.endswith(tokenizer.eos_token) else text + tokenizer.eos_token)["input_ids"]


def _count_within_max_length(tokenizer: Any, rows: list[dict[str, Any]], max_length: int) -> int:
    """How many comparisons TRL keeps: both the chosen and the rejected side fit ``max_length`` tokens."""
    return sum(
        len(encode(tokenizer, r["prompt"], r["chosen"])) <= max_length
        and len(encode(tokenizer, r["prompt"], r["rejected"])) <= max_length
        for r in rows
    )


TIE_TOLERANCE = 1e-6
JUDGE_QUESTION = (
    "{prompt}\n\n{noun_title} A: {first}\n\n{noun_title} B: {second}\n\n"
    "Which {noun} is better, A or B? Answer with one letter."
)


class PairwiseLMJudge:
    """A causal LM asked which of two responses is better, read from its next-token logits (no generation).

    ``prob_first(prompts, first, second)`` is p(A) / (p(A) + p(B)) for the answer token right after
    the question (through the chat template when the tokenizer has one), computed by
    :class:`rlhf.lm_choice.NextTokenChoice`. ``preference`` asks in both orders and averages,
    p = ½(p_A(a, b) + 1 − p_A(b, a)), so a judge that always answers "A" (position bias) yields 0.5, a
    tie, instead of a fake preference. Prompts longer than ``max_length`` tokens keep their end (the question).
    """

    def __init__(self, model: str | Path | Any, tokenizer: Any = None, *, batch_size: int = 8, noun: str = "summary",
                 max_length: int = 2048):
        if isinstance(model, (str, Path)):
            from rlhf.models import load_causal_lm

            model, tokenizer = load_causal_lm(model, padding_side="left")
        elif tokenizer is None:
            raise ValueError("PairwiseLMJudge: pass `tokenizer` together with an already loaded model")
        _ensure_pad_token(tokenizer)
        self.model, self.tokenizer, self.noun = model, tokenizer, noun
        self.choice = self._answer_choice(batch_size, max_length)
        self.chat = self.choice.chat
        #: The token of the answer "A" and of "B" (one spelling each: the one that follows the prompt's end).
        self.answer_ids = tuple(ids[0] for ids in self.choice.choice_ids)

    def _answer_choice(self, batch_size: int, max_length: int) -> NextTokenChoice:
        # After "Answer:" the letter comes as " A"; tokenizers that split off the space get "A". A chat
        # model answers on a fresh assistant turn: "A".
        chat = resolve_chat_template(self.tokenizer, None, "PairwiseLMJudge")
        for a, b in (("A", "B"),) if chat else ((" A", " B"), ("A", "B")):
            try:
                return NextTokenChoice(self.model, self.tokenizer, [[a], [b]], batch_size=batch_size,
                                       max_length=max_length, who="PairwiseLMJudge")
            except ValueError:
                continue
        raise ValueError("PairwiseLMJudge: the tokenizer gives 'A' and 'B' the same first token")

    def _text(self, prompt: str, first: str, second: str) -> str:
        return self.choice.prompt(JUDGE_QUESTION.format(prompt=prompt.strip(), noun=self.noun,
                                                        noun_title=self.noun.title(), first=first.strip(),
                                                        second=second.strip()))

    def prob_first(self, prompts: Sequence[str], first: Sequence[str], second: Sequence[str]) -> torch.Tensor:
        """p(the judge answers A) / (p(A) + p(B)) for each (prompt, A = first, B = second)."""
        if not (len(prompts) == len(first) == len(second)):
            raise ValueError(f"PairwiseLMJudge: {len(prompts)} prompts, {len(first)} first and {len(second)} second")
        if len(prompts) == 0:
            raise ValueError("PairwiseLMJudge: empty batch")
        return self.choice.probabilities([self._text(p, a, b) for p, a, b in zip(prompts, first, second)])[:, 0]

    def preference(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> torch.Tensor:
        """Position-debiased probability that ``a`` is better than ``b``, per item."""
        return 0.5 * (self.prob_first(prompts, a, b) + 1.0 - self.prob_first(prompts, b, a))


def compare(judge: RewardModel | PairwiseLMJudge, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> list[float]:
    """Outcome of ``a`` against ``b`` per item, 1 (a better), 0.5 (tie) or 0, as ``rlhf.metrics.win_rate`` takes.

    A reward model compares ``rm(prompt, a)`` with ``rm(prompt, b)`` (texts are used as completions
    as given); an LM judge compares its debiased preference with ½.
    """
    if not (len(prompts) == len(a) == len(b)):
        raise ValueError(f"compare: {len(prompts)} prompts, {len(a)} a-texts and {len(b)} b-texts")
    if isinstance(judge, PairwiseLMJudge):
        # Within float rounding of ½ is a tie: identical texts give ½(p + 1 − p), not always exactly 0.5.
        p = judge.preference(prompts, a, b)
        return [0.5 if abs(x - 0.5) < TIE_TOLERANCE else float(x > 0.5) for x in p.tolist()]
    scores = judge([PromptCompletion(p, x) for p, x in zip(prompts, a)] + [PromptCompletion(p, x) for p, x in zip(prompts, b)])
    return outcomes_from_scores(scores[: len(prompts)].tolist(), scores[len(prompts):].tolist()).tolist()
