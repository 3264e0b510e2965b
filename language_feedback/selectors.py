"""Selectors: score candidate refinements of one output given the feedback on it, and pick the best.

Every selector implements one interface, :meth:`Selector.score`, over a batch of
:class:`SelectionItem` (one input, its initial output, the feedback, the candidates), so the ILF loop
and the diagnostics treat them alike:

- ``embedding``: cosine similarity between the feedback and each refinement (sentence-transformers).
- ``grounded``: the share of the context's content that the feedback points at which a refinement holds,
  minus the numbers and names it invents (for feedback on what an output left out of its source).
- ``instructrm``: a causal LM judges "does the new output incorporate the feedback?" in several
  phrasings; score = p(yes) / (p(yes) + p(no)) read from next-token logits (no generation), averaged.
- ``random``: seeded random scores (the baseline every selector must beat).
- ``reward_model``: any :class:`rlhf.reward.RewardModel` scoring (prompt, refinement).
- ``human``: the human refinement, when the data has one (an upper reference, not a learned selector).
"""

from __future__ import annotations

import inspect
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from language_feedback.prompts import instructrm_prompts
from language_feedback.text import split_sentences, words
from rlhf.lm_choice import (
    NO_SPELLINGS,
    PLAIN_ANSWER_CUE,
    YES_SPELLINGS,
    choice_probabilities,
    choice_token_ids,
    context_length,
    format_prompt,
    resolve_chat_template,
)
from rlhf.reward import PromptCompletion, RewardModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SelectionItem:
    """Candidates for one input. ``context`` is the input the outputs answer (a post, a task prompt)."""

    context: str
    initial: str
    feedback: str
    candidates: tuple[str, ...]
    human_refinement: str | None = None

    def __post_init__(self) -> None:
        if len(self.candidates) == 0:
            raise ValueError("SelectionItem needs at least one candidate")


class Selector(ABC):
    """Scores candidates (higher = better uses the feedback) and selects the best per item."""

    name: str = "selector"
    #: The ILF loop offers the human refinement as the (only) candidate when this is set.
    uses_human_refinement: bool = False

    @abstractmethod
    def score(self, items: Sequence[SelectionItem]) -> list[list[float]]:
        """One list of scores per item, one score per candidate, in candidate order."""

    def select(self, items: Sequence[SelectionItem]) -> list[int]:
        """Index of the best candidate per item (the first one on ties)."""
        return [max(range(len(s)), key=s.__getitem__) for s in self.score(items)]


def _flatten(items: Sequence[SelectionItem]) -> list[tuple[int, str]]:
    return [(i, c) for i, item in enumerate(items) for c in item.candidates]


def _unflatten(items: Sequence[SelectionItem], flat: Sequence[float]) -> list[list[float]]:
    out, pos = [], 0
    for item in items:
        out.append([float(x) for x in flat[pos : pos + len(item.candidates)]])
        pos += len(item.candidates)
    return out


class EmbeddingSimilaritySelector(Selector):
    """Cosine similarity between the feedback's and each candidate's sentence embedding."""

    name = "embedding"

    def __init__(self, embedder=None, batch_size: int = 64):
        if embedder is None or isinstance(embedder, str):
            from rlhf.models import load_sentence_embedder

            embedder = load_sentence_embedder(embedder or "all-minilm-l6-v2")
        self.embedder, self.batch_size = embedder, batch_size

    def _encode(self, texts: list[str]) -> torch.Tensor:
        return self.embedder.encode(
            texts, batch_size=self.batch_size, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False
        )

    def score(self, items: Sequence[SelectionItem]) -> list[list[float]]:
        flat = _flatten(items)
        feedback = self._encode([item.feedback for item in items])
        candidates = self._encode([c for _, c in flat])
        idx = torch.tensor([i for i, _ in flat])
        sims = (feedback[idx] * candidates).sum(-1)
        return _unflatten(items, sims.tolist())


