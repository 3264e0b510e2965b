"""One reward-model interface for every kind of reward (text or image).

A reward model is a callable that scores a batch of N items and returns a float tensor of
shape (N,), plus a ``name``. Subclasses implement :meth:`RewardModel.score`; ``__call__``
validates the result so that a broken model fails loudly instead of feeding NaNs or a
mis-shaped tensor into an RL loop. A model that declares ``may_skip`` may return NaN for an
item it does not score (TRL then ignores that item); for every other model NaN is an error.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

#: ``info`` key where a reward wrapper keeps the environment's own (ground-truth) reward when it replaces
#: or adds to it (``vlm_rewards.wrappers``); RL training (``rlhf.rl``) reads it to log the ground truth.
ORIGINAL_REWARD_KEY = "original_reward"


#: A conversation in TRL's conversational format: ``[{"role": "user", "content": "..."}, ...]``.
Conversation = list[dict[str, Any]]


@dataclass(frozen=True)
class PromptCompletion:
    """One text item for text reward models: the prompt and the model's completion.

    Both are plain strings (TRL's standard format) or conversations (TRL's conversational format: the prompt
    the system/user messages, the completion the assistant's). A reward model reads them in the format it was
    trained on; a Bradley–Terry model trained on conversations applies its tokenizer's chat template.
    """

    prompt: str | Conversation
    completion: str | Conversation

    @property
    def conversational(self) -> bool:
        return isinstance(self.prompt, list) or isinstance(self.completion, list)


class RewardModel(ABC):
    """Base class: ``rm(batch) -> torch.Tensor`` of shape ``(len(batch),)``, float, finite.

    ``may_skip``: True for a model that returns NaN for items it does not score (skipped items, e.g.
    programs a sandbox could not judge); ``as_trl_reward_func`` passes them to TRL as None.
    """

    name: str = "reward"
    may_skip: bool = False

    @abstractmethod
    def score(self, batch: Any) -> torch.Tensor:
        """Score a batch of N items; return a float tensor of shape (N,)."""

    def __call__(self, batch: Any) -> torch.Tensor:
        n = len(batch)
        if n == 0:
            raise ValueError(f"reward model {self.name!r}: empty batch")
        rewards = self.score(batch)
        return check_rewards(rewards, n, self.name, allow_nan=self.may_skip)

    def batch_metrics(self) -> dict[str, float]:
        """Scalars about the last batch scored, for logging (e.g. a pass rate); none by default."""
        return {}


def check_rewards(rewards: Any, n: int, name: str, *, allow_nan: bool = False) -> torch.Tensor:
    """Validate a reward tensor: float, shape (n,), no inf and no NaN (unless ``allow_nan``). Returns it (detached)."""
    if not isinstance(rewards, torch.Tensor):
        raise TypeError(f"reward model {name!r} returned {type(rewards).__name__}, expected torch.Tensor")
    if not rewards.is_floating_point():
        raise TypeError(f"reward model {name!r} returned dtype {rewards.dtype}, expected a float dtype")
    if rewards.shape != (n,):
        raise ValueError(f"reward model {name!r} returned shape {tuple(rewards.shape)} for a batch of {n}, expected ({n},)")
    bad = ~torch.isfinite(rewards)
    if allow_nan:
        bad &= ~torch.isnan(rewards)
    if bad.any():
        idx = bad.nonzero().flatten()[:5].tolist()
        raise ValueError(f"reward model {name!r} returned non-finite rewards at batch positions {idx}")
    return rewards.detach()


class FunctionReward(RewardModel):
    """Wrap a plain function ``f(batch) -> tensor | sequence of floats`` as a reward model."""

    def __init__(self, fn: Callable[[Any], Any], name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "function_reward")

    def score(self, batch: Any) -> torch.Tensor:
        out = self.fn(batch)
        return out if isinstance(out, torch.Tensor) else torch.as_tensor(out, dtype=torch.float32)


class WeightedSum(RewardModel):
    """Σ_i w_i · r_i(batch) over several reward models that accept the same batch."""

    def __init__(self, models: Sequence[RewardModel], weights: Sequence[float], name: str | None = None):
        if len(models) == 0:
            raise ValueError("WeightedSum needs at least one reward model")
        if len(models) != len(weights):
            raise ValueError(f"WeightedSum: {len(models)} models but {len(weights)} weights")
        for w in weights:
            if not math.isfinite(w):
                raise ValueError(f"WeightedSum: weight {w} is not finite")
        self.models, self.weights = list(models), [float(w) for w in weights]
        self.name = name or "+".join(f"{w:g}*{m.name}" for m, w in zip(self.models, self.weights))

    def score(self, batch: Any) -> torch.Tensor:
        return sum(w * m(batch).float() for m, w in zip(self.models, self.weights))


class RunningNormalization(RewardModel):
    """Normalize rewards by a running mean and standard deviation (Welford/Chan update).

    Statistics update on every call while ``update`` is True (training); set it to False to
    freeze them (evaluation). The first batch is normalized with its own statistics.
    """

    def __init__(self, model: RewardModel, eps: float = 1e-8, update: bool = True):
        self.model, self.eps, self.update = model, eps, update
        self.name = f"normalized({model.name})"
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count > 0 else 1.0

    def _update(self, x: torch.Tensor) -> None:
        n_b = x.numel()
        mean_b = float(x.mean())
        m2_b = float(((x - mean_b) ** 2).sum())
        total = self.count + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / total
        self.m2 += m2_b + delta**2 * self.count * n_b / total
        self.count = total

    def score(self, batch: Any) -> torch.Tensor:
        r = self.model(batch).double()
        if self.update:
            self._update(r)
        return ((r - self.mean) / (self.std + self.eps)).float()


def _check_text(value: Any, what: str) -> str | Conversation:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in value):
        return value
    raise TypeError(f"{what}: expected a string or a list of chat messages ({{'role', 'content'}}), "
                    f"got {type(value).__name__}")


def completion_text(completion: str | Conversation) -> str:
    """The text of a completion: the string itself, or the contents of its (assistant) messages joined."""
    return completion if isinstance(completion, str) else "".join(str(m["content"]) for m in completion)


def as_trl_reward_func(model: RewardModel) -> Callable[..., list[float | None]]:
    """Expose a text reward model as a TRL ``reward_funcs`` callable.

    TRL's GRPOTrainer/RLOOTrainer call ``f(prompts=..., completions=..., **dataset_columns)`` and
    log the result under ``f.__name__``. Prompts and completions reach the reward model as TRL gives them,
    strings or conversations, so that it can read them in the format it was trained on (never flattened; a
    conversational completion of a text prompt is its text).
    A skipped item (NaN from a ``may_skip`` model) becomes None, which TRL leaves out of the reward
    statistics and the advantages. When TRL passes ``log_metric`` (GRPOTrainer does), the model's
    :meth:`~RewardModel.batch_metrics` are logged as ``<name>/<metric>``.
    """

    def reward_func(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        batch = []
        for i, (p, c) in enumerate(zip(prompts, completions)):
            p, c = _check_text(p, f"prompts[{i}]"), _check_text(c, f"completions[{i}]")
            # A text prompt answered in messages: the reply's text continues the prompt, as TRL reads it.
            batch.append(PromptCompletion(p, completion_text(c) if isinstance(p, str) else c))
        rewards = [None if math.isnan(r) else r for r in model(batch).tolist()]
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            for key, value in model.batch_metrics().items():
                log_metric(f"{model.name}/{key}", float(value))
        return rewards

    reward_func.__name__ = model.name
    return reward_func
