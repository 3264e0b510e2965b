"""The text quickstart: does language feedback teach a small model what a reader wants? Measured against a ground truth.

The feedback world (:mod:`language_feedback.feedback_world`) writes posts whose ideal summary states the
required facts (``world.required_facts``: how much the main thing cost, how it ended; the quickstart's config asks
for the amount), an oracle that says so in words, and a scorer that knows a good summary. Per seed, on ``feedback_samples`` training posts (the same posts and the same number of feedback
samples for every method), the model's own greedy summaries get the oracle's feedback, and:

- ``ilf_embedding``: ILF (:class:`~language_feedback.summarization_ilf.SummarizationILF`): refinements with the
  feedback, the ILF paper's embedding selector (no margin), fine-tuning on the selected refinements;
- ``ilf_grounded``: the same refinements, the grounded selector (:class:`~language_feedback.selectors.GroundedSelector`:
  the post's content the feedback asks for, and only refinements that add it), with the ``ilf`` section's
  ``min_improvement``;
- ``ilf_ground_truth``: the same refinements, the one with the best ground-truth score selected (the upper
  bound of what selection can give);
- ``no_feedback``: refinements asked for without the feedback (the paper's ablation), selected as the ``ilf``
  section says (``selector``, ``min_improvement``; the quickstart's config: as ``ilf_grounded``);
- ``shuffled_feedback``: refinements with another post's feedback (the control), selected likewise;
- ``sft_initial``: fine-tuning on the model's own initial summaries;
- ``best_of_n``: a Bradley–Terry reward model trained on the feedback-derived comparisons of the ILF run
  (selected refinement ≻ initial summary) picks the best of ``best_of`` samples of the base model;
- ``sdpo`` (optional): TRL's SDPO, online self-distillation where the model, shown the oracle's feedback on
  its initial summary, is the teacher of the model without it; no reward (the feedback is all it learns from,
  as for ILF);
- ``base``: the model as it is.

Each method's greedy summaries of the seed's share of the test posts are scored; the report pools the seeds
(``test_posts`` in all) and gives each rate a 95% Wilson interval; the differences between methods get intervals
that resample the seeds (training runs) as well as the test posts (:func:`rlhf.metrics.paired_difference_ci`).
Methods share what is identical between them (the base model's summaries, the ILF run's data and refinements)
through ``RunDir.import_stage``.
Every stage is resumable; seeds train in parallel worker processes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from language_feedback.feedback_world import (
    CHECKABLE_FACTS,
    REQUIRED_FACTS,
    Oracle,
    Post,
    generate_world,
    score,
    to_slf5k_row,
)
from language_feedback.prompts import summarize_prompt, summary_completion
from language_feedback.selectors import SelectionItem, Selector
from language_feedback.summarization_data import validate_row
from language_feedback.summarization_ilf import SummarizationILF, SummarizationILFSettings, generate_replies
from rlhf.artifacts import RunDir, read_jsonl, stage_times, write_json_atomic, write_jsonl_atomic, write_text_atomic
from rlhf.behaviour import Cluster, DriftReport, Shift, drift_report
from rlhf.config import ConfigError, run_identity, runtime_field
from rlhf.experiment import Experiment, worker_pool
from rlhf.metrics import Estimate, mean_ci, paired_difference_ci, rate
from rlhf.models import resolve_model_path
from rlhf.targets import Target
from rlhf.training import GRPOSettings, TrainingSettings

METHODS = ("ilf_embedding", "ilf_grounded", "ilf_ground_truth", "no_feedback", "shuffled_feedback", "sft_initial", "best_of_n", "sdpo")
METRICS = ("good", "recall", "hallucination", "copying", "format_violation", "n_words")
# The comparisons the targets make (A, B), and the metrics their seed-aware differences are given for.
# The ILF arms whose selectors do not read the ground truth: the targets test each.
ILF_ARMS = ("ilf_embedding", "ilf_grounded")
COMPARISONS = (*((arm, other) for arm in ILF_ARMS for other in ("base", "no_feedback", "sft_initial")),
               ("shuffled_feedback", "no_feedback"))
DIFFERENCE_METRICS = ("good", "recall", "hallucination")
# The fields of a scored row (:func:`scored_rows`) that the rate metrics are read from (flags, or lists: empty or not).
_ROW_FIELDS = {"hallucination": "unsupported", "copying": "copies", "format_violation": "format_violations"}
RATE_METRICS = ("good", "hallucination", "copying", "format_violation")


@dataclass
class WorldSettings:
    n_posts: int = 1000  # the first test_posts are test posts, the rest the training pool
    seed: int = 0
    test_posts: int = 210  # split evenly between the seeds
    required_facts: list[str] = field(default_factory=lambda: list(REQUIRED_FACTS))  # the hidden reader preference
    feedback_points: int = 2  # the oracle names at most this many problems per summary
    vague_fraction: float = 0.0  # share of feedback replaced by vague remarks
    misleading_fraction: float = 0.0  # share of feedback replaced by misleading remarks


@dataclass
class TextTargets:
    """The quickstart's bars; each is printed with PASS/FAIL."""

    max_base_good_rate: float = 0.5  # the world must not be easy: the base model's good-summary rate, at most
    max_hallucination_increase: float = 0.05  # ILF's hallucination rate minus the base model's, at most
    minutes: float = 20.0  # wall time of the whole quickstart, at most