class GroundedSelector(EmbeddingSimilaritySelector):
    """The content of the context that the feedback asks for, minus content the context does not hold.

    The embedding selector rewards the candidate that most resembles the feedback, and a remark about the summary
    ("The summary should say what the move cost.") resembles "You left out what the move cost." more than a
    summary that says it does (in the text quickstart's world it kept such remarks in 25% of the posts; they were
    14% of the refinements). This selector reads the feedback through the context instead:

    - the feedback attends over the context's sentences: softmax of their sentence-embedding similarity to the
      feedback, divided by ``temperature``;
    - a candidate scores, per sentence, the share of that sentence's content words it contains (stop words
      dropped; each word weighted by 1 / the number of sentences holding it, the feedback counted as one more,
      so the words that single the sentence out, such as its numbers and names, count most, and words a
      candidate could take from the feedback count less), summed with the attention as weights;
    - minus ``invented_penalty`` for each number or capitalised word (not opening a sentence) that the context
      does not hold, at most ``max_invented`` of them: entity-level precision against the source, the usual
      check that a summary invents nothing;
    - minus ``unacted_penalty`` if the candidate does not act on the feedback: it adds none of the numbers and
      names of the sentences the feedback attends to (attention >= ``min_attention``) that the earlier summary
      and the feedback lack (their other content words, when they hold no such number or name). The earlier
      summary itself is exempt: it is what a refinement must beat. A remark that echoes the feedback ("A reader
      wants to know what the tickets cost.") holds a word or two of the cost sentence, but not its amount. In
      the text quickstart's worlds (seeds 0 and 1, training refinements) half of what the selector kept without
      this rule lacked the cost (55 of 110, margin 0.1); with it, a quarter (23 of 91, no margin). Four such
      remarks among 17 kept refinements had taught one seed's model to answer every post with one.

    A remark that repeats the feedback's words scores little (they are not the context's), and so does a
    retelling of the parts the feedback is not about.
    """

    name = "grounded"

    def __init__(self, embedder=None, batch_size: int = 64, temperature: float = 0.05, invented_penalty: float = 0.5,
                 max_invented: int = 2, unacted_penalty: float = 1.0, min_attention: float = 0.02):
        super().__init__(embedder, batch_size)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature, self.invented_penalty, self.max_invented = temperature, invented_penalty, max_invented
        self.unacted_penalty, self.min_attention = unacted_penalty, min_attention

    @staticmethod
    def _content(text: str) -> set[str]:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        return {w for w in (w.lower().removesuffix("'s") for w in words(text)) if w not in ENGLISH_STOP_WORDS}

    @staticmethod
    def _entities(text: str) -> list[str]:
        """Numbers and capitalised words that do not open a sentence, lower-cased."""
        return [word.lower().removesuffix("'s") for sentence in split_sentences(text)
                for i, word in enumerate(words(sentence)) if word[:1].isdigit() or (i > 0 and word[:1].isupper())]

    def score(self, items: Sequence[SelectionItem]) -> list[list[float]]:
        sentences = [split_sentences(item.context) or [item.context] for item in items]
        feedback = self._encode([item.feedback for item in items])
        sentence_vectors = self._encode([s for ss in sentences for s in ss])
        out, start = [], 0
        for k, item in enumerate(items):
            vectors = sentence_vectors[start : start + len(sentences[k])]
            start += len(sentences[k])
            attention = torch.softmax(vectors @ feedback[k] / self.temperature, dim=0).tolist()
            content = [self._content(s) for s in sentences[k]]
            feedback_words = self._content(item.feedback)
            spread = {}
            for c in (*content, feedback_words):
                for w in c:
                    spread[w] = spread.get(w, 0) + 1
            weight = [{w: 1.0 / spread[w] for w in c} for c in content]
            context_words = {w.lower().removesuffix("'s") for w in words(item.context)}
            entities = set(self._entities(item.context))
            new = set().union(*(c for a, c in zip(attention, content) if a >= self.min_attention))
            new -= self._content(item.initial) | feedback_words
            asked_for = (new & entities) or new
            scores = []
            for candidate in item.candidates:
                have = self._content(candidate)
                coverage = sum(a * sum(v for w, v in ws.items() if w in have) / sum(ws.values())
                               for a, ws in zip(attention, weight) if ws)
                invented = min(sum(w not in context_words for w in self._entities(candidate)), self.max_invented)
                acted = not asked_for or bool(asked_for & have) or candidate.strip() == item.initial.strip()
                scores.append(coverage - self.invented_penalty * invented - self.unacted_penalty * (not acted))
            out.append(scores)
        return out


