"""Best-of-N: keep, for each prompt, the candidate a reward model scores highest.

Candidates come from whatever generated them (``language_feedback.generation`` for text, a
sampler of your own); this module only scores and selects, so it works with any text
:class:`~rlhf.reward.RewardModel`. All candidates of all prompts are scored in one call, so a
batched reward model sees full batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rlhf.reward import PromptCompletion, RewardModel


@dataclass(frozen=True)
class Selection:
    """The chosen candidate for one prompt: its text, its position among the candidates, and every candidate's score."""

    best: str
    index: int
    scores: list[float]


def best_of_n(prompts: Sequence[str], candidates_per_prompt: Sequence[Sequence[str]], rm: RewardModel) -> list[Selection]:
    """For each prompt, score its candidates with ``rm`` and return the highest-scored one (first on ties).

    Raises ``ValueError`` when the number of candidate lists differs from the number of prompts, or
    when a prompt has no candidates (naming the prompt's index).
    """
    if isinstance(prompts, str) or isinstance(candidates_per_prompt, str):
        raise TypeError("best_of_n: pass a list of prompts and a list of candidate lists, not a single string")
    if len(prompts) != len(candidates_per_prompt):
        raise ValueError(f"best_of_n: {len(prompts)} prompts but {len(candidates_per_prompt)} candidate lists")
    if len(prompts) == 0:
        raise ValueError("best_of_n: no prompts")
    batch = []
    for i, (prompt, candidates) in enumerate(zip(prompts, candidates_per_prompt)):
        if isinstance(candidates, str):
            raise TypeError(f"best_of_n: candidates for prompt {i} is a string; expected a list of strings")
        if len(candidates) == 0:
            raise ValueError(f"best_of_n: prompt {i} has no candidates")
        batch.extend(PromptCompletion(prompt, c) for c in candidates)
    scores = rm(batch).tolist()
    selections, start = [], 0
    for candidates in candidates_per_prompt:
        own = scores[start:start + len(candidates)]
        start += len(candidates)
        index = max(range(len(own)), key=own.__getitem__)
        selections.append(Selection(best=candidates[index], index=index, scores=own))
    return selections