@dataclass
class TextQuickstartConfig:
    output_dir: str = "runs/quickstart_text"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    feedback_samples: int = 32  # training posts with feedback, per seed and method
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    world: WorldSettings = field(default_factory=WorldSettings)
    #: ILF settings for every ILF-style method (model, refinements, sampling, embedder, fine-tuning, LoRA);
    #: ``rounds`` and ``samples_per_round`` are set from ``feedback_samples``.
    ilf: SummarizationILFSettings = field(default_factory=SummarizationILFSettings)
    best_of: int = 4
    #: SDPO's online settings (TRL argument names); it sees each feedback sample ``num_train_epochs`` times.
    sdpo: GRPOSettings = field(default_factory=lambda: GRPOSettings(
        learning_rate=5e-6, max_steps=-1, num_train_epochs=1.0, per_device_train_batch_size=8, num_generations=2,
        max_completion_length=40, temperature=0.7))
    reward: TrainingSettings = field(
        default_factory=lambda: TrainingSettings(learning_rate=1e-4, num_train_epochs=2.0, per_device_train_batch_size=8,
                                                 max_length=512))
    keep_models: bool = False  # False: a method's fine-tuned weights are deleted once its summaries are scored
    workers: int = runtime_field(2)  # seeds in parallel, one torch thread each (0: in this process)
    torch_threads: int = runtime_field(1)  # main process; 2 threads ran far slower when the cores were shared
    targets: TextTargets = field(default_factory=TextTargets)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ConfigError(f"unknown method(s) {unknown}; known: {', '.join(METHODS)}", key="methods")
        if "best_of_n" in self.methods and "ilf_embedding" not in self.methods:
            raise ConfigError("best_of_n trains its reward model on the comparisons of the ilf_embedding run; "
                              "add ilf_embedding", key="methods")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"need distinct seeds, got {self.seeds}", key="seeds")
        if self.feedback_samples < 2:
            raise ConfigError(f"must be >= 2 (the shuffled control needs two posts), got {self.feedback_samples}",
                              key="feedback_samples")
        if self.world.test_posts < len(self.seeds):
            raise ConfigError(f"{self.world.test_posts} test posts cannot be split between {len(self.seeds)} seeds",
                              key="world.test_posts")
        needed = self.world.test_posts + len(self.seeds) * self.feedback_samples
        if self.world.n_posts < needed:
            raise ConfigError(f"{self.world.n_posts} posts; need test_posts + seeds × feedback_samples = {needed}",
                              key="world.n_posts")
        drift = self.ilf.drift
        if drift is not None and drift.task_prompts > self.world.test_posts // len(self.seeds):
            raise ConfigError(f"the drift report summarizes {drift.task_prompts} of a seed's test posts, but each seed "
                              f"has {self.world.test_posts // len(self.seeds)}", key="ilf.drift.task_prompts")
        if self.best_of < 2:
            raise ConfigError(f"must be >= 2, got {self.best_of}", key="best_of")
        if not self.world.required_facts or set(self.world.required_facts) - set(CHECKABLE_FACTS):
            raise ConfigError(f"a non-empty subset of {list(CHECKABLE_FACTS)}, got {self.world.required_facts}",
                              key="world.required_facts")


class GroundTruthSelector(Selector):
    """Scores each candidate summary by the world's ground truth (:func:`feedback_world.score`'s value)."""

    name = "ground_truth"

    def __init__(self, posts: Sequence[Post], required: Sequence[str] = REQUIRED_FACTS, tokenizer: Any = None):
        self.by_context = {summarize_prompt(p.title, p.text, tokenizer): p for p in posts}  # as the ILF loop asks
        self.required = tuple(required)

    def score(self, items: Sequence[SelectionItem]) -> list[list[float]]:
        missing = [i for i, item in enumerate(items) if item.context not in self.by_context]
        if missing:
            raise ValueError(f"ground-truth selector: items {missing[:5]} are not posts of this world")
        return [[score(self.by_context[item.context], c, self.required).value for c in item.candidates]
                for item in items]


def summarize_posts(model_path: str, posts: Sequence[Post], settings: SummarizationILFSettings, *, n: int = 1,
                    seed: int = 0) -> list[list[str]]:
    """Greedy summaries (``n`` = 1) or ``n`` sampled ones per post, as the ILF runs generate them."""
    from rlhf.models import load_causal_lm

    model, tokenizer = load_causal_lm(model_path, dtype=settings.dtype)
    return generate_replies(model, tokenizer, [summarize_prompt(p.title, p.text, tokenizer) for p in posts], settings,
                            n=n, temperature=0.0 if n == 1 else settings.temperature, seed=seed)


def scored_rows(posts: Sequence[Post], summaries: Sequence[str], required: Sequence[str]) -> list[dict]:
    return [{"id": p.id, "summary": s, **score(p, s, required).to_json()} for p, s in zip(posts, summaries)]


