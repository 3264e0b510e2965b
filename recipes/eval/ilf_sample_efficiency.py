"""Sample efficiency of ILF against its baselines: win rate vs. reference summaries at several feedback-sample counts.

    python recipes/eval/ilf_sample_efficiency.py --config recipes/configs/ilf_summarize_sample_efficiency_cpu.yaml
    python recipes/eval/ilf_sample_efficiency.py --config ... --data /path/to/slf5k --sample_counts [100,1000,5000]

For each count n (nested subsamples of the train split's feedback samples, ``data_seed``) and each method:

- ``ilf``: one ILF round on the n samples (``language_feedback.summarization_ilf``, settings under ``ilf``);
- ``sft_human``: fine-tune on summarize-prompt → the people's ideal summaries of the same n posts;
- ``sft_initial``: fine-tune on summarize-prompt → the initial summaries the feedback was written on;
- ``best_of_n``: a Bradley–Terry reward model trained on the n samples' human comparisons picks the best of
  ``best_of`` samples of the base model (``rlhf.preference``, ``rlhf.best_of_n``);
- ``ilf_best_of_n``: the same reward model picks the best of ``best_of`` samples of the ILF model,

each method's greedy (or best-of) summaries of the test posts are judged against the test split's TL;DR
reference summaries by a judge reward model (``judge_reward_model``, or one trained here on all train
comparisons), giving a win rate with a 95% bootstrap CI (``rlhf.metrics.win_rate``). The base model's
zero-shot win rate is the n = 0 point. A judge trained here has seen every best-of-N reward model's comparisons
(at the largest count, exactly the same ones), so the best-of-N points are optimistic (a warning says so). Every (method, n) is a stage of a resumable run directory.
Prints one line per point and writes ``results.csv``, ``results.json`` (with the ids of each count's train
samples) and ``sample_efficiency.png`` to ``output_dir``. ``sample_counts`` and ``methods`` are not part of the run's
identity: rerunning with more counts or methods reuses the finished stages.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from language_feedback.finetune import sft
from language_feedback.generation import generate
from language_feedback.prompts import summarize_prompt, summary_completion
from language_feedback.summarization_data import (
    SummaryFeedbackSample,
    comparisons,
    feedback_samples,
    load_slf5k,
    subsample,
)
from language_feedback.summarization_ilf import STOP_STRINGS, ILFConfig, run_ilf
from rlhf.artifacts import RunDir, atomic_path, read_jsonl, write_json_atomic, write_jsonl_atomic
from rlhf.best_of_n import best_of_n
from rlhf.config import load_config
from rlhf.metrics import outcomes_from_scores, win_rate
from rlhf.models import load_causal_lm
from rlhf.preference import PreferenceRewardModel, train_reward_model
from rlhf.reward import PromptCompletion
from rlhf.training import LoraSettings, TrainingSettings

logger = logging.getLogger("ilf_sample_efficiency")
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
    reward_use_lora: bool = False
    reward_lora: LoraSettings = field(default_factory=LoraSettings)
    reward: TrainingSettings = field(
        default_factory=lambda: TrainingSettings(learning_rate=1e-4, epochs=2.0, batch_size=4))
    ilf: ILFConfig = field(default_factory=ILFConfig)
    output_dir: str = "runs/ilf_sample_efficiency"


def summarize(model_path: str, prompts: list[str], cfg: SampleEfficiencyConfig, n: int = 1) -> list[list[str]]:
    """Greedy summaries (n = 1) or ``n`` sampled ones per prompt."""
    model, tokenizer = load_causal_lm(model_path)
    outs = generate(
        model, tokenizer, prompts, num_return_sequences=n, max_new_tokens=cfg.ilf.max_new_tokens,
        temperature=0.0 if n == 1 else cfg.temperature, top_p=cfg.ilf.top_p, batch_size=cfg.ilf.generation_batch_size,
        seed=cfg.data_seed, stop_strings=list(STOP_STRINGS),
    )
    return [[o.strip() or "(empty)" for o in outs_i] for outs_i in outs]


def main(argv: list[str] | None = None) -> list[dict]:
    cfg = load_config(SampleEfficiencyConfig, argv)
    if not cfg.data:
        raise SystemExit("no data: pass --data with an SLF5K-format directory holding train.jsonl and test.jsonl "
                         "(e.g. recipes/data/slf5k_demo, a small synthetic demo set)")
    unknown = sorted(set(cfg.methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"methods: unknown method(s) {unknown}; known: {', '.join(METHODS)}")
    if not cfg.methods or not cfg.sample_counts:
        raise SystemExit("methods and sample_counts must each name at least one entry")
    if len(set(cfg.sample_counts)) < len(cfg.sample_counts) or len(set(cfg.methods)) < len(cfg.methods):
        raise SystemExit(f"sample_counts {cfg.sample_counts} / methods {cfg.methods}: an entry is repeated")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    train = load_slf5k(cfg.data, cfg.train_split)
    n_feedback = len(feedback_samples(train))
    bad = [n for n in cfg.sample_counts if not 1 <= n <= n_feedback]
    if bad:  # checked before any training, so a bad sweep fails in seconds rather than after the judge
        raise SystemExit(f"sample_counts: {bad} outside 1..{n_feedback}, the number of feedback samples in "
                         f"{cfg.data} split '{cfg.train_split}' (the base model is the n = 0 point)")
    if not cfg.judge_reward_model and {"best_of_n", "ilf_best_of_n"} & set(cfg.methods):
        logger.warning("the judge is trained on all train comparisons, a superset of every best-of-N reward model's "
                       "(the same set at n = %d): best-of-N win rates are optimistic; pass judge_reward_model for an "
                       "independent judge", n_feedback)
    test = [s for s in load_slf5k(cfg.data, cfg.test_split) if s.tldr_human_reference_summary.strip()]
    if not test:
        raise SystemExit(f"test_split: no post in {cfg.data} split '{cfg.test_split}' has a TL;DR reference summary")
    test = test[: cfg.n_test] if cfg.n_test else test
    test_prompts = [summarize_prompt(s.title, s.post) for s in test]
    references = [s.tldr_human_reference_summary for s in test]
    out = Path(cfg.output_dir)
    # Stages depend on every setting but the sweep's extent: a rerun with more counts or methods resumes the same run.
    run = RunDir(out, {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("sample_counts", "methods")})
    base = cfg.ilf.model

    def prompt_of(s: SummaryFeedbackSample) -> str:
        return summarize_prompt(s.title, s.post)

    def train_rm(rows: list[dict], tmp: Path) -> Path:
        lora = cfg.reward_lora if cfg.reward_use_lora else None
        train_reward_model(base, rows, tmp / "rm", lora=lora, settings=cfg.reward)
        return tmp / "rm"

    if cfg.judge_reward_model:
        judge_path = Path(cfg.judge_reward_model)
    else:
        judge_path = run.run_stage("judge", lambda tmp: train_rm(comparisons(train, prompt_of), tmp)) / "rm"
    judge = PreferenceRewardModel(judge_path)
    reference_scores = judge([PromptCompletion(p, summary_completion(r)) for p, r in zip(test_prompts, references)])

    def score_stage(name: str, make_summaries) -> dict:
        """Write the method's test summaries and judged outcomes (once), return its win rate."""

        def build(tmp: Path) -> None:
            summaries = make_summaries(tmp)
            scores = judge([PromptCompletion(p, summary_completion(s)) for p, s in zip(test_prompts, summaries)])
            outcomes = outcomes_from_scores(scores.tolist(), reference_scores.tolist()).tolist()
            write_jsonl_atomic(tmp / "summaries.jsonl", [
                {"id": s.id, "summary": summ, "reference": ref, "outcome": o}
                for s, summ, ref, o in zip(test, summaries, references, outcomes)
            ])
            for leftover in ("model", "trainer"):  # fine-tuned weights are not needed once the summaries exist
                shutil.rmtree(tmp / leftover, ignore_errors=True)

        outcomes = [row["outcome"] for row in read_jsonl(run.run_stage(name, build) / "summaries.jsonl")]
        return dataclasses.asdict(win_rate(outcomes, seed=cfg.data_seed))

    def fine_tuned(examples: list[dict]):
        def make(tmp: Path) -> list[str]:
            sft(base, examples, tmp / "model", lora=cfg.ilf.lora if cfg.ilf.use_lora else None,
                trainer_dir=tmp / "trainer", settings=cfg.ilf.sft)
            return [o[0] for o in summarize(str(tmp / "model"), test_prompts, cfg)]
        return make

    def reward_model(n: int, rows: list[dict]) -> PreferenceRewardModel:
        return PreferenceRewardModel(run.run_stage(f"n{n}/rm", lambda tmp: train_rm(rows, tmp)) / "rm")

    def ilf_model(n: int, samples: list[SummaryFeedbackSample]) -> str:
        """One ILF round on the n samples; a stage of its own, shared by ``ilf`` and ``ilf_best_of_n``."""
        ilf_cfg = dataclasses.replace(cfg.ilf, rounds=1, samples_per_round=len(samples))
        stage = run.run_stage(f"n{n}/ilf_model", lambda tmp: run_ilf(ilf_cfg, samples, tmp / "run"))
        return str(stage / "run" / "round1" / "model")

    def best_of(model_path_fn, rm_fn):
        def make(tmp: Path) -> list[str]:
            samples = summarize(model_path_fn(), test_prompts, cfg, n=cfg.best_of)
            picks = best_of_n(test_prompts, [[summary_completion(c) for c in cands] for cands in samples], rm_fn())
            return [p.best.strip() for p in picks]
        return make

    results = [{"method": "base", "n": 0, **score_stage("base", lambda tmp: [o[0] for o in summarize(base, test_prompts, cfg)])}]
    print(f"base n=0: win rate vs reference {results[0]['value']:.2f} [{results[0]['low']:.2f}, {results[0]['high']:.2f}] "
          f"(n_test={len(test)})", flush=True)
    sample_ids = {}
    for n in cfg.sample_counts:
        samples = subsample(train, n, seed=cfg.data_seed)
        sample_ids[n] = [s.id for s in samples]
        human_rows = comparisons(samples, prompt_of)
        makers = {
            "ilf": lambda tmp, n=n, s=samples: [o[0] for o in summarize(ilf_model(n, s), test_prompts, cfg)],
            "sft_human": fine_tuned([{"prompt": prompt_of(s), "completion": summary_completion(s.ideal_human_summary)}
                                     for s in samples if s.ideal_human_summary.strip()]),
            "sft_initial": fine_tuned([{"prompt": prompt_of(s), "completion": summary_completion(s.generated_summary_for_feedback)}
                                       for s in samples]),
            "best_of_n": best_of(lambda: base, lambda n=n, rows=human_rows: reward_model(n, rows)),
            "ilf_best_of_n": best_of(lambda n=n, s=samples: ilf_model(n, s), lambda n=n, rows=human_rows: reward_model(n, rows)),
        }
        for method in cfg.methods:
            estimate = score_stage(f"n{n}/{method}", makers[method])
            results.append({"method": method, "n": n, **estimate})
            print(f"{method} n={n}: win rate vs reference {estimate['value']:.2f} "
                  f"[{estimate['low']:.2f}, {estimate['high']:.2f}] (n_test={len(test)})", flush=True)

    with atomic_path(out / "results.csv") as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["method", "n", "value", "low", "high"])
        writer.writeheader()
        writer.writerows(results)
    write_json_atomic(out / "results.json", {"judge": str(judge_path), "n_test": len(test), "results": results,
                                          "sample_ids": sample_ids})
    plot(results, out / "sample_efficiency.png")
    print(f"wrote {out / 'results.csv'} and {out / 'sample_efficiency.png'}")
    return results


def plot(results: list[dict], path: Path) -> None:
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
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
