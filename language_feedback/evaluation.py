"""Evaluations of summaries and selectors against people's judgements.

- :func:`evaluate_win_rate` (``recipes/eval/win_rate.py``): methods' summaries against reference summaries,
  judged by a reward model or an LM judge, as a win rate with a 95% interval.
- :func:`run_selector_diagnostics` (``recipes/eval/selector_diagnostics.py``): does a selector use the
  feedback? How often it ranks the human refinement above the initial output with true and with shuffled
  feedback, and whether its scores follow length instead. On a text-quickstart run (``format: world``),
  where a ground truth exists: how often it picks the refinement with the best ground-truth score, with the
  true and with shuffled feedback, against what picking at random would give.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from language_feedback.prompts import summarize_prompt, summary_completion
from language_feedback.selectors import SelectionItem, make_selector, selector_diagnostics
from language_feedback.summarization_data import FIELDS, load_slf5k
from rlhf.artifacts import DataFormatError, iter_jsonl, write_csv_atomic, write_json_atomic, write_jsonl_atomic
from rlhf.config import ConfigError
from rlhf.curves import save_figure
from rlhf.metrics import win_rate
from rlhf.preference import PairwiseLMJudge, PreferenceRewardModel, compare

JUDGES = ("reward_model", "lm")


@dataclass
class WinRateConfig:
    data: str = ""  # SLF5K-format JSONL file, directory of <split>.jsonl, or JeremyAlain/SLF5K
    split: str = "test"
    summaries: list[str] = field(default_factory=list)  # [name=]path.jsonl with {"id", "summary"} rows
    reference_field: str = "tldr_human_reference_summary"
    judge: str = "reward_model"  # reward_model | lm
    judge_model: str = ""  # reward-model directory (judge=reward_model) or causal LM name/path (judge=lm)
    batch_size: int = 8
    seed: int = 0
    output_dir: str = "runs/win_rate"

    def __post_init__(self) -> None:
        for key in ("data", "judge_model"):
            if not getattr(self, key):
                raise ConfigError("required: pass --data (SLF5K format), --summaries [[name=]file.jsonl,...] and "
                                  "--judge_model", key=key)
        if not self.summaries:
            raise ConfigError("give at least one [name=]file.jsonl of {id, summary} rows", key="summaries")
        if self.reference_field not in FIELDS:
            raise ConfigError(f"{self.reference_field!r}: expected one of {', '.join(FIELDS)}", key="reference_field")
        if self.judge not in JUDGES:
            raise ConfigError(f"{self.judge!r}: expected one of {JUDGES}", key="judge")


def read_summaries(entry: str, known_ids: set[str]) -> tuple[str, dict[str, str]]:
    """``[name=]path`` → (method name, {id: summary}); a bad row raises naming file and line."""
    name, _, path = entry.rpartition("=")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"summaries file not found: {path}")
    out: dict[str, str] = {}
    for _, where, row in iter_jsonl(path):
        if "id" not in row or not isinstance(row.get("summary"), str):
            raise DataFormatError(f"{where}: expected an object with 'id' and a string 'summary'")
        sample_id = str(row["id"])
        if sample_id not in known_ids:
            raise DataFormatError(f"{where}: id {sample_id!r} is not a post of the evaluated data split")
        if sample_id in out:
            raise DataFormatError(f"{where}: duplicate id {sample_id!r}")
        out[sample_id] = row["summary"]
    if not out:
        raise DataFormatError(f"{path}: no summaries")
    return name or path.stem, out


def plot_win_rates(rows: list[dict], judge: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.5, 1.8 + 1.4 * len(rows)), 3.8))
    x = range(len(rows))
    values = [r["win_rate"] for r in rows]
    errors = [[v - r["low"] for v, r in zip(values, rows)], [r["high"] - v for v, r in zip(values, rows)]]
    ax.bar(x, values, yerr=errors, capsize=4, color="tab:blue")
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="parity with reference")
    ax.set_xticks(list(x), [f"{r['method']}\n(n={r['n']})" for r in rows])
    ax.set_ylim(0, 1)
    ax.set_ylabel("win rate vs reference")
    ax.set_title(f"judge: {judge}\n(95% bootstrap CI)", fontsize=8)
    ax.legend(fontsize=8, loc="upper right")
    save_figure(fig, path, dpi=120)


def win_rate_line(row: dict) -> str:
    """One method's result as the recipe prints it."""
    return (f"{row['method']}: win rate vs reference {row['win_rate']:.3f} [{row['low']:.3f}, {row['high']:.3f}] "
            f"(n={row['n']}, wins {row['wins']}, ties {row['ties']}, losses {row['losses']}, judge {row['judge']})")