def derangement(n: int, rng: random.Random) -> list[int]:
    """A permutation without fixed points: every post gets another post's feedback."""
    while True:
        perm = list(range(n))
        rng.shuffle(perm)
        if all(i != p for i, p in enumerate(perm)):
            return perm


class SeedRun:
    """One seed of the comparison in ``<output_dir>/seed<s>/``: every method trained and scored."""

    def __init__(self, config: TextQuickstartConfig, seed: int, train: Sequence[Post], test: Sequence[Post],
                 base_summaries: dict[str, str], output_dir: str | Path):
        self.config, self.seed, self.train, self.test = config, seed, list(train), list(test)
        self.base_summaries = base_summaries
        self.settings = dataclasses.replace(config.ilf, rounds=1, samples_per_round=len(self.train), seed=seed)
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(self.settings.model))  # the prompt format
        self.run_dir = RunDir(output_dir, {"seed": seed, "train": [p.id for p in self.train],
                                           "test": [p.id for p in self.test]})

    # -- data -------------------------------------------------------------------------------------

    def data(self, out: Path) -> None:
        """SLF5K rows: the base model's summary of each training post and the oracle's feedback on it, and
        the same rows with the feedback shuffled across posts (the control)."""
        w = self.config.world
        oracle = Oracle(seed=self.seed, max_points=w.feedback_points, vague_fraction=w.vague_fraction,
                        misleading_fraction=w.misleading_fraction, required=tuple(w.required_facts))
        rows = [to_slf5k_row(p, self.base_summaries[p.id], oracle(p, self.base_summaries[p.id])) for p in self.train]
        perm = derangement(len(rows), random.Random(self.seed))
        shuffled = [{**row, "feedback": rows[j]["feedback"]} for row, j in zip(rows, perm)]
        write_jsonl_atomic(out / "feedback.jsonl", rows)
        write_jsonl_atomic(out / "shuffled_feedback.jsonl", shuffled)

    def samples(self, name: str) -> list:
        path = self.run_dir.stage_path("data") / f"{name}.jsonl"
        return [validate_row(row, f"{path}, row {i}") for i, row in enumerate(read_jsonl(path), 1)]

    # -- methods ----------------------------------------------------------------------------------

    def ilf(self, method: str) -> SummarizationILF:
        """The ILF run of an ILF-style method, its shared stages imported from the ilf_embedding run."""
        settings, selector, samples = self.settings, None, "feedback"
        if method == "no_feedback":
            settings = dataclasses.replace(settings, use_feedback=False)
        if method == "shuffled_feedback":
            samples = "shuffled_feedback"
        if method == "ilf_embedding":  # the ILF paper's selector: the best refinement, whatever its margin
            settings = dataclasses.replace(settings, selector="embedding", min_improvement=0.0)
        if method == "ilf_grounded":
            settings = dataclasses.replace(settings, selector="grounded")
        if method == "ilf_ground_truth":
            selector = GroundTruthSelector(self.train, self.config.world.required_facts, self.tokenizer)
        held_out = None
        if method == "ilf_embedding" and settings.drift is not None:  # the drift report watches the method itself
            held_out = [validate_row(to_slf5k_row(p, self.base_summaries[p.id], ""), f"test post {p.id}")
                        for p in self.test]
        else:
            settings = dataclasses.replace(settings, drift=None)
        run = SummarizationILF(settings, self.samples(samples), self.run_dir.stage_path(method), selector=selector,
                               held_out=held_out)
        if method == "ilf_embedding":  # its initial summaries are the base model's, already written: no need to
            run.run_dir.stage("data", run.data)  # generate them again
            run.run_dir.stage("round1/initial", lambda out: write_jsonl_atomic(out / "initial.jsonl", [
                {"id": s.id, "prompt": summarize_prompt(s.title, s.post, self.tokenizer),
                 "summary": s.generated_summary_for_feedback} for s in run.batch(1)]))
        else:
            source = self.ilf("ilf_embedding").run_dir
            shared = {"ilf_ground_truth": ("data", "round1/initial", "round1/refinements"),
                      "ilf_grounded": ("data", "round1/initial", "round1/refinements"),
                      "no_feedback": ("data", "round1/initial"), "shuffled_feedback": ("round1/initial",)}[method]
            for stage in shared:  # identical model, posts, prompts and seeds: computed once
                run.run_dir.import_stage(stage, source)
        return run

    def model(self, method: str) -> str:
        """The fine-tuned model of a method (trained here unless done)."""
        if method == "sft_initial":
            return str(self.run_dir.stage("sft_initial", self._sft_initial) / "model")
        if method == "sdpo":
            return str(self.run_dir.stage("sdpo", self._sdpo) / "model")
        return str(self.ilf(method).run().final_model)

    def _sdpo(self, out: Path) -> None:
        """SDPO with the oracle's feedback as the teacher's privileged context and no reward signal."""
        import torch

        from rlhf.grpo import train_grpo
        from rlhf.reward import FunctionReward

        rows = [{"prompt": summarize_prompt(s.title, s.post, self.tokenizer), "privileged_context": s.feedback}
                for s in self.samples("feedback")]
        no_reward = FunctionReward(lambda batch: torch.zeros(len(batch)), name="no_reward")
        settings = dataclasses.replace(self.config.sdpo, seed=self.seed)
        train_grpo(self.settings.model, rows, [no_reward], self.run_dir.path / "sdpo.trainer", settings=settings,
                   lora=self.settings.lora, algorithm="sdpo", algorithm_args={
                       "distillation_weight": 1.0, "use_successful_as_teacher": False,
                       "include_environment_feedback": True, "teacher_model_kind": "ema",
                       # The teacher reads the feedback first, then the usual prompt it continues from.
                       "feedback_template": "Feedback on an earlier summary of this post: {feedback_raw}\n\n",
                       "reprompt_template": "{feedback}{prompt}",
                   })
        shutil.move(self.run_dir.path / "sdpo.trainer" / "final", out / "model")

    def _sft_initial(self, out: Path) -> None:
        from language_feedback.finetune import sft

        examples = [{"prompt": summarize_prompt(p.title, p.text, self.tokenizer),
                     "completion": summary_completion(self.base_summaries[p.id], self.tokenizer)}
                    for p in self.train if self.base_summaries[p.id].strip()]
        sft(self.settings.model, examples, out / "model", lora=self.settings.lora,
            trainer_dir=self.run_dir.path / "sft_initial.trainer", settings=self.settings.sft)

    def _reward_model(self, out: Path) -> None:
        from rlhf.preference import train_reward_model

        comparisons = read_jsonl(self.ilf("ilf_embedding").run().comparisons[0])
        if not comparisons:
            raise RuntimeError(f"seed {self.seed}: the ILF run selected no refinement different from the initial "
                               "summary, so there are no comparisons to train the best-of-N reward model on")
        train_reward_model(self.settings.model, comparisons, out / "rm", settings=self.config.reward,
                           trainer_dir=self.run_dir.path / "reward_model.trainer")

    def summaries(self, method: str) -> list[str]:
        """The method's summaries of this seed's test posts."""
        if method == "best_of_n":
            from rlhf.best_of_n import best_of_n
            from rlhf.preference import PreferenceRewardModel

            rm = PreferenceRewardModel(self.run_dir.stage("reward_model", self._reward_model) / "rm")
            samples = summarize_posts(self.settings.model, self.test, self.settings, n=self.config.best_of,
                                      seed=self.seed)
            prompts = [summarize_prompt(p.title, p.text, self.tokenizer) for p in self.test]
            picks = best_of_n(prompts, [[summary_completion(c, self.tokenizer) for c in cands] for cands in samples], rm)
            return [p.best.strip() for p in picks]
        return [s[0] for s in summarize_posts(self.model(method), self.test, self.settings)]

    def model_dir(self, method: str) -> Path | None:
        """Where a method's fine-tuned weights are (None: it fine-tunes nothing)."""
        if method in ("sft_initial", "sdpo"):
            return self.run_dir.stage_path(method) / "model"
        return None if method == "best_of_n" else self.run_dir.stage_path(method) / "round1" / "model"

    def evaluate(self, method: str, out: Path) -> None:
        write_jsonl_atomic(out / "scores.jsonl", scored_rows(self.test, self.summaries(method),
                                                             self.config.world.required_facts))
        weights = self.model_dir(method)
        # Scored: the weights are not needed again (ilf_embedding's feed the drift report), and are 0.5 GB each.
        if not self.config.keep_models and method != "ilf_embedding" and weights is not None and weights.is_dir():
            shutil.rmtree(weights)

    def run(self) -> dict[str, Path]:
        """Train and score every method; return the path of each method's scores."""
        self.run_dir.stage("data", self.data)
        methods = sorted(self.config.methods, key=lambda m: m != "ilf_embedding")  # the shared run first
        return {m: self.run_dir.stage(f"eval/{m}", lambda out, m=m: self.evaluate(m, out)) / "scores.jsonl"
                for m in methods}