class InstructRMSelector(Selector):
    """A causal LM as a yes/no judge of whether a refinement incorporates the feedback.

    Each candidate gets several phrasings of the question; p(yes) and p(no) are next-token
    probabilities summed over spellings of "yes"/"no", and the score is p(yes) / (p(yes) + p(no))
    averaged over phrasings. No generation: one forward pass per batch, and the LM head only at the
    answer positions. The judge prompts of one item share most of their tokens (input, original
    output, feedback; then each candidate's prompts share it), so a row packs them as a token tree: the
    item's start once, then per candidate its refinement, then per phrasing its question, with an
    attention mask that lets each token see only its own prompt's earlier tokens, at the positions it
    has in that prompt. Each answer equals a plain forward pass on that judge prompt alone.
    ``batch_size`` is the number of candidates per forward pass.
    """

    name = "instructrm"

    def __init__(
        self, model, tokenizer, *, noun: str = "summary", batch_size: int = 8, use_chat_template: bool | None = None,
        phrasings: int = 0, progress: bool = True,
    ):
        self.model, self.tokenizer, self.noun, self.batch_size = model, tokenizer, noun, batch_size
        n_questions = len(instructrm_prompts("", "", "", ""))
        if not 0 <= phrasings <= n_questions:
            raise ValueError(f"InstructRM: phrasings must be between 1 and {n_questions} (0 = all), got {phrasings}")
        self.phrasings, self.progress = phrasings or n_questions, progress
        self.use_chat_template = resolve_chat_template(tokenizer, use_chat_template, "InstructRM")
        self.yes_ids, self.no_ids = choice_token_ids(tokenizer, [YES_SPELLINGS, NO_SPELLINGS], "InstructRM")
        if tokenizer.pad_token_id is None and tokenizer.eos_token_id is None:
            raise ValueError("InstructRM: the tokenizer has neither a pad token nor an eos token")

    def _format(self, prompt: str) -> str:
        # Chat models answer on the assistant turn, without the plain-text "Answer:" cue.
        question = prompt.removesuffix(PLAIN_ANSWER_CUE)
        return format_prompt(self.tokenizer, question, chat=self.use_chat_template, cue=PLAIN_ANSWER_CUE)

    def judge_inputs(self, items: Sequence[SelectionItem]) -> list[tuple[str, list[str]]]:
        """Per candidate (item-major): the shared prefix and one suffix per phrasing (question + answer cue).

        The judge prompts are ``prefix + suffix``; they are tokenized whole for scoring, so the split is only
        a readable grouping.
        """
        out = []
        for item in items:
            for c in item.candidates:
                full = [self._format(p) for p in
                        instructrm_prompts(item.context, item.initial, item.feedback, c, noun=self.noun)[: self.phrasings]]
                # Split before the question of the first phrasing: everything before it is common to all.
                cut = full[0].rfind("Question:")
                prefix = full[0][:cut]
                if cut < 0 or not all(f.startswith(prefix) for f in full):
                    raise ValueError("InstructRM: the judge prompts do not share a prefix ending before 'Question:'")
                out.append((prefix, [f[cut:] for f in full]))
        return out

    def prompts(self, items: Sequence[SelectionItem]) -> list[str]:
        """The full judge prompts (candidate-major, then phrasing), e.g. for asking the model to generate an answer."""
        return [prefix + s for prefix, suffixes in self.judge_inputs(items) for s in suffixes]

    @torch.no_grad()
    def yes_probabilities(self, inputs: Sequence[tuple[str, Sequence[str]]]) -> torch.Tensor:
        """p(yes) / (p(yes) + p(no)) per (prefix, suffixes) input and suffix: shape (len(inputs), n_suffixes).

        Each judge prompt ``prefix + suffix`` is tokenized whole, as it would be given to the model alone, and
        its value is the one a plain forward pass on it gives at its last token. Prompts that share their
        start (the phrasings of one candidate; the candidates of one item) are packed as a token tree, so
        the shared tokens are computed once (see :func:`_pack`); a start shared by every row of a forward
        pass (the chat template, the instructions) is computed once for all of them and passed as a KV cache.
        """
        tok, model = self.tokenizer, self.model
        n_suffixes = len(inputs[0][1])
        if any(len(s) != n_suffixes for _, s in inputs):
            raise ValueError("InstructRM: every input needs the same number of question phrasings")
        device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        prompts = self._tokenize(inputs)

        # Rows: candidates whose prompts share at least half their tokens (those of one item) share a row, up
        # to batch_size candidates; sorted token sequences put them next to each other.
        rows: list[list[int]] = []
        for i in sorted(range(len(prompts)), key=lambda i: prompts[i][0]):
            first = prompts[i][0]
            if (rows and len(rows[-1]) < self.batch_size
                    and 2 * _common_prefix_len(prompts[rows[-1][-1]][0], first) >= len(first)):
                rows[-1].append(i)
            else:
                rows.append([i])
        # Forward passes of up to batch_size candidates, rows of similar size together (little padding).
        sized = sorted(((row, len(_token_tree([p for i in row for p in prompts[i]])[0])) for row in rows),
                       key=lambda rs: -rs[1])
        batches: list[list[list[int]]] = []
        for row, _ in sized:
            if batches and sum(len(r) for r in batches[-1]) + len(row) <= self.batch_size:
                batches[-1].append(row)
            else:
                batches.append([row])

        forward_args = inspect.signature(model.forward).parameters
        out = torch.empty(len(inputs), n_suffixes)
        was_training = model.training
        model.eval()
        try:
            for batch in tqdm(batches, desc="instructrm", disable=not self.progress or len(batches) < 2):
                seqs = [[p for i in row for p in prompts[i]] for row in batch]
                # The start every sequence of every row shares (each keeps at least its last token in its row).
                shared = 0
                if len(batch) > 1:
                    shared = min(min(_common_prefix_len(seqs[0][0], p), len(p) - 1) for s in seqs for p in s)
                kwargs = _prefix_cache(model, seqs[0][0][:shared], len(batch), device) if shared >= 8 else None
                if kwargs is None:
                    kwargs, shared = {}, 0
                ids, mask, positions, read_at = _pack([_token_tree([p[shared:] for p in s]) for s in seqs], pad_id,
                                                      dtype, past=shared)
                keep = ids.shape[1] - int(read_at.min())  # the answers are read at the last positions of each row
                if "logits_to_keep" in forward_args:
                    kwargs["logits_to_keep"] = keep
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                               position_ids=positions.to(device), **kwargs).logits[:, -keep:]
                logits = logits[torch.arange(len(batch))[:, None], (read_at - (ids.shape[1] - keep)).to(device)]
                p = choice_probabilities(logits, [self.yes_ids, self.no_ids])[..., 0].cpu()  # p_yes / (p_yes + p_no)
                for b, row in enumerate(batch):
                    out[row] = p[b, : len(row) * n_suffixes].view(len(row), n_suffixes)
        finally:
            model.train(was_training)
        return out

    def _tokenize(self, inputs: Sequence[tuple[str, Sequence[str]]]) -> list[list[list[int]]]:
        """Token ids of every judge prompt (per input, per suffix), the start cut off those that exceed the context.

        A candidate's phrasings all lose the same number of tokens (they keep sharing their start); the
        end (outputs, feedback, question) is kept. Warns with the number of candidates cut.
        """
        tok, model = self.tokenizer, self.model
        n_suffixes = len(inputs[0][1])
        max_len = context_length(model)
        ids = tok([prefix + s for prefix, suffixes in inputs for s in suffixes])["input_ids"]
        prompts = [ids[i * n_suffixes : (i + 1) * n_suffixes] for i in range(len(inputs))]
        if not max_len:
            return prompts
        truncated = 0
        question_lens: dict[str, int] = {}
        for i, (_, suffixes) in enumerate(inputs):
            over = max(len(p) for p in prompts[i]) - max_len
            if over <= 0:
                continue
            for s in suffixes:
                if s not in question_lens:
                    question_lens[s] = len(tok(s, add_special_tokens=False)["input_ids"])
            if over >= min(len(p) - question_lens[s] for p, s in zip(prompts[i], suffixes)):
                raise ValueError(f"InstructRM: the questions alone exceed the model context of {max_len} tokens")
            prompts[i], truncated = [p[over:] for p in prompts[i]], truncated + 1
        if truncated:
            logger.warning("InstructRM: cut the start of %d of %d judge prompts to fit the model context of %d tokens",
                           truncated, len(inputs), max_len)
        return prompts

    def score(self, items: Sequence[SelectionItem]) -> list[list[float]]:
        return _unflatten(items, self.yes_probabilities(self.judge_inputs(items)).mean(-1).tolist())