def evaluate_win_rate(cfg: WinRateConfig) -> list[dict]:
    """One row per method (win rate and interval, wins/ties/losses); writes results, outcomes and a plot."""
    posts = {s.id: s for s in load_slf5k(cfg.data, cfg.split)}
    if cfg.judge == "reward_model":
        judge, as_text = PreferenceRewardModel(cfg.judge_model, batch_size=cfg.batch_size), summary_completion
    else:
        judge, as_text = PairwiseLMJudge(cfg.judge_model, batch_size=cfg.batch_size), str.strip
    judge_name = f"{cfg.judge}:{cfg.judge_model}"

    rows, per_item = [], []
    for entry in cfg.summaries:
        method, summaries = read_summaries(entry, set(posts))
        ids = list(summaries)
        missing = [i for i in ids if not getattr(posts[i], cfg.reference_field).strip()]
        if missing:
            raise DataFormatError(f"{entry}: posts {missing[:5]} have an empty {cfg.reference_field!r}")
        prompts = [summarize_prompt(posts[i].title, posts[i].post) for i in ids]
        references = [as_text(getattr(posts[i], cfg.reference_field)) for i in ids]
        outcomes = compare(judge, prompts, [as_text(summaries[i]) for i in ids], references)
        estimate = win_rate(outcomes)
        row = {"method": method, "n": len(ids), "win_rate": estimate.value, "low": estimate.low, "high": estimate.high,
               "wins": outcomes.count(1.0), "ties": outcomes.count(0.5), "losses": outcomes.count(0.0),
               "judge": judge_name}
        rows.append(row)
        per_item += [{"method": method, "id": i, "summary": summaries[i], "outcome": o} for i, o in zip(ids, outcomes)]

    out = Path(cfg.output_dir)
    write_json_atomic(out / "results.json", {"config": dataclasses.asdict(cfg), "results": rows})
    write_csv_atomic(out / "results.csv", rows)
    write_jsonl_atomic(out / "outcomes.jsonl", per_item)
    plot_win_rates(rows, f"{cfg.judge}:{Path(cfg.judge_model).name}", out / "win_rate.png")
    return rows



@dataclass
class SelectorDiagnosticsConfig:
    data: str = ""  # the annotations / SLF5K data, or (format: world) a text quickstart's output_dir
    format: str = "auto"  # auto | slf5k | code_feedback | world
    split: str = "train"  # SLF5K split (directory sources)
    selectors: list[str] = field(default_factory=lambda: ["embedding", "instructrm"])
    embedder: str = "all-minilm-l6-v2"
    judge_model: str = "smollm2-135m-instruct"  # for instructrm
    instructrm_phrasings: int = 0  # 0 = all question phrasings; fewer = proportionally less compute
    reward_model: str = ""  # for the reward_model selector; format world: "" = the run's seed-0 reward model
    batch_size: int = 8
    limit: int = 0  # 0 = every input
    seed: int = 0
    output_dir: str = "runs/selector_diagnostics"

    def __post_init__(self) -> None:
        if not self.data:
            raise ConfigError("no data: pass code-feedback annotations (mbpp_code_feedback.jsonl format) or SLF5K-format "
                              "data (a JSONL file or a directory of <split>.jsonl files)", key="data")
        if self.format not in ("auto", "slf5k", "code_feedback", "world"):
            raise ConfigError(f"{self.format!r}: expected auto, slf5k, code_feedback or world", key="format")
        if self.format == "world" and not (Path(self.data) / "world" / "posts.jsonl").is_file():
            raise ConfigError(f"{self.data} is not a finished text quickstart run (no world/posts.jsonl)", key="data")