def _run_seed(config: TextQuickstartConfig, seed: int, train: list[dict], test: list[dict], base: dict[str, str],
              output_dir: str) -> dict[str, str]:
    """Worker: one seed (resuming what is done); paths of its score files."""
    import torch

    torch.set_num_threads(1)
    started = time.time()
    paths = SeedRun(config, seed, [Post.from_json(p) for p in train], [Post.from_json(p) for p in test], base,
                    output_dir).run()
    print(f"  seed {seed}: all methods trained and scored ({time.time() - started:.0f} s)", flush=True)
    return {m: str(p) for m, p in paths.items()}


class TextQuickstart(Experiment):
    """The quickstart experiment (see the module docstring); :meth:`run` returns the summary."""

    config: TextQuickstartConfig

    # -- stages -----------------------------------------------------------------------------------

    def world(self, out: Path) -> None:
        w = self.config.world
        write_jsonl_atomic(out / "posts.jsonl", [p.to_json() for p in generate_world(w.n_posts, w.seed)])

    def posts(self) -> list[Post]:
        return [Post.from_json(row) for row in read_jsonl(self.run_dir.stage_path("world") / "posts.jsonl")]

    def splits(self) -> tuple[list[Post], dict[int, list[Post]], dict[int, list[Post]]]:
        """Test posts, and per seed its training posts and its share of the test posts."""
        cfg = self.config
        posts = self.posts()
        test, pool = posts[: cfg.world.test_posts], posts[cfg.world.test_posts :]
        per_seed = len(test) // len(cfg.seeds)
        train = {s: pool[i * cfg.feedback_samples : (i + 1) * cfg.feedback_samples] for i, s in enumerate(cfg.seeds)}
        tests = {s: test[i * per_seed : (i + 1) * per_seed] for i, s in enumerate(cfg.seeds)}
        return test, train, tests

    def base(self, out: Path) -> None:
        """The base model's greedy summaries of every test post and every training post, scored."""
        test, train, _ = self.splits()
        posts = test + [p for s in self.config.seeds for p in train[s]]
        summaries = summarize_posts(self.config.ilf.model, posts, self.config.ilf)
        write_jsonl_atomic(out / "summaries.jsonl", scored_rows(posts, [s[0] for s in summaries],
                                                                self.config.world.required_facts))

    # -- driver -----------------------------------------------------------------------------------

    def run(self) -> dict:
        import torch

        cfg = self.config
        torch.set_num_threads(cfg.torch_threads)
        print(f"[1/3] the world: {cfg.world.n_posts} posts (seed {cfg.world.seed}); the base model summarizes "
              f"{cfg.world.test_posts} test and {len(cfg.seeds) * cfg.feedback_samples} training posts", flush=True)
        self.run_dir.stage("world", self.world)
        self.run_dir.stage("base", self.base)
        base = {row["id"]: row["summary"] for row in read_jsonl(self.run_dir.stage_path("base") / "summaries.jsonl")}
        _, train, tests = self.splits()
        print(f"[2/3] {len(cfg.seeds)} seeds × {len(cfg.methods)} methods on {cfg.feedback_samples} feedback samples "
              f"each ({cfg.workers} workers)", flush=True)
        jobs = [(cfg, s, [p.to_json() for p in train[s]], [p.to_json() for p in tests[s]], base,
                 str(self.run_dir.path / f"seed{s}")) for s in cfg.seeds]
        with worker_pool(cfg.workers) as pool:
            results = list(pool.map(_run_seed, *zip(*jobs)))
        print("[3/3] report", flush=True)
        return self.report({s: r for s, r in zip(cfg.seeds, results)})

    def report(self, score_files: dict[int, dict[str, str]]) -> dict:
        """Pool the seeds per method; print the table and the targets; write summary.json, results.csv, a PNG."""
        cfg = self.config
        tests = self.splits()[2]
        base = {r["id"]: r for r in read_jsonl(self.run_dir.stage_path("base") / "summaries.jsonl")}
        by_seed = {"base": {s: [base[p.id] for p in tests[s]] for s in cfg.seeds}}
        for method in cfg.methods:
            by_seed[method] = {s: read_jsonl(score_files[s][method]) for s in cfg.seeds}
        rows = {method: [r for s in cfg.seeds for r in seeds[s]] for method, seeds in by_seed.items()}
        stats = {method: method_statistics(r) for method, r in rows.items()}
        per_seed = {method: {s: {m: mean_metric(r, m) for m in ("good", "recall")} for s, r in seeds.items()}
                    for method, seeds in by_seed.items()}
        targets = self.targets(stats)
        differences = method_differences(by_seed)
        table = format_table(cfg, stats, targets, time.time() - self.started, self.fresh)
        table += "\n\n" + "\n".join(difference_lines(differences))
        table += "\n\n" + "\n".join(seed_lines(per_seed))
        seconds = stage_profile(self.run_dir.path)
        table += "\n\n" + "\n".join(profile_lines(seconds, cfg.workers))
        if cfg.ilf.drift is not None and cfg.ilf.drift.task_prompts and "ilf_embedding" in cfg.methods:
            self.run_dir.stage("drift", lambda out: self.test_set_drift(rows, out))
        drift = self.drift_lines()
        if drift:
            table += "\n\n" + "\n".join(drift)
        out = Path(cfg.output_dir)
        write_json_atomic(out / "summary.json", {
            "config": run_identity(cfg), "n_test": len(rows["base"]),
            "methods": {m: {k: dataclasses.asdict(v) for k, v in s.items()} for m, s in stats.items()},
            "targets": [target.to_json() for target in targets], "fresh_run": self.fresh,
            "differences": {f"{a} - {b}": {m: dataclasses.asdict(e) for m, e in d.items()}
                            for (a, b), d in differences.items()},
            "per_seed": per_seed, "wall_seconds": time.time() - self.started, "stage_seconds": seconds,
        })
        write_text_atomic(out / "results.csv", results_csv(stats))
        write_text_atomic(out / "table.txt", table + "\n")
        plot_methods(stats, out / "methods.png")
        print("\n" + table)
        return json.loads((out / "summary.json").read_text())

    def test_set_drift(self, rows: dict[str, list[dict]], out: Path) -> None:
        """Base model against ILF (embedding selector) on every test post, all seeds pooled: the very summaries
        scored in the table, so any copying or meta-comments the scorer counts are there to be clustered (the
        in-loop reports sample ``task_prompts`` posts per seed, too few to make small shifts significant)."""

        d = self.config.ilf.drift
        report = drift_report({m: [r["summary"] for r in rows[m]] for m in ("base", "ilf_embedding")},
                              openings=True, alpha=d.alpha,
                              judge_model=d.judge_model or None, label_model=d.label_model or None,
                              intended_change=d.intended_change or None)
        report.write(out)

    def drift_lines(self, shown: int = 4) -> list[str]:
        """What the drift reports of ILF (embedding selector) found: on all test posts, then each seed's round."""

        reports = [("all test posts, seeds pooled", self.run_dir.path / "drift" / "report.json")]
        for seed in self.config.seeds:
            for kind, what in (("task", "test posts"), ("probes", "out-of-task probes")):
                path = self.run_dir.path / f"seed{seed}" / "ilf_embedding" / "round1" / "drift" / kind / "report.json"
                reports.append((f"seed {seed}, {what} sampled in the loop", path))
        lines = []
        for title, path in reports:
            if not path.is_file():
                continue
            report = DriftReport.from_json(path.read_text())
            shifts = sorted((s for s in report.significant() if s.before == "base"), key=lambda s: -abs(s.shift))
            lines.append(f"  {title}: {len(shifts)} significant cluster shift(s) from the base model ({path.parent})")
            lines += [shift_line(shift, report.clusters[shift.cluster]) for shift in shifts[:shown]]
        return ["Drift of ILF (embedding selector) from the base model:", *lines] if lines else []

    def targets(self, stats: dict[str, dict[str, Estimate]]) -> list[Target]:
        t = self.config.targets
        good = {m: s["good"] for m, s in stats.items()}
        out = [Target("the world is not easy: base model's good-summary rate", good["base"].value, "<",
                      t.max_base_good_rate)]
        for arm in (a for a in ILF_ARMS if a in good):
            name = f"ILF ({arm.removeprefix('ilf_')} selector)"
            recall = {m: stats[m]["recall"] for m in ("base", arm)}
            out.append(Target(f"{name} recall of the required facts above the base model's, 95% intervals apart "
                              "(ILF low − base high)", recall[arm].low - recall["base"].high, ">", 0.0))
            for other in ("base", "no_feedback", "sft_initial"):
                if other in good:
                    out.append(Target(f"{name} good-summary rate above {other}'s, 95% intervals apart (ILF low − "
                                      f"{other} high)", good[arm].low - good[other].high, ">", 0.0))
            hallucination = stats[arm]["hallucination"].value - stats["base"]["hallucination"].value
            out.append(Target(f"{name} hallucination rate minus the base model's", hallucination, "<=",
                              t.max_hallucination_increase))
        if {"shuffled_feedback", "no_feedback"} <= set(good):
            out.append(Target("shuffled feedback no better than no feedback (shuffled low − no-feedback high)",
                              good["shuffled_feedback"].low - good["no_feedback"].high, "<=", 0.0))
        if self.fresh:
            out.append(Target("wall time of this invocation (minutes)", (time.time() - self.started) / 60, "<=",
                              t.minutes))
        return out


