"""Score frames across accelerate processes, one reward-model replica per process.

Every process holds the same frames (e.g. loaded from disk or rendered from the same seeds). Each
scores a contiguous shard (the first ``N mod world_size`` processes take one extra frame, as in
``PartialState.split_between_processes``), and the shards are gathered back so every process ends
with all N rewards in the original order, equal to what one process would compute.

Launch with e.g. ``accelerate launch --multi_gpu --num_processes 2 script.py`` and, on CPU,
``ACCELERATE_USE_CPU=1`` (gloo); on GPUs build the reward model on ``PartialState().device``.

For RL, where one learner (rank 0) asks for rewards step after step, :class:`LeaderScoring` is the
learner's reward model and :func:`serve_collective_scoring` keeps the other processes scoring their
shard of every batch until the learner stops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import gather

from rlhf.reward import RewardModel
from vlm_rewards.clip_models import frames_to_tensor
from vlm_rewards.clip_reward import CLIPReward


def shard_bounds(n: int, num_processes: int, process_index: int) -> tuple[int, int]:
    """``[start, end)`` of this process's contiguous shard of ``n`` items (earlier ranks take the extras)."""
    base, extra = divmod(n, num_processes)
    start = process_index * base + min(process_index, extra)
    return start, start + base + (1 if process_index < extra else 0)


def _gather_in_order(local: torch.Tensor, n: int, state: PartialState) -> torch.Tensor:
    """Gather uneven contiguous shards (shard sizes follow :func:`shard_bounds`) into one ``(n, ...)`` tensor."""
    longest = shard_bounds(n, state.num_processes, 0)[1]
    padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=state.device)
    padded[: local.shape[0]] = local.to(state.device)
    gathered = gather(padded).cpu()  # (num_processes * longest, ...), rank-major
    pieces = []
    for rank in range(state.num_processes):
        start, end = shard_bounds(n, state.num_processes, rank)
        pieces.append(gathered[rank * longest : rank * longest + (end - start)])
    return torch.cat(pieces)


def score_distributed(
    reward_model: CLIPReward, frames: Any, *, return_embeddings: bool = False, state: PartialState | None = None
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Rewards ``(N,)`` for ``frames`` (and unit image embeddings ``(N, D)`` if asked), float32 on CPU.

    Must be called by every process with the same frames. Works for any world size, including shards
    of unequal size and processes with no frames at all (N < world size). In a single process it is
    simply ``reward_model.score_with_embeddings(frames)``.
    """
    frames = frames_to_tensor(frames)
    n = frames.shape[0]
    state = state or PartialState()
    if state.num_processes == 1:
        rewards, embeddings = reward_model.score_with_embeddings(frames)
    else:
        start, end = shard_bounds(n, state.num_processes, state.process_index)
        if end > start:
            local_rewards, local_emb = reward_model.score_with_embeddings(frames[start:end])
        else:  # more processes than frames: this one only takes part in the gather
            dim = reward_model.goal_embedding.shape[0]
            local_rewards, local_emb = torch.zeros(0), torch.zeros(0, dim)
        rewards = _gather_in_order(local_rewards, n, state)
        embeddings = _gather_in_order(local_emb, n, state) if return_embeddings else None
    return (rewards, embeddings) if return_embeddings else rewards


class LeaderScoring(RewardModel):
    """The learner's reward model when scoring is sharded over processes: rank 0 calls it, all ranks score.

    ``collective_score(frames) -> rewards`` must be called by every process with the same frames (e.g.
    ``vlm_rewards.distributed.score_distributed``). On rank 0 each call broadcasts the uint8 frame batch,
    then runs the collective; the other processes run :func:`serve_collective_scoring` until
    :meth:`stop`. Needs an initialised ``torch.distributed`` process group (accelerate sets it up).
    """

    def __init__(self, collective_score: Callable[[torch.Tensor], torch.Tensor], name: str = "sharded_reward"):
        self.collective_score, self.name = collective_score, name

    def score(self, batch: Any) -> torch.Tensor:
        frames = torch.as_tensor(np.ascontiguousarray(batch))
        if frames.dtype != torch.uint8 or frames.ndim != 4:
            raise ValueError(f"{self.name}: expected uint8 frames (N, H, W, C) or (N, C, H, W), got {frames.dtype} "
                             f"{tuple(frames.shape)}")
        torch.distributed.broadcast(torch.tensor(frames.shape, dtype=torch.int64), src=0)
        torch.distributed.broadcast(frames, src=0)
        return self.collective_score(frames)

    def stop(self) -> None:
        """Release the serving processes."""
        torch.distributed.broadcast(torch.full((4,), -1, dtype=torch.int64), src=0)


def serve_collective_scoring(collective_score: Callable[[torch.Tensor], torch.Tensor]) -> int:
    """On ranks > 0: take part in every batch rank 0's :class:`LeaderScoring` scores; return the batch count."""
    served = 0
    while True:
        header = torch.empty(4, dtype=torch.int64)
        torch.distributed.broadcast(header, src=0)
        if header[0] < 0:
            return served
        frames = torch.empty(tuple(header.tolist()), dtype=torch.uint8)
        torch.distributed.broadcast(frames, src=0)
        collective_score(frames)
        served += 1