def detect_format(path: str) -> str:
    p = Path(path)
    if (p / "world" / "posts.jsonl").is_file():
        return "world"
    first = next((line for line in (p / "train.jsonl" if p.is_dir() else p).open() if line.strip()), "{}")
    return "code_feedback" if {"Feedback", "original_model_completion"} <= set(json.loads(first)) else "slf5k"


def load_items(cfg: SelectorDiagnosticsConfig) -> tuple[list[SelectionItem], str]:
    """Inputs with a human refinement as SelectionItems, and the noun InstructRM should use."""
    fmt = detect_format(cfg.data) if cfg.format == "auto" else cfg.format
    if fmt == "code_feedback":
        from language_feedback.code_data import load_code_feedback

        def body(program: str, prompt: str) -> str:  # the shared prompt says nothing about the feedback
            return program.removeprefix(prompt)

        items = [
            SelectionItem(r.prompt, body(r.original_program, r.prompt), r.feedback,
                          (body(r.original_program, r.prompt),), human_refinement=body(r.refinement, r.prompt))
            for r in load_code_feedback(cfg.data)
        ]
        noun = "program"
    else:
        from language_feedback.summarization_data import feedback_samples, load_slf5k

        samples = [s for s in feedback_samples(load_slf5k(cfg.data, cfg.split)) if s.ideal_human_summary.strip()]
        items = [
            SelectionItem(summarize_prompt(s.title, s.post), s.generated_summary_for_feedback, s.feedback,
                          (s.generated_summary_for_feedback,), human_refinement=s.ideal_human_summary)
            for s in samples
        ]
        noun = "summary"
    return (items[: cfg.limit] if cfg.limit else items), noun


def build_selector(name: str, cfg: SelectorDiagnosticsConfig, noun: str):
    if name == "reward_model":
        from language_feedback.prompts import summary_completion

        path = cfg.reward_model or (str(Path(cfg.data) / "seed0" / "reward_model" / "rm") if cfg.format == "world"
                                    else "")
        if not path:
            raise ConfigError("the reward_model selector needs a reward model directory", key="reward_model")
        return make_selector("reward_model", reward_model=PreferenceRewardModel(path),
                             format_completion=summary_completion if noun == "summary" else (lambda c: c))
    if name in ("embedding", "grounded"):
        return make_selector(name, embedder=cfg.embedder)
    if name == "instructrm":
        from rlhf.models import load_causal_lm

        model, tokenizer = load_causal_lm(cfg.judge_model)
        return make_selector("instructrm", model=model, tokenizer=tokenizer, noun=noun, batch_size=cfg.batch_size,
                             phrasings=cfg.instructrm_phrasings)
    if name == "random":
        return make_selector("random", seed=cfg.seed)
    return make_selector(name)  # unknown names raise listing the known ones