def shift_line(shift: Shift, cluster: Cluster) -> str:
    """One printed line for a cluster shift: the shares, the cluster's name, and an example from the side where the
    cluster is larger (a cluster that vanished has no example after)."""
    side = shift.after if shift.shift > 0 else shift.before
    example = (cluster.examples.get(side) or [""])[0]
    verdict = f", judged {shift.verdict} (p={shift.p_intended:.2f})" if shift.verdict else ""
    return f"    {shift.share_before:5.0%} -> {shift.share_after:4.0%}  {cluster.name()!r}: \"{example[:70]}\"{verdict}"


def method_differences(by_seed: dict[str, dict[int, list[dict]]]) -> dict[tuple[str, str], dict[str, Estimate]]:
    """A − B for each of :data:`COMPARISONS` whose methods ran, per metric: seeds and test posts resampled, each
    post's two summaries kept together (:func:`rlhf.metrics.paired_difference_ci`)."""
    out = {}
    for a, b in COMPARISONS:
        if a not in by_seed or b not in by_seed:
            continue
        runs = []
        for seed, rows_a in by_seed[a].items():
            rows_b = {r["id"]: r for r in by_seed[b][seed]}
            runs.append([(r, rows_b[r["id"]]) for r in rows_a])
        out[(a, b)] = {m: paired_difference_ci([[_metric(x, m) for x, _ in run] for run in runs],
                                               [[_metric(y, m) for _, y in run] for run in runs])
                       for m in DIFFERENCE_METRICS}
    return out


