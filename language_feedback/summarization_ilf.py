"""Imitation learning from language feedback (ILF) for summarization (Scheurer et al. 2023).

One round, for a new batch of feedback samples, with the current model π:

1. ``initial``: π summarizes each post (what the model does before learning from this round).
2. ``refinements``: π writes K refinements of the summary the feedback is about, conditioned on post,
   summary and feedback (or without the feedback: the ablation).
3. ``selection``: a selector picks the refinement that best uses the feedback; comparisons
   (selected refinement ≻ summary the feedback is about) are written for reward-model training.
4. ``model``: π is fine-tuned (TRL SFTTrainer via :func:`language_feedback.finetune.sft`, completion-only
   loss, LoRA optional) on summarize-prompt → selected refinement for the samples of all rounds so far,
   starting from the previous round's model.

Every stage is a directory in the run directory written atomically; a rerun skips finished stages,
so a killed run resumes where it stopped (fine-tuning also resumes from trainer checkpoints when
``sft.save_steps`` is set).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from language_feedback.generation import check_vllm
from language_feedback.prompts import is_chat, refine_prompt, summarize_prompt, summary_completion
from language_feedback.selectors import SELECTORS, SelectionItem, Selector, make_selector
from language_feedback.summarization_data import (
    HUB_ID,
    SummaryFeedbackSample,
    feedback_samples,
    load_slf5k,
    subsample,
)
from language_feedback.text import split_sentences
from rlhf.artifacts import RunDir, read_jsonl, write_json_atomic, write_jsonl_atomic
from rlhf.behaviour import DriftSettings
from rlhf.config import ConfigError, run_identity, runtime_field
from rlhf.models import resolve_model_path
from rlhf.training import LoraSettings, TrainingSettings

logger = logging.getLogger(__name__)

# A summary is one paragraph; a blank line means the model moved on to something else.
STOP_STRINGS = ("\n\n",)
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class SummarizationILFSettings:
    """How ILF for summarization runs (the ``ilf`` section of the recipe's YAML)."""

    model: str = "smollm2-135m-instruct"
    rounds: int = 1
    samples_per_round: int = 16
    num_refinements: int = 4
    use_feedback: bool = True  # False: refinements without feedback (ablation)
    selector: str = "embedding"  # see language_feedback.selectors.SELECTORS
    embedder: str = "all-minilm-l6-v2"  # for selector=embedding or grounded
    judge_model: str = ""  # for selector=instructrm; "" = the current policy judges its own refinements
    reward_model: str = ""  # for selector=reward_model: a directory from rlhf.preference.train_reward_model
    #: Keep a sample only when the selector scores its best refinement above the summary the feedback is
    #: about (the analogue of ILF for code keeping only refinements that pass the tests): a weak model's
    #: failed refinements are then not imitated; a round that keeps none leaves the model as it was. Not with
    #: the human selector, whose only candidate is given.
    require_improvement: bool = False
    #: With ``require_improvement``: by how much (in the selector's units) the best refinement must outscore the
    #: initial summary. A refinement that barely differs from the summary it corrects teaches little.
    min_improvement: float = 0.0
    #: A refinement cut off at ``max_new_tokens`` before its end is no candidate: imitating it would teach the
    #: model to stop mid-sentence (TRL's ``mask_truncated_completions``, for imitation). Old runs' refinements
    #: without the record count as finished.
    skip_truncated: bool = False
    #: A refinement with more sentences than this is no candidate (None: any number): the request asks for a
    #: one-sentence summary, and imitating a retelling would teach the model to retell.
    max_sentences: int | None = None
    max_new_tokens: int = 64
    temperature: float = 0.7
    top_p: float = 0.95
    generation_batch_size: int = runtime_field(8)
    #: The weights' dtype for sampling ("auto": as stored; "bfloat16" sampled 1.5-1.8x faster on a CPU with
    #: AVX512-BF16); fine-tuning keeps fp32 weights (``sft.bf16`` sets its mixed precision).
    dtype: str = "auto"
    selector_batch_size: int = runtime_field(8)
    # vLLM samples the summaries and refinements instead of transformers (same prompts, stop strings and output
    # format; its own random draws); needs `pip install 'lf-rewards[vllm]'` and a GPU.
    use_vllm: bool = False
    vllm_gpu_memory_utilization: float = runtime_field(0.3)  # share of each GPU the vLLM engine may take
    max_prompt_tokens: int = 0  # 0 = the model's context length minus max_new_tokens
    lora: LoraSettings | None = None  # None: fine-tune every weight
    sft: TrainingSettings = field(default_factory=TrainingSettings)
    #: A drift report after every round (rlhf.behaviour.DriftSettings); None: off.
    drift: DriftSettings | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("rounds", "samples_per_round", "num_refinements", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", key=name)
        if self.max_sentences is not None and self.max_sentences < 1:
            raise ConfigError(f"must be >= 1 or null, got {self.max_sentences}", key="max_sentences")
        if self.min_improvement < 0 or (self.min_improvement and not self.require_improvement):
            raise ConfigError(f"a margin >= 0 that needs require_improvement: true, got {self.min_improvement}",
                              key="min_improvement")
        if self.selector not in SELECTORS:
            raise ConfigError(f"unknown selector {self.selector!r}; known selectors: {', '.join(sorted(SELECTORS))}",
                              key="selector")
        if self.selector == "reward_model" and not self.reward_model:
            raise ConfigError("selector 'reward_model' needs `reward_model`: a directory written by "
                              "train_reward_model", key="reward_model")
        if self.temperature <= 0:
            raise ConfigError(f"refinements are sampled: must be > 0, got {self.temperature}", key="temperature")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"must be in (0, 1], got {self.top_p}", key="top_p")
        if self.dtype not in DTYPES:
            raise ConfigError(f"one of {', '.join(DTYPES)}, got {self.dtype!r}", key="dtype")
        check_vllm(self.use_vllm)


@dataclass
class SummarizationILFConfig:
    """The ILF-for-summarization experiment: where the feedback data is, where the run goes, and the settings."""

    data: str = ""  # SLF5K-format JSONL file, directory of <split>.jsonl, or JeremyAlain/SLF5K
    split: str = "train"
    data_seed: int = 0  # which feedback samples are drawn (nested across sample counts)
    output_dir: str = "runs/ilf_summarize"
    ilf: SummarizationILFSettings = field(default_factory=SummarizationILFSettings)

    def __post_init__(self) -> None:
        if not self.data:
            raise ConfigError(
                "no data: pass an SLF5K-format JSONL file, a directory of <split>.jsonl files, or "
                f"{HUB_ID!r} where a dataset hub is reachable (e.g. recipes/data/slf5k_demo, a small synthetic "
                "demo set)", key="data")


@dataclass
class ILFResult:
    """Where a finished run put its artifacts."""

    run_dir: Path
    final_model: Path
    selected: list[Path]  # per round: selected.jsonl
    comparisons: list[Path]  # per round: feedback-derived comparisons.jsonl
    metrics: list[dict[str, Any]]


def context_length(model_path: str) -> int:
    """The model's maximum sequence length from its config."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path)
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        if getattr(config, attr, None):
            return int(getattr(config, attr))
    raise ValueError(f"{model_path}: the model config states no context length; set max_prompt_tokens")


def fit_posts(samples: Sequence[SummaryFeedbackSample], tokenizer, max_prompt_tokens: int) -> list[SummaryFeedbackSample]:
    """Cut posts so that the longest prompt (the refinement prompt) fits ``max_prompt_tokens``.

    The end of a post is cut, never the instruction, summary or feedback; a warning counts how many
    posts were cut.
    """
    out, cut = [], 0
    for s in samples:
        post_ids = tokenizer(s.post, add_special_tokens=False)["input_ids"]
        keep, post = len(post_ids), s.post
        while True:
            prompt = refine_prompt(s.title, post, s.generated_summary_for_feedback, s.feedback, tokenizer)
            n = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
            if n <= max_prompt_tokens:
                break
            keep -= n - max_prompt_tokens  # re-tokenizing a cut post can shift a token or two: loop until it fits
            if keep < 1:
                raise ValueError(
                    f"sample {s.id!r}: the prompt without its post already has more than {max_prompt_tokens} tokens "
                    "(title, summary and feedback too long); raise max_prompt_tokens or use a longer-context model"
                )
            post = tokenizer.decode(post_ids[:keep]).rstrip() + " ..."
        if post != s.post:
            cut += 1
            s = dataclasses.replace(s, post=post)
        out.append(s)
    if cut:
        logger.warning("truncated %d of %d posts to fit the prompt into %d tokens", cut, len(samples), max_prompt_tokens)
    return out


def chat_reply(text: str) -> str:
    """The answer in a chat model's reply: a first line that only introduces it (ends with ":", more follows)
    is dropped, and the answer ends at the first blank line after it."""
    lines = text.strip().split("\n")
    if len(lines) > 1 and lines[0].rstrip().endswith(":"):
        lines = lines[1:]
    return "\n".join(lines).strip().split("\n\n")[0].strip()


def generate_replies(model: Any, tokenizer: Any, prompts: Sequence[str], settings: SummarizationILFSettings, *,
                     n: int, temperature: float, seed: int, accelerator: Any = None,
                     max_new_tokens: int | None = None, return_finished: bool = False):
    """``n`` completions per prompt with the settings' sampling. A chat model's reply ends at the end of its
    turn or at the first blank line, and loses the line some chat models open with ("Here is the
    rewritten summary:"). With ``return_finished``, each reply is a pair ``(text, finished)``: False when it
    was cut off at ``max_new_tokens`` before its end."""
    from language_feedback.generation import generate

    chat = is_chat(tokenizer)
    outputs = generate(
        model, tokenizer, prompts, num_return_sequences=n, max_new_tokens=max_new_tokens or settings.max_new_tokens,
        temperature=temperature, top_p=settings.top_p, batch_size=settings.generation_batch_size, seed=seed,
        accelerator=accelerator, stop_strings=None if chat else list(STOP_STRINGS), return_finished=True,
    )

    def reply(text: str, finished: bool) -> tuple[str, bool]:
        if not chat:
            return text.strip(), finished
        return chat_reply(text), finished or "\n\n" in text.strip()  # the answer ended at a blank line

    replies = [[reply(*o) for o in outs] for outs in outputs]
    return replies if return_finished else [[text for text, _ in outs] for outs in replies]


def sample_from_row(row: dict) -> SummaryFeedbackSample:
    return SummaryFeedbackSample(**{f.name: row[f.name] for f in dataclasses.fields(SummaryFeedbackSample)})


def build_selector(cfg: SummarizationILFSettings, tokenizer: Any = None) -> Selector:
    """The selector the settings name (InstructRM with ``judge_model``); ``tokenizer`` is the policy's (the
    reward-model selector reads summaries in the policy's prompt format)."""
    if cfg.selector in ("embedding", "grounded"):
        return make_selector(cfg.selector, embedder=cfg.embedder)
    if cfg.selector == "instructrm":
        from rlhf.models import load_causal_lm

        model, tokenizer = load_causal_lm(cfg.judge_model)
        return make_selector("instructrm", model=model, tokenizer=tokenizer, batch_size=cfg.selector_batch_size)
    if cfg.selector == "random":
        return make_selector("random", seed=cfg.seed)
    if cfg.selector == "reward_model":
        from rlhf.preference import PreferenceRewardModel

        rm = PreferenceRewardModel(cfg.reward_model, batch_size=cfg.selector_batch_size)
        return make_selector("reward_model", reward_model=rm,
                             format_completion=partial(summary_completion, tokenizer=tokenizer))
    return make_selector(cfg.selector)  # "human", selectors registered by other tasks, or a clear error


def selection_items(samples: Sequence[SummaryFeedbackSample], candidates: Sequence[Sequence[str]], selector: Selector,
                    tokenizer: Any = None):
    """One SelectionItem per sample with non-empty, distinct candidates (None when there are none); the
    context is the summarize prompt in the format of ``tokenizer``'s model."""
    items = []
    for s, cands in zip(samples, candidates):
        if selector.uses_human_refinement:
            cands = [s.ideal_human_summary] if s.ideal_human_summary.strip() else []
        unique = tuple(dict.fromkeys(c for c in cands if c.strip()))
        items.append(
            SelectionItem(
                context=summarize_prompt(s.title, s.post, tokenizer), initial=s.generated_summary_for_feedback, feedback=s.feedback,
                candidates=unique, human_refinement=s.ideal_human_summary or None,
            ) if unique else None
        )
    return items


#: In a round's model stage that trained nothing (no sample selected yet): ``{"model": <the model it kept>}``.
UNCHANGED = "unchanged.json"


class SummarizationILF:
    """ILF rounds for summarization in a run directory; :meth:`run` executes (or resumes) every stage.

    ``samples`` are the feedback samples in the order to use them: round r uses samples
    ``[(r-1)·n, r·n)`` with n = ``settings.samples_per_round``. ``selector`` overrides the one named in the
    settings (e.g. a custom reward model). ``state`` is the accelerate ``Accelerator`` under ``accelerate
    launch`` (generation is sharded across processes). Stages: ``data`` (posts cut to fit the prompt), then
    per round ``round<r>/initial``, ``round<r>/refinements``, ``round<r>/selection``, ``round<r>/model``.
    With ``settings.drift``: ``drift/base`` (the base model's answers to the drift prompts) and, after each
    round, ``round<r>/drift`` (the new model's answers and the drift reports, see
    :class:`rlhf.behaviour.DriftSettings`); a run the reports stop raises :class:`rlhf.behaviour.DriftStop`, and
    so does its rerun. ``held_out`` are the posts the drift reports summarize (default: ``samples`` after
    the training ones).
    """

    def __init__(self, settings: SummarizationILFSettings, samples: Sequence[SummaryFeedbackSample],
                 output_dir: str | Path, *, state: Any = None, selector: Selector | None = None,
                 held_out: Sequence[SummaryFeedbackSample] | None = None):
        usable = feedback_samples(samples)  # empty feedback cannot be learned from: skipped with a counted warning
        needed = settings.rounds * settings.samples_per_round
        if len(usable) < needed:
            raise ValueError(
                f"ILF needs rounds × samples_per_round = {settings.rounds} × {settings.samples_per_round} = {needed} "
                f"samples with feedback, but only {len(usable)} of {len(samples)} have feedback"
            )
        self.settings, self.state, self.selector_override = settings, state, selector
        self.samples = usable[:needed]
        self.held_out: list[SummaryFeedbackSample] = []  # the posts the drift reports summarize
        if settings.drift is not None and settings.drift.task_prompts:
            train_ids = {s.id for s in self.samples}
            pool = list(held_out) if held_out is not None else [s for s in samples if s.id not in train_ids]
            if len(pool) < settings.drift.task_prompts:
                raise ValueError(f"drift.task_prompts = {settings.drift.task_prompts} held-out posts are needed for the "
                                 f"drift reports, but only {len(pool)} are there (pass more samples than rounds × "
                                 "samples_per_round, or lower drift.task_prompts)")
            self.held_out = pool[: settings.drift.task_prompts]
        self.base_model = resolve_model_path(settings.model, "causal_lm")
        self.run_dir = RunDir(output_dir, {
            "config": run_identity(settings), "sample_ids": [s.id for s in self.samples],
            "held_out_ids": [s.id for s in self.held_out],
            "selector_override": selector.name if selector is not None else None})
        self._policy: tuple[str, Any] | None = None  # (path, (model, tokenizer)) of the loaded model
        self._tokenizer: Any = None
        self._engine: tuple[str, Any] | None = None  # the same for a vLLM engine (use_vllm)

    @classmethod
    def from_config(cls, config: SummarizationILFConfig, state: Any = None) -> SummarizationILF:
        """Load and subsample the feedback data the config names."""
        samples = load_slf5k(config.data, config.split)
        drift_posts = config.ilf.drift.task_prompts if config.ilf.drift is not None else 0
        samples = subsample(samples, config.ilf.rounds * config.ilf.samples_per_round + drift_posts,
                            seed=config.data_seed)
        return cls(config.ilf, samples, config.output_dir, state=state)

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        """The base model's tokenizer: it fixes the prompt format (chat turns or "TL;DR:") of every round."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.base_model)
        return self._tokenizer

    def _model(self, path: str):
        """The model at ``path`` for generation, loaded once (a resumed run may need none)."""
        if self._policy is None or self._policy[0] != path:
            from rlhf.models import load_causal_lm

            device = str(self.state.device) if self.state is not None else None
            self._policy = (path, load_causal_lm(path, device=device, dtype=self.settings.dtype))
        return self._policy[1]

    def _generate(self, model_path: str, prompts: list[str], n: int, temperature: float, seed: int,
                  max_new_tokens: int | None = None, return_finished: bool = False):
        model, tokenizer = self._vllm_model(model_path) if self.settings.use_vllm else self._model(model_path)
        return generate_replies(model, tokenizer, prompts, self.settings, n=n, temperature=temperature, seed=seed,
                                accelerator=self.state, max_new_tokens=max_new_tokens, return_finished=return_finished)

    def _vllm_model(self, path: str):
        """A vLLM engine for the model at ``path`` (``use_vllm``), one at a time."""
        from language_feedback.generation import load_generation_model

        if self._engine is None or self._engine[0] != path:
            self._release_engine()
            self._engine = (path, load_generation_model(
                path, use_vllm=True, vllm_gpu_memory_utilization=self.settings.vllm_gpu_memory_utilization))
        return self._engine[1]

    def _release_engine(self) -> None:
        if self._engine is not None:
            self._engine[1][0].close()
            self._engine = None

    def model_path(self, round_: int) -> str:
        """The model before round ``round_`` (1-based): the base model, then each round's fine-tuned one."""
        if round_ == 1:
            return self.base_model
        trained = self.run_dir.stage_path(f"round{round_ - 1}/model")
        unchanged = trained / UNCHANGED
        return json.loads(unchanged.read_text())["model"] if unchanged.is_file() else str(trained)

    def batch(self, round_: int) -> list[SummaryFeedbackSample]:
        n = self.settings.samples_per_round
        data = [sample_from_row(r) for r in read_jsonl(self.run_dir.stage_path("data") / "samples.jsonl")]
        return data[(round_ - 1) * n : round_ * n]

    # -- stages -----------------------------------------------------------------------------------

    def data(self, out: Path) -> None:

        cfg = self.settings
        budget = cfg.max_prompt_tokens or context_length(self.base_model) - cfg.max_new_tokens
        tokenizer = self.tokenizer
        write_jsonl_atomic(out / "samples.jsonl", [dataclasses.asdict(s) for s in fit_posts(self.samples, tokenizer, budget)])
        write_jsonl_atomic(out / "held_out.jsonl", [dataclasses.asdict(s) for s in fit_posts(self.held_out, tokenizer, budget)])

    def initial(self, r: int, out: Path) -> None:
        """Greedy: the model's own summary before this round."""
        batch = self.batch(r)
        prompts = [summarize_prompt(s.title, s.post, self.tokenizer) for s in batch]
        outs = self._generate(self.model_path(r), prompts, 1, 0.0, self.settings.seed + 1000 * r)
        write_jsonl_atomic(out / "initial.jsonl", [
            {"id": s.id, "prompt": p, "summary": o[0]} for s, p, o in zip(batch, prompts, outs)])

    def refinements(self, r: int, out: Path) -> None:
        cfg, batch = self.settings, self.batch(r)
        prompts = [refine_prompt(s.title, s.post, s.generated_summary_for_feedback,
                                 s.feedback if cfg.use_feedback else None, self.tokenizer) for s in batch]
        outs = self._generate(self.model_path(r), prompts, cfg.num_refinements, cfg.temperature,
                              cfg.seed + 1000 * r + 1, return_finished=True)
        write_jsonl_atomic(out / "refinements.jsonl", [
            {"id": s.id, "prompt": p, "refinements": [text for text, _ in o], "finished": [f for _, f in o]}
            for s, p, o in zip(batch, prompts, outs)])

    def selection(self, r: int, out: Path) -> None:
        batch = self.batch(r)
        generated = read_jsonl(self.run_dir.stage_path(f"round{r}/refinements") / "refinements.jsonl")
        finished = [row.get("finished", [True] * len(row["refinements"])) for row in generated]
        candidates = [[text for text, done in zip(row["refinements"], done_flags) if self._candidate(text, done)]
                      for row, done_flags in zip(generated, finished)]
        chooser = self.selector_override or self._build_selector(r)
        items = selection_items(batch, candidates, chooser, self.tokenizer)
        kept = [i for i, item in enumerate(items) if item is not None]
        if len(kept) < len(items):
            logger.warning("round %d: %d of %d samples have no refinement that is a candidate (%s); skipped",
                           r, len(items) - len(kept), len(items), self._candidate_rule())
        if not kept:
            raise RuntimeError(f"round {r}: no refinement is a candidate ({self._candidate_rule()}); raise "
                               "max_new_tokens or max_sentences, or check the model")
        compare_initial = self.settings.require_improvement and not chooser.uses_human_refinement
        if compare_initial:  # the initial summary is scored as one more candidate, last
            scored = [dataclasses.replace(items[i], candidates=(*items[i].candidates, items[i].initial)) for i in kept]
        else:
            scored = [items[i] for i in kept]
        scores = chooser.score(scored)
        rows, comparisons = [], []
        for i, item_scores in zip(kept, scores):
            item = items[i]
            initial_score = item_scores.pop() if compare_initial else None
            best = max(range(len(item_scores)), key=item_scores.__getitem__)
            if initial_score is not None and item_scores[best] <= initial_score + self.settings.min_improvement:
                continue
            rows.append({"id": batch[i].id, "prompt": item.context, "selected": item.candidates[best],
                         "selector": chooser.name, "candidates": list(item.candidates), "scores": item_scores,
                         "initial_score": initial_score})
            if item.candidates[best].strip() != item.initial.strip():
                comparisons.append({"prompt": item.context,
                                    "chosen": summary_completion(item.candidates[best], self.tokenizer),
                                    "rejected": summary_completion(item.initial, self.tokenizer)})
        if compare_initial:
            logger.info("round %d: the selector prefers a refinement to the initial summary for %d of %d samples",
                        r, len(rows), len(kept))
            if not rows:  # an outcome, not an error: the ablations of a sweep at few samples end up here
                logger.warning("round %d: no refinement scored above its initial summary by more than "
                               "min_improvement=%s; nothing to imitate, the model stays as it was", r,
                               self.settings.min_improvement)
        write_jsonl_atomic(out / "selected.jsonl", rows)
        write_jsonl_atomic(out / "comparisons.jsonl", comparisons)

    def _candidate(self, text: str, finished: bool) -> bool:
        """Whether a refinement may be selected: not cut off (with ``skip_truncated``), not too many sentences."""
        s = self.settings
        return (finished or not s.skip_truncated) and (s.max_sentences is None
                                                       or len(split_sentences(text)) <= s.max_sentences)

    def _candidate_rule(self) -> str:
        s = self.settings
        return ", ".join(["non-empty"] + (["finished"] if s.skip_truncated else [])
                         + ([f"at most {s.max_sentences} sentence(s)"] if s.max_sentences is not None else []))

    def model(self, r: int, out: Path) -> None:
        """Fine-tune the previous round's model on every round's selected refinements so far."""
        from language_feedback.finetune import sft

        examples = [
            {"prompt": row["prompt"], "completion": summary_completion(row["selected"], self.tokenizer)}
            for k in range(1, r + 1)
            for row in read_jsonl(self.run_dir.stage_path(f"round{k}/selection") / "selected.jsonl")
        ]
        if not examples:  # nothing selected in any round so far: this round's model is the one before it
            write_json_atomic(out / UNCHANGED, {"model": self.model_path(r)})
            return
        self._policy = None  # free the generation copy before training
        self._release_engine()
        sft(self.model_path(r), examples, out, lora=self.settings.lora,
            trainer_dir=self.run_dir.path / f"round{r}" / "trainer", settings=self.settings.sft)

    def drift_samples(self, r: int, out: Path) -> None:
        """The answers of the model after round ``r`` (0: the base model) to the drift prompts, sampled as the
        refinements are (temperature, top_p) with the same seed for every snapshot."""
        cfg, drift = self.settings, self.settings.drift
        model_path = self.model_path(r + 1)
        held_out = [sample_from_row(row) for row in read_jsonl(self.run_dir.stage_path("data") / "held_out.jsonl")]
        prompts = [summarize_prompt(s.title, s.post, self.tokenizer) for s in held_out]
        texts = {"task": [o[0] for o in self._generate(model_path, prompts, 1, cfg.temperature, cfg.seed)]
                 if held_out else []}
        if drift.probes:
            answers = self._generate(model_path, drift.probe_prompts(self.tokenizer), 1, cfg.temperature, cfg.seed,
                                     max_new_tokens=drift.max_new_tokens)
            texts["probes"] = [a[0] for a in answers]
        write_json_atomic(out / "samples.json", texts)

    def drift(self, r: int, out: Path) -> None:
        """Round ``r``'s drift stage: the new model's answers, then reports against round r-1 and the base."""
        self.drift_samples(r, out)
        snapshots = {"base": self.run_dir.stage_path("drift/base")}
        snapshots.update({f"round_{k}": self.run_dir.stage_path(f"round{k}/drift") for k in range(1, r)})
        samples = {name: json.loads((path / "samples.json").read_text()) for name, path in snapshots.items()}
        samples[f"round_{r}"] = json.loads((out / "samples.json").read_text())
        if self.run_dir.is_main:
            self.settings.drift.reports(samples, out)

    def _build_selector(self, r: int) -> Selector:
        """The configured selector; InstructRM judges with ``judge_model`` or else the current policy."""
        cfg = self.settings
        if cfg.selector == "instructrm" and not cfg.judge_model:
            model, tokenizer = self._model(self.model_path(r))
            return make_selector("instructrm", model=model, tokenizer=tokenizer, batch_size=cfg.selector_batch_size)
        return build_selector(cfg, self.tokenizer)

    # -- driver -----------------------------------------------------------------------------------

    def stages(self) -> list[tuple[str, Any]]:
        """The named stages in order, each ``(name, build(out_dir))``."""
        drift = self.settings.drift is not None
        named = [("data", self.data)] + ([("drift/base", partial(self.drift_samples, 0))] if drift else [])
        for r in range(1, self.settings.rounds + 1):
            for step in ("initial", "refinements", "selection", "model") + (("drift",) if drift else ()):
                named.append((f"round{r}/{step}", partial(getattr(self, step), r)))
        return named

    def run(self) -> ILFResult:
        """Run (or resume) every stage; write and return the per-round metrics."""
        for name, build in self.stages():
            self.run_dir.stage(name, build)
            if name.endswith("/drift"):  # a finished report stops its rerun too
                self.settings.drift.check(self.run_dir.stage_path(name))
        metrics, n_train = [], 0
        for r in range(1, self.settings.rounds + 1):
            selected = read_jsonl(self.run_dir.stage_path(f"round{r}/selection") / "selected.jsonl")
            n_train += len(selected)
            metrics.append({"round": r, "n_selected": len(selected), "n_train_examples": n_train,
                            "mean_selected_score": (sum(max(row["scores"]) for row in selected) / len(selected)
                                                    if selected else None)})
        final = self.model_path(self.settings.rounds + 1)
        if self.run_dir.is_main:
            write_json_atomic(self.run_dir.path / "summary.json", {"final_model": final, "rounds": metrics})
        rounds = range(1, self.settings.rounds + 1)
        return ILFResult(
            self.run_dir.path, Path(final),
            [self.run_dir.stage_path(f"round{r}/selection") / "selected.jsonl" for r in rounds],
            [self.run_dir.stage_path(f"round{r}/selection") / "comparisons.jsonl" for r in rounds],
            metrics,
        )
