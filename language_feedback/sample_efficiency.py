"""Sample efficiency of summarization ILF against its baselines: win rate vs. reference summaries at several
feedback-sample counts (``recipes/eval/ilf_sample_efficiency.py``).

For each count n (nested subsamples of the train split's feedback samples, ``data_seed``) and each method:

- ``ilf``: one ILF round on the n samples (:class:`language_feedback.summarization_ilf.SummarizationILF`);
- ``sft_human``: fine-tune on summarize-prompt → the people's ideal summaries of the same n posts;
- ``sft_initial``: fine-tune on summarize-prompt → the initial summaries the feedback was written on;
- ``best_of_n``: a Bradley–Terry reward model trained on the n samples' human comparisons picks the best of
  ``best_of`` samples of the base model (``rlhf.preference``, ``rlhf.best_of_n``);
- ``ilf_best_of_n``: the same reward model picks the best of ``best_of`` samples of the ILF model,

each method's greedy (or best-of) summaries of the test posts are judged against the test split's TL;DR
reference summaries by a judge reward model (``judge_reward_model``, or one trained here on all train
comparisons), giving a win rate with a 95% interval. The base model's zero-shot win rate is the n = 0 point.
A judge trained here has seen every best-of-N reward model's comparisons (at the largest count, exactly the
same ones), so the best-of-N points are optimistic (a warning says so). Every (method, n) is a stage of a
resumable run directory; ``sample_counts`` and ``methods`` are not part of the run's identity, so rerunning
with more counts or methods reuses the finished stages.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from transformers import AutoTokenizer

from language_feedback.finetune import sft
from language_feedback.prompts import summarize_prompt, summary_completion
from language_feedback.summarization_data import (
    SummaryFeedbackSample,
    comparisons,
    feedback_samples,
    load_slf5k,
    subsample,
)
from language_feedback.summarization_ilf import SummarizationILF, SummarizationILFSettings, generate_replies
from rlhf.artifacts import read_jsonl, write_csv_atomic, write_json_atomic, write_jsonl_atomic
from rlhf.best_of_n import best_of_n
from rlhf.config import ConfigError, run_identity
from rlhf.curves import save_figure
from rlhf.experiment import Experiment
from rlhf.metrics import outcomes_from_scores, win_rate
from rlhf.models import load_causal_lm, resolve_model_path
from rlhf.preference import PreferenceRewardModel, train_reward_model
from rlhf.reward import PromptCompletion
from rlhf.training import LoraSettings, TrainingSettings

logger = logging.getLogger(__name__)
METHODS = ("ilf", "sft_human", "sft_initial", "best_of_n", "ilf_best_of_n")


@dataclass
class SampleEfficiencyConfig:
    data: str = ""  # SLF5K-format directory with <train_split>.jsonl and <test_split>.jsonl
    train_split: str = "train"
    test_split: str = "test"
    sample_counts: list[int] = field(default_factory=lambda: [6, 12, 24])
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    data_seed: int = 0
    n_test: int = 0  # 0 = every test post
    best_of: int = 8
    temperature: float = 0.7  # for best-of-N samples
    judge_reward_model: str = ""  # "" = train a judge on all train comparisons (a stand-in for human raters)
    reward_lora: LoraSettings | None = None
    reward: TrainingSettings = field(
        default_factory=lambda: TrainingSettings(learning_rate=1e-4, num_train_epochs=2.0, per_device_train_batch_size=4))
    ilf: SummarizationILFSettings = field(default_factory=SummarizationILFSettings)
    output_dir: str = "runs/ilf_sample_efficiency"

    def __post_init__(self) -> None:
        if not self.data:
            raise ConfigError("no data: pass an SLF5K-format directory holding train.jsonl and test.jsonl "
                              "(e.g. recipes/data/slf5k_demo, a small synthetic demo set)", key="data")
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ConfigError(f"unknown method(s) {unknown}; known: {', '.join(METHODS)}", key="methods")
        for key in ("methods", "sample_counts"):
            values = getattr(self, key)
            if not values:
                raise ConfigError("name at least one entry", key=key)
            if len(set(values)) < len(values):
                raise ConfigError(f"{values}: an entry is repeated", key=key)


def identity(cfg: SampleEfficiencyConfig) -> dict:
    """Stages depend on every setting but the sweep's extent: a rerun with more counts or methods resumes the run."""
    return {k: v for k, v in run_identity(cfg).items() if k not in ("sample_counts", "methods")}


