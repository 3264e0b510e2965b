"""Does a selector use the feedback? Ranking of human refinement vs. initial output, true vs. shuffled feedback.

    python recipes/eval/selector_diagnostics.py --data /work/shared/data/mbpp_code_feedback.jsonl \\
        --selectors [embedding,instructrm] --judge_model smollm2-135m-instruct
    python recipes/eval/selector_diagnostics.py --data /path/to/slf5k --split validation --selectors [embedding]

``--data`` is SLF5K-format data (the ideal human summary is the human refinement) or code-feedback
annotations in the ``mbpp_code_feedback.jsonl`` format (the annotator's program is the human refinement);
``--format auto`` tells them apart; on a text quickstart's output directory (``--format world``) it measures
how often each selector picks the refinement with the best ground-truth score. For each selector prints the fraction of inputs where it ranks the
human refinement above the initial output with true and with shuffled feedback (95% bootstrap CIs), the
Spearman correlation of its scores with output length, and how often the human refinement is simply the
longer text. All the work is in
``language_feedback.evaluation``. Writes ``results.csv``, ``results.json`` and ``diagnostics.png`` to ``output_dir``.
"""

from __future__ import annotations

from language_feedback.evaluation import SelectorDiagnosticsConfig, run_selector_diagnostics
from rlhf.cli import run_recipe
from rlhf.config import load_config


def main(argv: list[str] | None = None) -> list[dict]:
    config = load_config(SelectorDiagnosticsConfig, argv)
    rows = run_selector_diagnostics(config)
    for r in rows:
        what = "picks the best refinement (ground truth)" if "chance_rate" in r else "human refinement ranked above initial"
        line = (f"{r['selector']}: {what}: true feedback {r['true_rate']:.2f} [{r['true_low']:.2f}, {r['true_high']:.2f}], "
                f"shuffled feedback {r['shuffled_rate']:.2f} [{r['shuffled_low']:.2f}, {r['shuffled_high']:.2f}]")
        if "chance_rate" in r:
            line += f"; picking at random {r['chance_rate']:.2f} (n={r['n']})"
        else:
            line += (f"; score~length Spearman {r['length_spearman']:.2f}; human refinement is longer in "
                     f"{r['human_longer_rate']:.2f} (n={r['n']})")
        print(line)
    print(f"wrote results.csv, results.json and diagnostics.png to {config.output_dir}")
    return rows


if __name__ == "__main__":
    run_recipe(main)