def _metric(row: dict, metric: str) -> float:
    """One of :data:`METRICS` for one scored summary (a row of :func:`scored_rows`); rates as 0/1."""
    value = row[_ROW_FIELDS.get(metric, metric)]
    return float(bool(value)) if isinstance(value, (bool, list)) else float(value)


def difference_lines(differences: dict[tuple[str, str], dict[str, Estimate]]) -> list[str]:
    """The differences between methods, each with its seed-aware 95% interval."""
    head = ("Differences between methods (A − B; 95% intervals resampling the seeds, then each seed's test posts, "
            "a post's two summaries paired):")
    lines = [head, f"{'A − B':<36}" + "".join(f"{m:>22}" for m in DIFFERENCE_METRICS)]
    for (a, b), d in differences.items():
        cells = [f"{e.value:+.2f} [{e.low:+.2f}, {e.high:+.2f}]" for e in d.values()]
        lines.append(f"{a + ' − ' + b:<36}" + "".join(f"{c:>22}" for c in cells))
    return lines


def seed_lines(per_seed: dict[str, dict[int, dict[str, float]]]) -> list[str]:
    """Each method's good-summary rate and recall per seed: how much training runs differ, which the
    intervals of the table (over test posts, seeds pooled) do not show."""
    head = ("Per seed (each seed trains its own models on its own posts; the table's intervals count test posts, "
            "not training runs):")
    lines = [head, f"{'method':<19}{'good per seed':>22}{'recall per seed':>22}"]
    for method, seeds in per_seed.items():
        cells = [" ".join(f"{v[m]:.2f}" for v in seeds.values()) for m in ("good", "recall")]
        lines.append(f"{method:<19}" + "".join(f"{c:>22}" for c in cells))
    return lines