class SummarizationSampleEfficiency(Experiment):
    """The sweep as an experiment: :meth:`run` returns one row per (method, n) with its win rate and interval."""

    config: SampleEfficiencyConfig

    def __init__(self, config: SampleEfficiencyConfig):
        cfg = config
        self.train = load_slf5k(cfg.data, cfg.train_split)
        n_feedback = len(feedback_samples(self.train))
        bad = [n for n in cfg.sample_counts if not 1 <= n <= n_feedback]
        if bad:  # checked before any training, so a bad sweep fails in seconds rather than after the judge
            raise ConfigError(f"{bad} outside 1..{n_feedback}, the number of feedback samples in {cfg.data} split "
                              f"'{cfg.train_split}' (the base model is the n = 0 point)", key="sample_counts")
        if not cfg.judge_reward_model and {"best_of_n", "ilf_best_of_n"} & set(cfg.methods):
            logger.warning("the judge is trained on all train comparisons, a superset of every best-of-N reward "
                           "model's (the same set at n = %d): best-of-N win rates are optimistic; pass "
                           "judge_reward_model for an independent judge", n_feedback)
        test = [s for s in load_slf5k(cfg.data, cfg.test_split) if s.tldr_human_reference_summary.strip()]
        if not test:
            raise ConfigError(f"no post in {cfg.data} split '{cfg.test_split}' has a TL;DR reference summary",
                              key="test_split")
        self.test = test[: cfg.n_test] if cfg.n_test else test
        # Every prompt in the policy's format (chat turns for a chat model, else "TL;DR:"), as its ILF run asks.
        self.tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(cfg.ilf.model))
        self.test_prompts = [self.prompt_of(s) for s in self.test]
        self.references = [s.tldr_human_reference_summary for s in self.test]
        super().__init__(cfg, identity=identity(cfg))
        self.base = cfg.ilf.model

    # -- pieces -----------------------------------------------------------------------------------

    def summarize(self, model_path: str, n: int = 1) -> list[list[str]]:
        """Greedy summaries of the test posts (n = 1) or ``n`` sampled ones per post."""
        cfg = self.config
        model, tokenizer = load_causal_lm(model_path, dtype=cfg.ilf.dtype)
        outs = generate_replies(model, tokenizer, self.test_prompts, cfg.ilf, n=n,
                                temperature=0.0 if n == 1 else cfg.temperature, seed=cfg.data_seed)
        return [[o or "(empty)" for o in outs_i] for outs_i in outs]

    def _train_rm(self, rows: list[dict], out: Path) -> None:
        train_reward_model(self.base, rows, out / "rm", lora=self.config.reward_lora, settings=self.config.reward,
                           trainer_dir=out / "rm.trainer")

    def judge(self) -> PreferenceRewardModel:
        """The judge reward model: the given one, or one trained on every train comparison (a stage)."""
        if self.config.judge_reward_model:
            return PreferenceRewardModel(self.config.judge_reward_model)
        rows = comparisons(self.train, self.prompt_of, self.completion)
        return PreferenceRewardModel(self.run_dir.stage("judge", lambda out: self._train_rm(rows, out)) / "rm")

    def prompt_of(self, s: SummaryFeedbackSample) -> str:
        return summarize_prompt(s.title, s.post, self.tokenizer)

    def completion(self, summary: str) -> str:
        return summary_completion(summary, self.tokenizer)

    def reward_model(self, n: int, rows: list[dict]) -> PreferenceRewardModel:
        return PreferenceRewardModel(self.run_dir.stage(f"n{n}/rm", lambda out: self._train_rm(rows, out)) / "rm")

    def ilf_model(self, n: int, samples: list[SummaryFeedbackSample]) -> str:
        """One ILF round on the n samples; a stage of its own, shared by ``ilf`` and ``ilf_best_of_n``."""
        settings = dataclasses.replace(self.config.ilf, rounds=1, samples_per_round=len(samples))
        stage = self.run_dir.stage(f"n{n}/ilf_model",
                                   lambda out: SummarizationILF(settings, samples, out / "run").run())
        return str(stage / "run" / "round1" / "model")

    def fine_tuned(self, examples: list[dict], out: Path) -> list[str]:
        cfg = self.config
        sft(self.base, examples, out / "model", lora=cfg.ilf.lora, trainer_dir=out / "trainer", settings=cfg.ilf.sft)
        return [o[0] for o in self.summarize(str(out / "model"))]

    def best_of(self, model_path: str, rm: PreferenceRewardModel) -> list[str]:
        samples = self.summarize(model_path, n=self.config.best_of)
        picks = best_of_n(self.test_prompts, [[self.completion(c) for c in cands] for cands in samples], rm)
        return [p.best.strip() for p in picks]

    def method_summaries(self, method: str, n: int, samples: list[SummaryFeedbackSample], out: Path) -> list[str]:
        """The test summaries of one method trained on the n feedback samples."""
        human_rows = comparisons(samples, self.prompt_of, self.completion)
        if method == "ilf":
            return [o[0] for o in self.summarize(self.ilf_model(n, samples))]
        if method == "sft_human":
            return self.fine_tuned([{"prompt": self.prompt_of(s), "completion": self.completion(s.ideal_human_summary)}
                                    for s in samples if s.ideal_human_summary.strip()], out)
        if method == "sft_initial":
            return self.fine_tuned([{"prompt": self.prompt_of(s),
                                     "completion": self.completion(s.generated_summary_for_feedback)}
                                    for s in samples], out)
        if method == "best_of_n":
            return self.best_of(self.base, self.reward_model(n, human_rows))
        return self.best_of(self.ilf_model(n, samples), self.reward_model(n, human_rows))  # ilf_best_of_n

    # -- driver -----------------------------------------------------------------------------------

    def run(self) -> list[dict]:
        cfg = self.config
        judge = self.judge()
        reference_scores = judge([PromptCompletion(p, self.completion(r))
                                  for p, r in zip(self.test_prompts, self.references)])

        def score_stage(name: str, make_summaries) -> dict:
            """Write the method's test summaries and judged outcomes (once), return its win rate."""

            def build(out: Path) -> None:
                summaries = make_summaries(out)
                scores = judge([PromptCompletion(p, self.completion(s)) for p, s in zip(self.test_prompts, summaries)])
                outcomes = outcomes_from_scores(scores.tolist(), reference_scores.tolist()).tolist()
                write_jsonl_atomic(out / "summaries.jsonl", [
                    {"id": s.id, "summary": summ, "reference": ref, "outcome": o}
                    for s, summ, ref, o in zip(self.test, summaries, self.references, outcomes)
                ])
                for leftover in ("model", "trainer"):  # fine-tuned weights are not needed once the summaries exist
                    shutil.rmtree(out / leftover, ignore_errors=True)

            outcomes = [row["outcome"] for row in read_jsonl(self.run_dir.stage(name, build) / "summaries.jsonl")]
            return dataclasses.asdict(win_rate(outcomes))

        results = [{"method": "base", "n": 0,
                    **score_stage("base", lambda out: [o[0] for o in self.summarize(self.base)])}]
        logger.info("base n=0: win rate vs reference %.2f", results[0]["value"])
        sample_ids = {}
        for n in cfg.sample_counts:
            samples = subsample(self.train, n, seed=cfg.data_seed)
            sample_ids[n] = [s.id for s in samples]
            for method in cfg.methods:
                estimate = score_stage(f"n{n}/{method}",
                                       lambda out, m=method, n=n, s=samples: self.method_summaries(m, n, s, out))
                results.append({"method": method, "n": n, **estimate})
                logger.info("%s n=%d: win rate vs reference %.2f", method, n, estimate["value"])
        out = Path(cfg.output_dir)
        write_csv_atomic(out / "results.csv", results)
        write_json_atomic(out / "results.json", {"judge": str(judge.name), "n_test": len(self.test), "results": results,
                                                 "sample_ids": sample_ids})
        plot_sample_efficiency(results, out / "sample_efficiency.png")
        return results


