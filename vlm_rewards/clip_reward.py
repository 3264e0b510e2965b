"""CLIP reward model (VLM-RM, Rocamonde et al. 2024): captions in, rewards for rendered frames out.

For a frame with unit image embedding ``s``, goal embedding ``g`` and baseline embedding ``b``
(each the mean of its prompts' unit text embeddings), the reward is

    R = 1 − ½ ‖(s − g) P‖²,   P = α · d dᵀ / ‖d‖² + (1 − α) · I,   d = g − b.

α = 0 gives 1 − ½‖s − g‖² (cosine similarity, shifted, for a single goal prompt); α = 1 keeps only
the component of s − g along the goal–baseline direction.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from open_clip import get_model_preprocess_cfg

from rlhf.reward import RewardModel

logger = logging.getLogger(__name__)
_WARNED_RANDOM: set[tuple[str, str]] = set()  # (reward model name, source) already warned about
from vlm_rewards.clip_models import FramePreprocessor, frames_to_tensor, load_open_clip


def _prompt_list(prompts: Sequence[str] | str | None, field: str) -> list[str]:
    if prompts is None:
        return []
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"{field}[{i}]: expected a non-empty string, got {p!r}")
    return prompts


class CLIPReward(RewardModel):
    """Reward model on an open_clip model: ``rm(frames) -> (N,) float32`` on CPU, in input order.

    Frames are uint8 ``(N, H, W, 3)`` or ``(N, 3, H, W)`` arrays/tensors of any size; they are
    preprocessed as tensors on the model's device and encoded in batches of ``batch_size``.
    Prompt embeddings are computed once and cached per prompt string, so changing ``alpha`` costs
    nothing and changing prompts encodes only prompts not seen before. The cache assumes the model's
    weights do not change; call :meth:`clear_text_cache` after training the model in place.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        goal_prompts: Sequence[str] | str,
        baseline_prompts: Sequence[str] | str | None = None,
        alpha: float = 0.0,
        *,
        batch_size: int = 32,
        device: str | torch.device | None = None,
        autocast: bool = False,
        name: str = "clip_reward",
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model.eval()
        if device is not None:
            self.model.to(device)
        self.device = next(self.model.parameters()).device
        if autocast and self.device.type != "cuda":
            raise ValueError(f"autocast is for CUDA devices; the model is on {self.device}")
        self.tokenizer, self.batch_size, self.autocast, self.name = tokenizer, batch_size, autocast, name
        self.preprocess = FramePreprocessor(get_model_preprocess_cfg(self.model), self.device)
        self._text_cache: dict[str, torch.Tensor] = {}
        self._alpha = 0.0
        self._goal_prompts: list[str] = []
        self._baseline_prompts: list[str] = []
        self.set_prompts(goal_prompts, baseline_prompts, alpha)

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike | dict,
        pretrained: str | None = None,
        *,
        goal_prompts: Sequence[str] | str | None = None,
        baseline_prompts: Sequence[str] | str | None = None,
        alpha: float | None = None,
        device: str | torch.device = "cpu",
        **kwargs: Any,
    ) -> CLIPReward:
        """Build from an architecture name + pretrained tag/file, a checkpoint directory (e.g. from
        :func:`vlm_rewards.finetune.finetune_clip`), or a config dict; see :func:`load_open_clip`.

        Prompts and ``alpha`` left as None come from the checkpoint when it stores the ones it was fine-tuned
        for (``finetune_clip(..., reward_prompts=...)``); ``alpha`` otherwise defaults to 0. A model with random
        weights (an architecture without ``pretrained``, or a config) logs a warning naming it, once.
        """
        clip = load_open_clip(source, pretrained, device=device)
        stored = clip.extra.get("reward", {})
        goal_prompts = goal_prompts if goal_prompts is not None else stored.get("goal_prompts")
        if goal_prompts is None:
            raise ValueError(f"goal_prompts: none given and {source} stores none; give at least one goal prompt")
        baseline_prompts = baseline_prompts if baseline_prompts is not None else stored.get("baseline_prompts")
        alpha = alpha if alpha is not None else stored.get("alpha", 0.0)
        name = kwargs.get("name", "clip_reward")
        if clip.random_weights and (name, str(source)) not in _WARNED_RANDOM:
            _WARNED_RANDOM.add((name, str(source)))
            what = "a model config" if isinstance(source, dict) else f"{source!r} without pretrained weights"
            logger.warning(
                "reward model %r has RANDOM weights (%s): its rewards carry no meaning until it is fine-tuned. "
                "Pass pretrained (a tag or a local weights file) or a fine-tuned checkpoint directory.", name, what)
        return cls(clip.model, clip.tokenizer, goal_prompts, baseline_prompts, alpha, device=device, **kwargs)

    # ---- prompts and α -------------------------------------------------------------------------

    @property
    def alpha(self) -> float:
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self.set_prompts(self._goal_prompts, self._baseline_prompts, value)

    @property
    def goal_prompts(self) -> list[str]:
        return list(self._goal_prompts)

    @property
    def baseline_prompts(self) -> list[str]:
        return list(self._baseline_prompts)

    def set_prompts(
        self,
        goal_prompts: Sequence[str] | str,
        baseline_prompts: Sequence[str] | str | None = None,
        alpha: float | None = None,
    ) -> None:
        """Set goal/baseline prompts (and α); only prompts not encoded before are encoded."""
        goal = _prompt_list(goal_prompts, "goal_prompts")
        baseline = _prompt_list(baseline_prompts, "baseline_prompts")
        alpha = self._alpha if alpha is None else float(alpha)
        if not goal:
            raise ValueError("goal_prompts: empty list; give at least one goal prompt")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if alpha > 0 and not baseline:
            raise ValueError(f"baseline_prompts: empty list, but alpha={alpha} > 0 needs at least one baseline prompt")
        g = self._mean_prompt_embedding(goal)
        direction = None
        if baseline:
            d = g - self._mean_prompt_embedding(baseline)
            norm = d.norm()
            if alpha > 0 and norm < 1e-6:
                raise ValueError(
                    "goal and baseline prompts have the same embedding; the goal–baseline line is undefined"
                )
            direction = d / norm if norm >= 1e-6 else None
        self._goal_prompts, self._baseline_prompts, self._alpha = goal, baseline, alpha
        self.goal_embedding, self.direction = g, direction

    def _mean_prompt_embedding(self, prompts: list[str]) -> torch.Tensor:
        missing = [p for p in dict.fromkeys(prompts) if p not in self._text_cache]
        context = getattr(self.tokenizer, "context_length", None)
        encode = getattr(self.tokenizer, "encode", None)
        for prompt in missing if context and encode else ():
            n = len(encode(prompt)) + 2  # start and end tokens
            if n > context:
                logger.warning("%s: prompt %r has %d tokens, more than the text tower's context of %d; CLIP reads "
                               "only its first %d tokens", self.name, prompt, n, context, context)
        if missing:
            with torch.inference_mode(), self._autocast():
                tokens = self.tokenizer(missing).to(self.device)
                emb = self.model.encode_text(tokens).float()
            for prompt, e in zip(missing, emb):
                if not torch.isfinite(e).all():
                    raise ValueError(f"text embedding of prompt {prompt!r} contains NaN/inf")
                self._text_cache[prompt] = F.normalize(e, dim=-1)
        return torch.stack([self._text_cache[p] for p in prompts]).mean(dim=0)

    def clear_text_cache(self) -> None:
        """Forget cached prompt embeddings and re-encode the current prompts (after the model changed)."""
        self._text_cache.clear()
        self.set_prompts(self._goal_prompts, self._baseline_prompts, self._alpha)

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.float16) if self.autocast else contextlib.nullcontext()

    # ---- scoring -------------------------------------------------------------------------------

    def embed(self, frames: Any) -> torch.Tensor:
        """Unit image embeddings ``(N, D)``, float32 on CPU, in input order."""
        return self._embed(frames).cpu()

    def _embed(self, frames: Any) -> torch.Tensor:
        frames = frames_to_tensor(frames)
        chunks = []
        with torch.inference_mode(), self._autocast():
            for start in range(0, frames.shape[0], self.batch_size):
                x = self.preprocess(frames[start : start + self.batch_size])
                emb = self.model.encode_image(x).float()
                bad = ~torch.isfinite(emb).all(dim=-1)
                if bad.any():
                    idx = (bad.nonzero().flatten() + start)[:5].tolist()
                    raise ValueError(f"{self.name}: image embeddings contain NaN/inf for frames {idx}")
                chunks.append(F.normalize(emb, dim=-1))
        return torch.cat(chunks)

    def reward_from_embeddings(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        """Rewards for image embeddings ``(N, D)`` (normalized here), float32 on CPU."""
        dim = self.goal_embedding.shape[0]
        if image_embeddings.ndim != 2 or image_embeddings.shape[1] != dim:
            raise ValueError(f"image_embeddings: expected shape (N, {dim}), got {tuple(image_embeddings.shape)}")
        if not torch.isfinite(image_embeddings).all():
            raise ValueError("image_embeddings contain NaN/inf")
        s = F.normalize(image_embeddings.to(self.device, torch.float32), dim=-1)
        u = s - self.goal_embedding
        sq = u.pow(2).sum(dim=-1)
        if self._alpha > 0:
            # ‖(1−α)u + α(u·d̂)d̂‖² = (1−α)²‖u‖² + α(2−α)(u·d̂)², without building the D×D projection.
            p = u @ self.direction
            sq = (1 - self._alpha) ** 2 * sq + self._alpha * (2 - self._alpha) * p.pow(2)
        return (1.0 - 0.5 * sq).float().cpu()

    def __call__(self, batch: Any) -> torch.Tensor:
        # Validate frames before RewardModel.__call__ takes len(), so bad input gets a frames error.
        return super().__call__(batch if isinstance(batch, _Precomputed) else frames_to_tensor(batch))

    def score(self, batch: Any) -> torch.Tensor:
        emb = batch.embeddings if isinstance(batch, _Precomputed) else self._embed(batch)
        return self.reward_from_embeddings(emb)

    def score_with_embeddings(self, frames: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rewards (N,), unit image embeddings (N, D))``, both float32 on CPU."""
        emb = self._embed(frames)
        return self(_Precomputed(emb)), emb.cpu()


class _Precomputed:
    """Image embeddings already computed; lets score_with_embeddings reuse RewardModel's checks."""

    def __init__(self, embeddings: torch.Tensor):
        self.embeddings = embeddings

    def __len__(self) -> int:
        return self.embeddings.shape[0]
