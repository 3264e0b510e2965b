"""Sample efficiency in the feedback world: each method's recall and good-summary rate against the number of
feedback samples, IQM over seeds.

    python recipes/eval/text_sample_efficiency.py --config recipes/configs/text/sample_efficiency_cpu.yaml
    python recipes/eval/text_sample_efficiency.py --config ... --sample_counts [32,64,128] --seeds [0,1,2]

The same methods as the text quickstart (``recipes/quickstart_text.py``; SDPO included here), trained on nested
subsets of each seed's feedback samples, scored on the seed's share of the test posts. Writes
``sample_efficiency.csv``, ``sample_efficiency.png`` and ``summary.json``; every (count, seed, method) is a
resumable stage. All the work is in ``language_feedback.text_quickstart``.
"""

from __future__ import annotations

from language_feedback.text_quickstart import TextSampleEfficiency, TextSampleEfficiencyConfig
from rlhf.cli import run_recipe
from rlhf.config import load_config


def main(argv: list[str] | None = None) -> dict:
    config = load_config(TextSampleEfficiencyConfig, argv)
    summary = TextSampleEfficiency(config).run()
    for method, metrics in summary["iqm"].items():
        for metric, by_count in metrics.items():
            print(f"{method} {metric}: " + ", ".join(f"n={n} {v:.2f}" for n, v in by_count.items()))
    print(f"wrote sample_efficiency.csv, sample_efficiency.png and summary.json to {config.output_dir}")
    return summary


if __name__ == "__main__":
    run_recipe(main)