def stage_profile(root: Path) -> dict[str, float]:
    """Process seconds per stage under ``root``, the seeds summed (``seed1/eval/base`` counts as ``eval/base``),
    each stage without the stages nested in it, slowest first."""
    seconds: dict[str, float] = {}
    for stage, s in stage_times(root).items():
        key = re.sub(r"^seed\d+/", "", stage)
        seconds[key] = seconds.get(key, 0.0) + s
    return dict(sorted(seconds.items(), key=lambda kv: -kv[1]))


def profile_lines(seconds: dict[str, float], workers: int, shown: int = 10) -> list[str]:
    total = sum(seconds.values()) or 1e-9  # (a division guard: no stage has run)
    head = (f"Time per stage (process seconds, seeds summed, {workers or 1} worker process(es) on {os.cpu_count()} "
            f"CPUs; {total:.0f} s in all, including earlier invocations):")
    lines = [head] + [f"  {s:7.0f} s  {s / total:4.0%}  {stage}" for stage, s in list(seconds.items())[:shown]]
    if len(seconds) > shown:
        rest = sum(list(seconds.values())[shown:])
        lines.append(f"  {rest:7.0f} s  {rest / total:4.0%}  {len(seconds) - shown} other stages")
    return lines


def method_statistics(rows: Sequence[dict]) -> dict[str, Estimate]:
    """Each metric of one method over its scored summaries: rates with Wilson intervals, means bootstrapped."""
    return {m: (rate if m in RATE_METRICS else mean_ci)([_metric(r, m) for r in rows]) for m in METRICS}


def _cell(e: Estimate, digits: int = 2) -> str:
    return f"{e.value:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"


def format_table(cfg: TextQuickstartConfig, stats: dict[str, dict[str, Estimate]], targets: Sequence[Target],
                 wall_seconds: float, fresh: bool) -> str:
    n = len(cfg.seeds)
    lines = [
        (f"Text quickstart: {cfg.ilf.model}, {cfg.feedback_samples} feedback samples x {n} seeds {cfg.seeds}, "
        f"{cfg.world.test_posts} test posts (95% intervals)"),
        "",
        f"{'method':<19}" + "".join(f"{m:>22}" for m in METRICS),
    ]
    for method, s in stats.items():
        lines.append(f"{method:<19}" + "".join(f"{_cell(s[m], 1 if m == 'n_words' else 2):>22}" for m in METRICS))
    lines += ["", "Targets:", *(target.line() for target in targets)]
    if not fresh:
        lines.append("  n/a   wall time: stages were reused from an earlier run (use a new output_dir to time it)")
    lines.append(f"  wall {wall_seconds:.0f} s in this invocation; {os.cpu_count()} CPUs")
    return "\n".join(lines)


def results_csv(stats: dict[str, dict[str, Estimate]]) -> str:
    lines = ["method,metric,value,low,high"]
    for method, s in stats.items():
        lines += [f"{method},{m},{e.value:.6g},{e.low:.6g},{e.high:.6g}" for m, e in s.items()]
    return "\n".join(lines) + "\n"


