"""Does a selector use the feedback? Ranking of human refinement vs. initial output, true vs. shuffled feedback.

    python recipes/eval/selector_diagnostics.py --data /work/shared/data/mbpp_code_feedback.jsonl \\
        --selectors [embedding,instructrm] --judge_model smollm2-135m-instruct
    python recipes/eval/selector_diagnostics.py --data /path/to/slf5k --split validation --selectors [embedding]

``--data`` is SLF5K-format data (the ideal human summary is the human refinement) or code-feedback
annotations in the ``mbpp_code_feedback.jsonl`` format (the annotator's program is the human refinement);
``--format auto`` tells them apart. For each selector prints the fraction of inputs where it ranks the
human refinement above the initial output with true and with shuffled feedback (95% bootstrap CIs), the
Spearman correlation of its scores with output length, and how often the human refinement is simply the
longer text. Writes ``results.csv``, ``results.json`` and ``diagnostics.png`` to ``output_dir``.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from language_feedback.prompts import summarize_prompt
from language_feedback.selectors import SelectionItem, make_selector, selector_diagnostics
from rlhf.artifacts import atomic_path, write_json_atomic
from rlhf.config import load_config


@dataclass
class SelectorDiagnosticsConfig:
    data: str = ""
    format: str = "auto"  # auto | slf5k | code_feedback
    split: str = "train"  # SLF5K split (directory sources)
    selectors: list[str] = field(default_factory=lambda: ["embedding", "instructrm"])
    embedder: str = "all-minilm-l6-v2"
    judge_model: str = "smollm2-135m-instruct"  # for instructrm
    instructrm_phrasings: int = 0  # 0 = all question phrasings; fewer = proportionally less compute
    batch_size: int = 8
    limit: int = 0  # 0 = every input
    seed: int = 0
    output_dir: str = "runs/selector_diagnostics"


def detect_format(path: str) -> str:
    p = Path(path)
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
    elif fmt == "slf5k":
        from language_feedback.summarization_data import feedback_samples, load_slf5k

        samples = [s for s in feedback_samples(load_slf5k(cfg.data, cfg.split)) if s.ideal_human_summary.strip()]
        items = [
            SelectionItem(summarize_prompt(s.title, s.post), s.generated_summary_for_feedback, s.feedback,
                          (s.generated_summary_for_feedback,), human_refinement=s.ideal_human_summary)
            for s in samples
        ]
        noun = "summary"
    else:
        raise SystemExit(f"--format {cfg.format!r}: expected auto, slf5k or code_feedback")
    return (items[: cfg.limit] if cfg.limit else items), noun


def build(name: str, cfg: SelectorDiagnosticsConfig, noun: str):
    if name == "embedding":
        return make_selector("embedding", embedder=cfg.embedder)
    if name == "instructrm":
        from rlhf.models import load_causal_lm

        model, tokenizer = load_causal_lm(cfg.judge_model)
        return make_selector("instructrm", model=model, tokenizer=tokenizer, noun=noun, batch_size=cfg.batch_size,
                             phrasings=cfg.instructrm_phrasings)
    if name == "random":
        return make_selector("random", seed=cfg.seed)
    return make_selector(name)  # unknown names raise listing the known ones


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(rows), 3.6))
    for k, (key, label) in enumerate((("true", "true feedback"), ("shuffled", "shuffled feedback"))):
        xs = [i + (k - 0.5) * 0.35 for i in range(len(rows))]
        vals = [r[f"{key}_rate"] for r in rows]
        err = [[v - r[f"{key}_low"] for v, r in zip(vals, rows)], [r[f"{key}_high"] - v for v, r in zip(vals, rows)]]
        ax.bar(xs, vals, width=0.35, yerr=err, capsize=3, label=label)
    ax.axhline(0.5, color="gray", ls=":", lw=1, label="chance")
    ax.axhline(rows[0]["human_longer_rate"], color="black", ls="--", lw=1, label="human refinement is longer")
    ax.set_xticks(range(len(rows)), [r["selector"] for r in rows])
    ax.set_ylim(0, 1)
    ax.set_ylabel("human refinement ranked above initial")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    cfg = load_config(SelectorDiagnosticsConfig, argv)
    if not cfg.data:
        raise SystemExit("no data: pass --data with code-feedback annotations (mbpp_code_feedback.jsonl format) "
                         "or SLF5K-format data (a JSONL file or a directory of <split>.jsonl files)")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    items, noun = load_items(cfg)
    rows = []
    for name in cfg.selectors:
        result = selector_diagnostics(build(name, cfg, noun), items, seed=cfg.seed)
        result["data"] = cfg.data
        rows.append(result)
        print(
            f"{name}: human refinement ranked above initial: true feedback {result['true_rate']:.2f} "
            f"[{result['true_low']:.2f}, {result['true_high']:.2f}], shuffled feedback {result['shuffled_rate']:.2f} "
            f"[{result['shuffled_low']:.2f}, {result['shuffled_high']:.2f}]; score~length Spearman "
            f"{result['length_spearman']:.2f}; human refinement is longer in {result['human_longer_rate']:.2f} (n={result['n']})",
            flush=True,
        )
    out = Path(cfg.output_dir)
    write_json_atomic(out / "results.json", rows)
    with atomic_path(out / "results.csv") as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, out / "diagnostics.png")
    print(f"wrote {out / 'results.csv'}, {out / 'results.json'}, {out / 'diagnostics.png'}")
    return rows


if __name__ == "__main__":
    main()
