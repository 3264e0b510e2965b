"""Sample efficiency of ILF against its baselines: win rate vs. reference summaries at several feedback-sample counts.

    python recipes/eval/ilf_sample_efficiency.py --config recipes/configs/ilf_summarize_sample_efficiency_cpu.yaml
    python recipes/eval/ilf_sample_efficiency.py --config ... --data /path/to/slf5k --sample_counts [100,1000,5000]

ILF, fine-tuning on the people's or the initial summaries, and reward-model best-of-N (alone or on the ILF
model), each trained on nested subsets of the feedback samples and judged against the reference TL;DRs.
Prints one line per point and writes ``results.csv``, ``results.json`` and ``sample_efficiency.png``; rerunning
with more counts or methods reuses the finished stages. All the work (and the details) in
``language_feedback.sample_efficiency``.
"""

from __future__ import annotations

from language_feedback.sample_efficiency import SampleEfficiencyConfig, SummarizationSampleEfficiency, result_line
from rlhf.cli import run_recipe
from rlhf.config import load_config


def main(argv: list[str] | None = None) -> list[dict]:
    config = load_config(SampleEfficiencyConfig, argv)
    experiment = SummarizationSampleEfficiency(config)
    results = experiment.run()
    print("\n".join(result_line(r, len(experiment.test)) for r in results),
          f"\nwrote results.csv, results.json and sample_efficiency.png to {config.output_dir}")
    return results


if __name__ == "__main__":
    run_recipe(main)