def plot_methods(stats: dict[str, dict[str, Estimate]], path: Path) -> None:
    """One panel per rate metric: each method's rate with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlhf.curves import save_figure

    methods = list(stats)
    fig, axes = plt.subplots(1, len(RATE_METRICS) + 1, figsize=(4 * (len(RATE_METRICS) + 1), 4))
    for ax, metric in zip(axes, ("recall", *RATE_METRICS)):
        values = [stats[m][metric] for m in methods]
        ax.bar(range(len(methods)), [v.value for v in values],
               yerr=[[max(0.0, v.value - v.low) for v in values], [max(0.0, v.high - v.value) for v in values]],
               capsize=3,
               color=["grey" if m == "base" else "tab:blue" for m in methods])
        ax.set_xticks(range(len(methods)), methods, rotation=60, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(metric.replace("_", " ") + (" (mean)" if metric == "recall" else " rate"), fontsize=9)
    fig.suptitle("Text quickstart: each method on the test posts (95% intervals)")
    save_figure(fig, path)


@dataclass
class TextSampleEfficiencyConfig(TextQuickstartConfig):
    """The quickstart's methods at several numbers of feedback samples (nested: the 32 are among the 64)."""

    output_dir: str = "runs/text_sample_efficiency"
    sample_counts: list[int] = field(default_factory=lambda: [32, 64, 128])
    metrics: list[str] = field(default_factory=lambda: ["recall", "good"])

    def __post_init__(self) -> None:
        counts = self.sample_counts
        if not counts or len(set(counts)) != len(counts) or min(counts) < 2:
            raise ConfigError(f"need distinct counts >= 2, got {counts}", key="sample_counts")
        unknown = sorted(set(self.metrics) - {"recall", "good"})
        if unknown or not self.metrics:
            raise ConfigError(f"choose from ['recall', 'good'], got {self.metrics}", key="metrics")
        self.feedback_samples = max(counts)  # each seed's pool: the largest count, the smaller ones nested in it
        super().__post_init__()


class TextSampleEfficiency(TextQuickstart):
    """Each method's recall (and good-summary rate) against the number of feedback samples, IQM over seeds."""

    config: TextSampleEfficiencyConfig

    def run(self) -> dict:
        import torch

        cfg = self.config
        torch.set_num_threads(cfg.torch_threads)
        self.run_dir.stage("world", self.world)
        self.run_dir.stage("base", self.base)
        base = {row["id"]: row["summary"] for row in read_jsonl(self.run_dir.stage_path("base") / "summaries.jsonl")}
        _, train, tests = self.splits()
        # The largest counts first: the longest jobs start first and the pool ends on short ones. In counts'
        # order a 2-worker run of 8/16/32 x 3 seeds ended with one 18-minute n=32 job alone on one core (62 min
        # wall; the same jobs' times in this order: about 56).
        keys = [(n, s) for n in sorted(cfg.sample_counts, reverse=True) for s in cfg.seeds]
        jobs = [(cfg, s, [p.to_json() for p in train[s][:n]], [p.to_json() for p in tests[s]], base,
                 str(self.run_dir.path / f"n{n}" / f"seed{s}")) for n, s in keys]
        print(f"{len(cfg.sample_counts)} sample counts {cfg.sample_counts} × {len(cfg.seeds)} seeds × "
              f"{len(cfg.methods)} methods ({cfg.workers} workers)", flush=True)
        with worker_pool(cfg.workers) as pool:
            results = list(pool.map(_run_seed, *zip(*jobs)))
        return self.sweep_report(dict(zip(keys, results)))

    def sweep_report(self, score_files: dict[tuple[int, int], dict[str, str]]) -> dict:
        """Per method and metric, one curve per seed (the base model at 0 samples); IQM over seeds; CSV and PNG."""
        from rlhf.curves import aggregate, plot_aggregates, write_aggregates_csv

        cfg = self.config
        base_rows = {row["id"]: row for row in read_jsonl(self.run_dir.stage_path("base") / "summaries.jsonl")}
        _, _, tests = self.splits()
        aggregates: dict[str, dict[str, dict]] = {metric: {} for metric in cfg.metrics}
        table: dict[str, dict] = {}
        for method in cfg.methods:
            curves = []
            for seed in cfg.seeds:
                base_scores = [base_rows[p.id] for p in tests[seed]]
                points = [{"step": 0, **{m: mean_metric(base_scores, m) for m in cfg.metrics}}]
                for n in cfg.sample_counts:
                    scores = read_jsonl(score_files[(n, seed)][method])
                    points.append({"step": n, **{m: mean_metric(scores, m) for m in cfg.metrics}})
                curves.append(points)
            for metric in cfg.metrics:
                aggregates[metric][method] = aggregate(curves, metric)
            table[method] = {m: {int(step): float(v) for step, v in zip(aggregates[m][method]["step"],
                                                                          aggregates[m][method]["iqm"])}
                             for m in cfg.metrics}
        out = Path(cfg.output_dir)
        write_aggregates_csv(out / "sample_efficiency.csv", aggregates)
        labels = {"recall": "recall of the required facts", "good": "good-summary rate"}
        plot_aggregates(out / "sample_efficiency.png", {labels[m]: aggregates[m] for m in cfg.metrics},
                        xlabel="feedback samples (0: the base model)",
                        title=f"Feedback world ({', '.join(cfg.world.required_facts)}): IQM over {len(cfg.seeds)} seeds")
        summary = {"config": run_identity(cfg), "iqm": table}
        write_json_atomic(out / "summary.json", summary)
        return summary


def mean_metric(rows: Sequence[dict], metric: str) -> float:
    """The mean of a per-summary metric (``recall``, or ``good`` as 0/1) over scored rows."""
    return float(sum(_metric(r, metric) for r in rows) / len(rows))
