"""Next-token choice probabilities: ask a causal LM a question with fixed answers, read the answer from its logits.

Every LM judge in the toolkit asks a question whose answer is one of a few words (InstructRM: yes or no;
``rlhf.preference.PairwiseLMJudge``: A or B; ``rlhf.behaviour``: is a shift intended, yes or no) and reads the
answer from the next-token distribution instead of generating and parsing a reply. This module is that one
way of doing it:

- :func:`answer_token_ids` / :func:`choice_token_ids`: the token ids that spell each answer (the spellings
  that are single tokens; a token two answers share counts for neither);
- :func:`resolve_chat_template` / :func:`format_prompt`: a question as one user turn of the tokenizer's chat
  template (instruction-tuned models answer far better that way), or as plain text followed by a cue
  such as ``"\\nAnswer:"`` when the tokenizer has no template;
- :func:`choice_probabilities`: p(choice) = the summed probability of its tokens, normalised over the
  choices (so the probability mass on unrelated tokens does not matter);
- :class:`NextTokenChoice`: all of it over a batch of prompts, in eval mode under ``torch.inference_mode``,
  left-padded with explicit position ids (the real tokens keep positions 0..n-1, so padding changes nothing),
  sorted by length into batches, the LM head computed at the last position only.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any

import torch

logger = logging.getLogger(__name__)

YES_SPELLINGS = (" Yes", "Yes", " yes", "yes", " YES", "YES")
NO_SPELLINGS = (" No", "No", " no", "no", " NO", "NO")
PLAIN_ANSWER_CUE = "\nAnswer:"


def resolve_chat_template(tokenizer: Any, requested: bool | None, who: str) -> bool:
    """Whether to wrap prompts in the chat template: ``requested``, or when None, whether the tokenizer has one.

    ``requested=True`` with a tokenizer that has no template raises, naming ``who`` (the judge or critic).
    """
    has_template = getattr(tokenizer, "chat_template", None) is not None
    if requested and not has_template:
        raise ValueError(f"{who}: use_chat_template=True but its tokenizer has no chat template")
    return has_template if requested is None else bool(requested)


def format_prompt(tokenizer: Any, text: str, *, chat: bool, cue: str = PLAIN_ANSWER_CUE) -> str:
    """The exact text the model continues: ``text`` as a user turn ending where the assistant answers
    (``chat=True``), or ``text + cue`` (plain models need the cue to know an answer comes next)."""
    if not chat:
        return text + cue
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)


def answer_token_ids(tokenizer: Any, spellings: Sequence[str]) -> list[int]:
    """Token ids of the spellings of an answer (" Yes", "Yes", "yes", ...) that are single tokens.

    Multi-token spellings are left out: their first token ("y", "Y") also starts unrelated words. If no
    spelling is a single token, the first token of the first spelling stands in.
    """
    if not spellings:
        raise ValueError("answer_token_ids: no spellings given")
    encoded = [tokenizer.encode(word, add_special_tokens=False) for word in spellings]
    if not encoded[0]:
        raise ValueError(f"answer_token_ids: {spellings[0]!r} encodes to no token")
    single = sorted({toks[0] for toks in encoded if len(toks) == 1})
    return single or [encoded[0][0]]


def choice_token_ids(tokenizer: Any, choices: Sequence[Sequence[str]], who: str = "choice") -> list[list[int]]:
    """Answer token ids per choice (each choice a list of spellings, see :func:`answer_token_ids`).

    A token that two choices share says nothing about which one the model means, so it is dropped from
    both; a choice left without a token raises, naming it.
    """
    if len(choices) < 2:
        raise ValueError(f"{who}: need at least 2 choices, got {len(choices)}")
    ids = [answer_token_ids(tokenizer, spellings) for spellings in choices]
    counts: dict[int, int] = {}
    for choice in ids:
        for t in set(choice):
            counts[t] = counts.get(t, 0) + 1
    ids = [[t for t in choice if counts[t] == 1] for choice in ids]
    for spellings, choice in zip(choices, ids):
        if not choice:
            raise ValueError(f"{who}: the tokenizer gives the answer {spellings[0]!r} no first token of its own "
                             f"(its spellings {list(spellings)} start with tokens other answers also start with)")
    return ids


def choice_probabilities(logits: torch.Tensor, choice_ids: Sequence[Sequence[int]]) -> torch.Tensor:
    """Next-token logits (..., vocab) to choice probabilities (..., n_choices) summing to 1.

    p(choice) is proportional to the summed probability of its tokens: a softmax over the choices of each
    choice's log-sum-exp of logits (the vocabulary's normaliser cancels). Computed in float32.
    """
    logits = logits.float()
    per_choice = torch.stack([torch.logsumexp(logits[..., list(ids)], dim=-1) for ids in choice_ids], dim=-1)
    return torch.softmax(per_choice, dim=-1)


def context_length(model: Any) -> int | None:
    """The model's context length from its config (``max_position_embeddings`` or GPT-2's ``n_positions``)."""
    config = getattr(model, "config", None)
    return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)


class NextTokenChoice:
    """A causal LM answering questions with one of a fixed set of answers, read from next-token logits.

    ``choices`` lists each answer's spellings, e.g. ``[YES_SPELLINGS, NO_SPELLINGS]`` or ``[["A"], ["B"]]``.
    ``use_chat_template=None`` wraps questions in the tokenizer's chat template when it has one (see
    :func:`resolve_chat_template`); plain prompts end with ``cue``. ``batch_size`` prompts go through one
    forward pass; prompts longer than ``max_length`` tokens (default: the model's context) keep their last
    tokens, where the question is, with a warning. ``who`` names the judge in errors and warnings.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        choices: Sequence[Sequence[str]],
        *,
        use_chat_template: bool | None = None,
        cue: str = PLAIN_ANSWER_CUE,
        batch_size: int = 8,
        max_length: int | None = None,
        who: str = "NextTokenChoice",
    ):
        if batch_size < 1:
            raise ValueError(f"{who}: batch_size must be >= 1, got {batch_size}")
        self.model, self.tokenizer, self.cue, self.batch_size, self.who = model, tokenizer, cue, batch_size, who
        self.chat = resolve_chat_template(tokenizer, use_chat_template, who)
        self.choice_ids = choice_token_ids(tokenizer, choices, who)
        self.max_length = max_length or context_length(model)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if self.pad_id is None:
            raise ValueError(f"{who}: the tokenizer has neither a pad token nor an eos token")

    def prompt(self, question: str) -> str:
        """The exact text the model continues for ``question`` (chat turn or ``question + cue``)."""
        return format_prompt(self.tokenizer, question, chat=self.chat, cue=self.cue)

    def ask(self, questions: Sequence[str]) -> torch.Tensor:
        """Choice probabilities (len(questions), n_choices) for questions formatted with :meth:`prompt`."""
        return self.probabilities([self.prompt(q) for q in questions])

    def probabilities(self, prompts: Sequence[str]) -> torch.Tensor:
        """Choice probabilities (len(prompts), n_choices) at the end of each already formatted prompt.

        Each row equals :func:`choice_probabilities` of a plain forward pass on that prompt alone.
        """
        prompts = list(prompts)
        if not prompts:
            raise ValueError(f"{self.who}: no prompts to score")
        bad = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
        if bad:
            raise TypeError(f"{self.who}: prompts[{bad[0]}] is {type(prompts[bad[0]]).__name__}, expected str")
        # A chat template writes its own special tokens; plain prompts get the tokenizer's usual ones.
        ids = self.tokenizer(prompts, add_special_tokens=not self.chat)["input_ids"]
        if any(len(x) == 0 for x in ids):
            raise ValueError(f"{self.who}: prompt {next(i for i, x in enumerate(ids) if not x)} is empty")
        if self.max_length:
            n_long = sum(len(x) > self.max_length for x in ids)
            if n_long:
                logger.warning("%s: %d of %d prompts longer than %d tokens; kept their last %d tokens",
                               self.who, n_long, len(ids), self.max_length, self.max_length)
                ids = [x[-self.max_length:] for x in ids]

        model = self.model
        device = next(model.parameters()).device
        keep_last = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths share a batch: less padding
        out = torch.empty(len(ids), len(self.choice_ids))
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(order), self.batch_size):
                    batch = order[start : start + self.batch_size]
                    input_ids, mask, positions = left_pad([ids[i] for i in batch], self.pad_id)
                    logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                   position_ids=positions.to(device), use_cache=False, **keep_last).logits[:, -1]
                    out[batch] = choice_probabilities(logits, self.choice_ids).cpu()
        finally:
            model.train(was_training)
        return out


def left_pad(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded ``(input_ids, attention_mask, position_ids)``; real tokens get positions 0..n-1 in every row."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, x in enumerate(ids):
        input_ids[row, width - len(x):] = torch.tensor(list(x), dtype=torch.long)
        mask[row, width - len(x):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return input_ids, mask, positions