def _common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _prefix_cache(model, ids: Sequence[int], copies: int, device) -> dict | None:
    """Forward kwargs carrying the KV cache of ``ids`` (one forward pass) repeated for ``copies`` rows.

    None when the model does not return a cache that can be repeated (then the rows recompute ``ids``).
    """
    params = inspect.signature(model.forward).parameters
    name = "cache" if "cache" in params else "past_key_values" if "past_key_values" in params else None
    if name is None:
        return None
    kwargs = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    out = model(input_ids=torch.tensor([list(ids)], device=device), use_cache=True, **kwargs)
    cache = getattr(out, name, None)
    if cache is None or not hasattr(cache, "batch_repeat_interleave"):
        return None
    cache.batch_repeat_interleave(copies)
    return {name: cache}


def _token_tree(seqs: Sequence[Sequence[int]]) -> tuple[list[int], list[int], list[int], list[int]]:
    """The prefix tree (trie) of token sequences: one node per distinct prefix, parents before children.

    Returns each node's token, parent (-1 for a root), and depth (its index in its sequences), and per
    sequence the node of its last token.
    """
    tokens: list[int] = []
    parents: list[int] = []
    depths: list[int] = []
    children: dict[tuple[int, int], int] = {}
    ends = []
    for seq in seqs:
        if not seq:
            raise ValueError("InstructRM: empty judge prompt")
        node = -1
        for t in seq:
            child = children.get((node, t))
            if child is None:
                child = children[(node, t)] = len(tokens)
                tokens.append(t)
                parents.append(node)
                depths.append(depths[node] + 1 if node >= 0 else 0)
            node = child
        ends.append(node)
    return tokens, parents, depths, ends