def result_line(row: dict, n_test: int) -> str:
    """One (method, n) point as the recipe prints it."""
    return (f"{row['method']} n={row['n']}: win rate vs reference {row['value']:.2f} [{row['low']:.2f}, "
            f"{row['high']:.2f}] (n_test={n_test})")


def plot_sample_efficiency(results: list[dict], path: Path) -> None:
    """Win rate (with its interval) against feedback samples, one line per method, the base model as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    base = results[0]
    ax.axhspan(base["low"], base["high"], color="gray", alpha=0.15)
    ax.axhline(base["value"], color="gray", ls="--", lw=1, label="base model (n = 0)")
    for k, method in enumerate(dict.fromkeys(r["method"] for r in results[1:])):
        rows = sorted((r for r in results if r["method"] == method), key=lambda r: r["n"])
        xs = [r["n"] * (1 + 0.04 * k) for r in rows]  # a small offset keeps equal values of methods apart
        vals = [r["value"] for r in rows]
        err = [[v - r["low"] for v, r in zip(vals, rows)], [r["high"] - v for v, r in zip(vals, rows)]]
        ax.errorbar(xs, vals, yerr=err, marker="o", capsize=3, label=method)
    ax.axhline(0.5, color="black", ls=":", lw=1)
    ax.set_xscale("log")
    counts = sorted({r["n"] for r in results[1:]})
    ax.set_xticks(counts, [str(n) for n in counts])  # the swept counts, not log-scale "2×10^1" labels
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("feedback samples")
    ax.set_ylabel("win rate vs. reference (95% CI)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    save_figure(fig, path, dpi=120)
