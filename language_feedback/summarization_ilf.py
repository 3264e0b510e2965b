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
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from language_feedback.prompts import refine_prompt, summarize_prompt, summary_completion
from language_feedback.selectors import SELECTORS, SelectionItem, Selector, make_selector
from language_feedback.summarization_data import SummaryFeedbackSample, feedback_samples
from rlhf.artifacts import RunDir, read_jsonl, write_json_atomic, write_jsonl_atomic
from rlhf.training import LoraSettings, TrainingSettings

logger = logging.getLogger(__name__)

# A summary is one paragraph; a blank line means the model moved on to something else.
STOP_STRINGS = ("\n\n",)


@dataclass
class ILFConfig:
    """Settings of an ILF run (also the recipe's YAML schema)."""

    model: str = "smollm2-135m-instruct"
    rounds: int = 1
    samples_per_round: int = 16
    num_refinements: int = 4
    use_feedback: bool = True  # False: refinements without feedback (ablation)
    selector: str = "embedding"  # see language_feedback.selectors.SELECTORS
    embedder: str = "all-minilm-l6-v2"  # for selector=embedding
    judge_model: str = ""  # for selector=instructrm; "" = the current policy judges its own refinements
    reward_model: str = ""  # for selector=reward_model: a directory from rlhf.preference.train_reward_model
    max_new_tokens: int = 64
    temperature: float = 0.7
    top_p: float = 0.95
    generation_batch_size: int = 8
    selector_batch_size: int = 8
    max_prompt_tokens: int = 0  # 0 = the model's context length minus max_new_tokens
    use_lora: bool = False
    lora: LoraSettings = field(default_factory=LoraSettings)
    sft: TrainingSettings = field(default_factory=TrainingSettings)
    seed: int = 0


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
            n = len(tokenizer(refine_prompt(s.title, post, s.generated_summary_for_feedback, s.feedback))["input_ids"])
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


def sample_from_row(row: dict) -> SummaryFeedbackSample:
    return SummaryFeedbackSample(**{f.name: row[f.name] for f in dataclasses.fields(SummaryFeedbackSample)})


class _Policy:
    """The current model, loaded only when a stage needs it (a resumed run may need none)."""

    def __init__(self, path: str):
        self.path, self._loaded = path, None

    def unload(self) -> None:
        self._loaded = None

    def get(self):
        if self._loaded is None:
            from rlhf.models import load_causal_lm

            self._loaded = load_causal_lm(self.path)
        return self._loaded


def _generate(policy: _Policy, prompts: list[str], cfg: ILFConfig, n: int, temperature: float, seed: int, accelerator):
    from language_feedback.generation import generate

    model, tokenizer = policy.get()
    if accelerator is not None:
        model.to(accelerator.device)
    outputs = generate(
        model, tokenizer, prompts, num_return_sequences=n, max_new_tokens=cfg.max_new_tokens,
        temperature=temperature, top_p=cfg.top_p, batch_size=cfg.generation_batch_size, seed=seed,
        accelerator=accelerator, stop_strings=list(STOP_STRINGS),
    )
    return [[o.strip() for o in outs] for outs in outputs]


def build_selector(cfg: ILFConfig, policy: _Policy) -> Selector:
    """The configured selector; InstructRM judges with ``judge_model`` or else the current policy."""
    if cfg.selector == "embedding":
        return make_selector("embedding", embedder=cfg.embedder)
    if cfg.selector == "instructrm":
        model, tokenizer = _Policy(cfg.judge_model).get() if cfg.judge_model else policy.get()
        return make_selector("instructrm", model=model, tokenizer=tokenizer, batch_size=cfg.selector_batch_size)
    if cfg.selector == "random":
        return make_selector("random", seed=cfg.seed)
    if cfg.selector == "reward_model":
        if not cfg.reward_model:
            raise ValueError("selector 'reward_model' needs `reward_model`: a directory written by train_reward_model")
        from rlhf.preference import PreferenceRewardModel

        rm = PreferenceRewardModel(cfg.reward_model, batch_size=cfg.selector_batch_size)
        return make_selector("reward_model", reward_model=rm, format_completion=summary_completion)
    return make_selector(cfg.selector)  # "human", selectors registered by other tasks, or a clear error