def _pack(trees: Sequence[tuple[list[int], list[int], list[int], list[int]]], pad_id: int, dtype: torch.dtype,
          past: int = 0):
    """Left-padded rows of token trees (from :func:`_token_tree`) with a 4D additive attention mask.

    A token sees itself and its ancestors only, at position ``past`` + its depth, so every sequence is
    computed exactly as if it were alone, while the tokens sequences share are computed once. ``past``
    tokens before the rows (a KV cache) are seen by every token. The nodes where sequences end are the
    last of each row (attention follows the mask, not the order), so the logits are only needed there.
    Returns ids (B, L), mask (B, 1, L, past + L), position ids (B, L), and the index of each sequence's
    last token (B, n_sequences); a row with fewer sequences repeats its last index.
    """
    length = max(len(tokens) for tokens, *_ in trees)
    n_reads = max(len(ends) for *_, ends in trees)
    ids = torch.full((len(trees), length), pad_id, dtype=torch.long)
    positions = torch.zeros((len(trees), length), dtype=torch.long)
    read_at = torch.zeros((len(trees), n_reads), dtype=torch.long)
    allowed = np.zeros((len(trees), length, past + length), dtype=bool)
    allowed[:, :, :past] = True
    allowed[:, np.arange(length), past + np.arange(length)] = True  # padding attends to itself: no all-masked row
    for r, (tokens, parents, depths, ends) in enumerate(trees):
        n = len(tokens)
        sees = np.zeros((n, n), dtype=bool)  # row i: the ancestors of node i and i itself
        for i, parent in enumerate(parents):
            if parent >= 0:
                sees[i] = sees[parent]
            sees[i, i] = True
        last = sorted(set(ends))
        order = sorted(set(range(n)) - set(last)) + last  # new index -> node
        where = np.empty(n, dtype=np.int64)
        where[order] = np.arange(n)  # node -> new index
        start = length - n
        ids[r, start:] = torch.tensor(tokens)[order]
        positions[r, start:] = torch.tensor(depths)[order] + past
        read_at[r] = torch.from_numpy(where[ends + ends[-1:] * (n_reads - len(ends))]) + start
        allowed[r, start:, past + start:] = sees[np.ix_(order, order)]
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~torch.from_numpy(allowed), torch.finfo(dtype).min)
    return ids, mask[:, None], positions, read_at


