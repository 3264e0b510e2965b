"""Text quickstart: language feedback teaches a small model what a reader wants, on a CPU, against a ground truth.

    python recipes/quickstart_text.py                  # = --config recipes/configs/text/quickstart.yaml
    python recipes/quickstart_text.py --seeds [0] --feedback_samples 16 --output_dir runs/qs_text_small

A procedural feedback world (posts with a hidden reader preference, an oracle that writes feedback in words,
a ground-truth scorer) and, per seed at equal numbers of feedback samples, ILF with the embedding selector
and with a ground-truth selector, refinements without feedback, ILF with shuffled feedback, fine-tuning on
the model's own summaries, best-of-N with a reward model, and the base model. Prints a table with 95%
intervals and every target's PASS/FAIL. All the work is in ``language_feedback.text_quickstart``.
"""

from __future__ import annotations

from pathlib import Path

from language_feedback.text_quickstart import TextQuickstart, TextQuickstartConfig
from rlhf.cli import run_recipe
from rlhf.config import load_config

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "text" / "quickstart.yaml"


def main(argv: list[str] | None = None) -> dict:
    summary = TextQuickstart(load_config(TextQuickstartConfig, argv, default_config=DEFAULT_CONFIG)).run()
    print(f"\nwrote summary.json, results.csv, table.txt and methods.png to {summary['config']['output_dir']}")
    return summary


if __name__ == "__main__":
    run_recipe(main)