def plot_diagnostics(rows: list[dict], path: Path, *, reference: tuple[str, str], ylabel: str) -> None:
    """Each selector's rate with true and with shuffled feedback; ``reference``: (row key, label) of a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(rows), 3.6))
    for k, (key, label) in enumerate((("true", "true feedback"), ("shuffled", "shuffled feedback"))):
        xs = [i + (k - 0.5) * 0.35 for i in range(len(rows))]
        vals = [r[f"{key}_rate"] for r in rows]
        err = [[v - r[f"{key}_low"] for v, r in zip(vals, rows)], [r[f"{key}_high"] - v for v, r in zip(vals, rows)]]
        ax.bar(xs, vals, width=0.35, yerr=err, capsize=3, label=label)
    if reference[0] != "chance_rate":
        ax.axhline(0.5, color="gray", ls=":", lw=1, label="chance")
    ax.axhline(rows[0][reference[0]], color="black", ls="--", lw=1, label=reference[1])
    ax.set_xticks(range(len(rows)), [r["selector"] for r in rows])
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path, dpi=120)


def world_items(run_dir: str | Path) -> tuple[list[SelectionItem], list[list[float]]]:
    """The ILF refinements of a text quickstart run as selection items (true feedback), and the ground-truth
    value of every candidate; only items whose candidates differ in ground-truth value (where picking matters)."""
    from language_feedback.feedback_world import Post, score

    run_dir = Path(run_dir)
    required = json.loads((run_dir / "run_config.json").read_text())["world"]["required_facts"]
    posts = {row["id"]: Post.from_json(row) for row in iter_rows(run_dir / "world" / "posts.jsonl")}
    items, values = [], []
    for seed_dir in sorted(run_dir.glob("seed*")):
        feedback = {row["id"]: row for row in iter_rows(seed_dir / "data" / "feedback.jsonl")}
        for row in iter_rows(seed_dir / "ilf_embedding" / "round1" / "refinements" / "refinements.jsonl"):
            post, sample = posts[row["id"]], feedback[row["id"]]
            candidates = tuple(dict.fromkeys(c.strip() for c in row["refinements"] if c.strip()))
            gt = [score(post, c, required).value for c in candidates]
            if len(set(gt)) > 1:
                items.append(SelectionItem(summarize_prompt(post.title, post.text), sample["generated_summary_for_feedback"],
                                           sample["feedback"], candidates))
                values.append(gt)
    if not items:
        raise DataFormatError(f"{run_dir}: no refinements whose ground-truth values differ (nothing to select)")
    return items, values


def iter_rows(path: Path) -> list[dict]:
    return [row for _, _, row in iter_jsonl(path)]


def ground_truth_agreement(selector, items: list[SelectionItem], values: list[list[float]], seed: int = 0) -> dict:
    """How often ``selector`` picks a candidate with the best ground-truth value, with the true and with shuffled
    feedback (Wilson intervals), and the rate picking at random would have."""
    from language_feedback.selectors import _derangement
    from rlhf.metrics import proportion_ci

    def agreement(chosen: list[int]) -> float:
        return sum(v[c] == max(v) for c, v in zip(chosen, values))

    perm = _derangement(len(items), seed)
    shuffled = [dataclasses.replace(item, feedback=items[p].feedback) for item, p in zip(items, perm)]
    true, mixed = (proportion_ci(agreement(selector.select(batch)), len(items)) for batch in (items, shuffled))
    chance = sum(sum(x == max(v) for x in v) / len(v) for v in values) / len(values)
    return {"selector": selector.name, "n": len(items), "true_rate": true.value, "true_low": true.low,
            "true_high": true.high, "shuffled_rate": mixed.value, "shuffled_low": mixed.low,
            "shuffled_high": mixed.high, "chance_rate": chance}


def run_selector_diagnostics(cfg: SelectorDiagnosticsConfig) -> list[dict]:
    """One row per selector (see :func:`language_feedback.selectors.selector_diagnostics`, or on a text
    quickstart run :func:`ground_truth_agreement`); writes results and a plot."""
    if cfg.format == "world" or (cfg.format == "auto" and detect_format(cfg.data) == "world"):
        items, values = world_items(cfg.data)
        rows = [ground_truth_agreement(build_selector(name, cfg, "summary"), items, values, cfg.seed)
                for name in cfg.selectors]
        plot = {"reference": ("chance_rate", "picking at random"), "ylabel": "picks the best refinement (ground truth)"}
    else:
        items, noun = load_items(cfg)
        rows = [selector_diagnostics(build_selector(name, cfg, noun), items, seed=cfg.seed) for name in cfg.selectors]
        plot = {"reference": ("human_longer_rate", "human refinement is longer"),
                "ylabel": "human refinement ranked above initial"}
    rows = [{**row, "data": cfg.data} for row in rows]
    out = Path(cfg.output_dir)
    write_json_atomic(out / "results.json", rows)
    write_csv_atomic(out / "results.csv", rows)
    plot_diagnostics(rows, out / "diagnostics.png", **plot)
    return rows
    items, noun = load_items(cfg)
    rows = []
    for name in cfg.selectors:
        result = selector_diagnostics(build_selector(name, cfg, noun), items, seed=cfg.seed)
        result["data"] = cfg.data
        rows.append(result)
    out = Path(cfg.output_dir)
    write_json_atomic(out / "results.json", rows)
    write_csv_atomic(out / "results.csv", rows)
    plot_diagnostics(rows, out / "diagnostics.png", reference=("human_longer_rate", "human refinement is longer"),
                     ylabel="human refinement ranked above initial")
    return rows