class RandomSelector(Selector):
    """Uniform random scores from a seeded generator."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)

    def score(self, items: Sequence[SelectionItem]) -> list[list[float]]:
        return [[self.rng.random() for _ in item.candidates] for item in items]


class RewardModelSelector(Selector):
    """Scores each candidate with a reward model on ``PromptCompletion(context, format_completion(candidate))``."""

    name = "reward_model"

    def __init__(self, reward_model: RewardModel, format_completion: Callable[[str], str] = lambda c: c, batch_size: int = 32):
        if not isinstance(reward_model, RewardModel):
            raise TypeError(f"reward_model must be an rlhf.reward.RewardModel, got {type(reward_model).__name__}")
        self.reward_model, self.format_completion, self.batch_size = reward_model, format_completion, batch_size
        self.name = f"reward_model({reward_model.name})"

    def score(self, items: Sequence[SelectionItem]) -> list[list[float]]:
        batch = [PromptCompletion(items[i].context, self.format_completion(c)) for i, c in _flatten(items)]
        scores = [s for k in range(0, len(batch), self.batch_size) for s in self.reward_model(batch[k : k + self.batch_size]).tolist()]
        return _unflatten(items, scores)


class HumanRefinementSelector(Selector):
    """Selects the human refinement: 1 for a candidate equal to it, 0 otherwise."""

    name = "human"
    uses_human_refinement = True

    def score(self, items: Sequence[SelectionItem]) -> list[list[float]]:
        missing = [i for i, item in enumerate(items) if not (item.human_refinement or "").strip()]
        if missing:
            raise ValueError(f"human selector: items {missing[:5]} have no human refinement in the data")
        return [[float(c.strip() == item.human_refinement.strip()) for c in item.candidates] for item in items]


#: name -> factory(**kwargs). Other tasks add their selectors here (e.g. unit tests for code).
SELECTORS: dict[str, Callable[..., Selector]] = {
    "embedding": EmbeddingSimilaritySelector,
    "grounded": GroundedSelector,
    "instructrm": InstructRMSelector,
    "random": RandomSelector,
    "reward_model": RewardModelSelector,
    "human": HumanRefinementSelector,
}


def make_selector(name: str, **kwargs) -> Selector:
    """Build a selector by name; an unknown name raises listing the known ones."""
    if name not in SELECTORS:
        raise ValueError(f"unknown selector {name!r}; known selectors: {', '.join(sorted(SELECTORS))}")
    return SELECTORS[name](**kwargs)


def _derangement(n: int, seed: int) -> list[int]:
    """A seeded permutation with no fixed point (every input gets another input's feedback)."""
    if n < 2:
        raise ValueError("the shuffled-feedback control needs at least 2 inputs")
    rng = random.Random(seed)
    while True:
        perm = list(range(n))
        rng.shuffle(perm)
        if all(i != p for i, p in enumerate(perm)):
            return perm


def selector_diagnostics(selector: Selector, items: Sequence[SelectionItem], *, seed: int = 0) -> dict:
    """Does ``selector`` use the feedback? Measured on inputs that have a human refinement.

    - ``true_rate``: fraction of inputs where it scores the human refinement above the initial output
      (ties count ½), with the real feedback; ``shuffled_rate``: the same with feedback shuffled across
      inputs. A selector that reads the feedback drops toward 0.5 on the shuffled control; one that
      stays high is rewarding something else (length, style).
    - ``length_spearman``: Spearman correlation between its scores and output length (characters).
    - ``human_longer_rate``: how often the human refinement is the longer text (what a pure length
      preference would score).
    Rates come with Wilson 95% intervals (``rlhf.metrics.win_rate``).
    """
    from scipy.stats import spearmanr

    from rlhf.metrics import win_rate

    missing = [i for i, item in enumerate(items) if not (item.human_refinement or "").strip()]
    if missing:
        raise ValueError(f"selector diagnostics need a human refinement for every input; items {missing[:5]} have none")
    perm = _derangement(len(items), seed)

    def pairs(feedbacks: Sequence[str]) -> list[SelectionItem]:
        return [
            SelectionItem(item.context, item.initial, fb, (item.initial, item.human_refinement))
            for item, fb in zip(items, feedbacks)
        ]

    def outcomes(scores: list[list[float]]) -> list[float]:
        return [1.0 if h > i else 0.5 if h == i else 0.0 for i, h in scores]

    true_scores = selector.score(pairs([item.feedback for item in items]))
    shuffled_scores = selector.score(pairs([items[p].feedback for p in perm]))
    true_rate = win_rate(outcomes(true_scores))
    shuffled_rate = win_rate(outcomes(shuffled_scores))
    lengths = [len(t) for item in items for t in (item.initial, item.human_refinement)]
    flat_scores = [s for pair in true_scores for s in pair]
    rho = spearmanr(flat_scores, lengths).statistic if len(set(flat_scores)) > 1 else float("nan")
    longer = [1.0 if len(item.human_refinement) > len(item.initial) else 0.5 if len(item.human_refinement) == len(item.initial)
              else 0.0 for item in items]
    return {
        "selector": selector.name, "n": len(items),
        "true_rate": true_rate.value, "true_low": true_rate.low, "true_high": true_rate.high,
        "shuffled_rate": shuffled_rate.value, "shuffled_low": shuffled_rate.low, "shuffled_high": shuffled_rate.high,
        "length_spearman": float(rho), "human_longer_rate": sum(longer) / len(longer),
    }