def selection_items(samples: Sequence[SummaryFeedbackSample], candidates: Sequence[Sequence[str]], selector: Selector):
    """One SelectionItem per sample with non-empty, distinct candidates (None when there are none)."""
    items = []
    for s, cands in zip(samples, candidates):
        if selector.uses_human_refinement:
            cands = [s.ideal_human_summary] if s.ideal_human_summary.strip() else []
        unique = tuple(dict.fromkeys(c for c in cands if c.strip()))
        items.append(
            SelectionItem(
                context=summarize_prompt(s.title, s.post), initial=s.generated_summary_for_feedback, feedback=s.feedback,
                candidates=unique, human_refinement=s.ideal_human_summary or None,
            ) if unique else None
        )
    return items


def run_ilf(
    cfg: ILFConfig,
    samples: Sequence[SummaryFeedbackSample],
    run_dir: str | Path,
    *,
    accelerator=None,
    selector: Selector | None = None,
) -> ILFResult:
    """Run (or resume) ``cfg.rounds`` ILF rounds on ``samples`` (the feedback samples, in the order to use them).

    Round r uses samples ``[(r-1)·n, r·n)`` with n = ``cfg.samples_per_round``. ``selector`` overrides the
    one named in ``cfg`` (e.g. a custom reward model). Returns the artifact paths and per-round metrics.
    """
    from language_feedback.finetune import sft
    from rlhf.models import resolve_model_path

    # Fail on a bad selector setting before any generation, not after it.
    if selector is None and cfg.selector not in SELECTORS:
        make_selector(cfg.selector)  # raises naming the known selectors
    if selector is None and cfg.selector == "reward_model" and not cfg.reward_model:
        raise ValueError("selector 'reward_model' needs `reward_model`: a directory written by train_reward_model")
    main = accelerator is None or accelerator.is_main_process
    usable = feedback_samples(samples)  # empty feedback cannot be learned from: skipped with a counted warning
    needed = cfg.rounds * cfg.samples_per_round
    if len(usable) < needed:
        raise ValueError(
            f"ILF needs rounds × samples_per_round = {cfg.rounds} × {cfg.samples_per_round} = {needed} samples with "
            f"feedback, but only {len(usable)} of {len(samples)} have feedback"
        )
    usable = usable[:needed]
    run = RunDir(run_dir, {"config": dataclasses.asdict(cfg), "sample_ids": [s.id for s in usable],
                           "selector_override": selector.name if selector is not None else None})

    def stage(name: str, compute, write) -> Path:
        """Compute on every process (generation is sharded), write on the main one, atomically."""
        if not run.is_done(name):
            result = compute()
            if main:
                run.run_stage(name, lambda tmp: write(tmp, result))
            if accelerator is not None:
                accelerator.wait_for_everyone()
        return run.stage_path(name)

    base_model = resolve_model_path(cfg.model, "causal_lm")

    def write_data(tmp: Path, rows: list[dict]) -> None:
        write_jsonl_atomic(tmp / "samples.jsonl", rows)

    def fitted_samples() -> list[dict]:
        from transformers import AutoTokenizer

        budget = cfg.max_prompt_tokens or context_length(base_model) - cfg.max_new_tokens
        fitted = fit_posts(usable, AutoTokenizer.from_pretrained(base_model), budget)
        return [dataclasses.asdict(s) for s in fitted]

    data = [sample_from_row(r) for r in read_jsonl(stage("data", fitted_samples, write_data) / "samples.jsonl")]

    examples: list[dict[str, str]] = []  # grows round by round: every round trains on all samples so far

    def run_round(r: int, model_path: str) -> tuple[str, Path, dict[str, Any]]:
        batch = data[(r - 1) * cfg.samples_per_round : r * cfg.samples_per_round]
        policy = _Policy(model_path)
        seed = cfg.seed + 1000 * r
        summarize = [summarize_prompt(s.title, s.post) for s in batch]
        refine = [
            refine_prompt(s.title, s.post, s.generated_summary_for_feedback, s.feedback if cfg.use_feedback else None)
            for s in batch
        ]

        def write_initial(tmp: Path, outs: list[list[str]]) -> None:
            rows = [{"id": s.id, "prompt": p, "summary": o[0]} for s, p, o in zip(batch, summarize, outs)]
            write_jsonl_atomic(tmp / "initial.jsonl", rows)

        # Greedy: the model's own summary before this round.
        stage(f"round{r}/initial", lambda: _generate(policy, summarize, cfg, 1, 0.0, seed, accelerator), write_initial)

        def write_refinements(tmp: Path, outs: list[list[str]]) -> None:
            rows = [{"id": s.id, "prompt": p, "refinements": o} for s, p, o in zip(batch, refine, outs)]
            write_jsonl_atomic(tmp / "refinements.jsonl", rows)

        ref_dir = stage(
            f"round{r}/refinements",
            lambda: _generate(policy, refine, cfg, cfg.num_refinements, cfg.temperature, seed + 1, accelerator),
            write_refinements,
        )

        def select():
            candidates = [row["refinements"] for row in read_jsonl(ref_dir / "refinements.jsonl")]
            chooser = selector or build_selector(cfg, policy)
            items = selection_items(batch, candidates, chooser)
            kept = [i for i, item in enumerate(items) if item is not None]
            if len(kept) < len(items):
                logger.warning("round %d: %d of %d samples have no non-empty refinement; skipped",
                               r, len(items) - len(kept), len(items))
            if not kept:
                raise RuntimeError(f"round {r}: every refinement is empty; raise max_new_tokens or check the model")
            scores = chooser.score([items[i] for i in kept])
            return chooser.name, [(batch[i].id, items[i], s) for i, s in zip(kept, scores)]

        def write_selection(tmp: Path, result) -> None:
            name, chosen = result
            rows, comparisons = [], []
            for sample_id, item, scores in chosen:
                best = max(range(len(scores)), key=scores.__getitem__)
                rows.append({
                    "id": sample_id, "prompt": item.context, "selected": item.candidates[best], "selector": name,
                    "candidates": list(item.candidates), "scores": scores,
                })
                if item.candidates[best].strip() != item.initial.strip():
                    comparisons.append({
                        "prompt": item.context, "chosen": summary_completion(item.candidates[best]),
                        "rejected": summary_completion(item.initial),
                    })
            write_jsonl_atomic(tmp / "selected.jsonl", rows)
            write_jsonl_atomic(tmp / "comparisons.jsonl", comparisons)

        sel_dir = stage(f"round{r}/selection", select, write_selection)
        selected = read_jsonl(sel_dir / "selected.jsonl")
        # Each round adds its samples to the training set and continues from the previous round's model.
        examples.extend({"prompt": row["prompt"], "completion": summary_completion(row["selected"])} for row in selected)

        model_dir = run.stage_path(f"round{r}/model")
        if not run.is_done(f"round{r}/model"):
            policy.unload()  # free the generation copy before training
            sft(
                model_path, examples, model_dir, lora=cfg.lora if cfg.use_lora else None,
                trainer_dir=run.stage_path(f"round{r}/trainer"), settings=cfg.sft,
            )
        metrics = {
            "round": r, "n_selected": len(selected), "n_train_examples": len(examples),
            "mean_selected_score": sum(max(row["scores"]) for row in selected) / len(selected),
        }
        return str(model_dir), sel_dir, metrics

    model_path, selected_paths, comparison_paths, metrics = base_model, [], [], []
    for r in range(1, cfg.rounds + 1):
        model_path, sel_dir, round_metrics = run_round(r, model_path)
        selected_paths.append(sel_dir / "selected.jsonl")
        comparison_paths.append(sel_dir / "comparisons.jsonl")
        metrics.append(round_metrics)
    if main:
        write_json_atomic(run.path / "summary.json", {"final_model": model_path, "rounds": metrics})
    return ILFResult(run.path, Path(model_path), selected_paths, comparison_paths, metrics)
