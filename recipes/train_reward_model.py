"""Train a Bradley–Terry reward model on summary comparisons and report its held-out accuracy.

    python recipes/train_reward_model.py --config recipes/configs/reward_model_cpu.yaml
    accelerate launch --config_file recipes/accelerate/<config>.yaml recipes/train_reward_model.py \\
        --config recipes/configs/reward_model_gpu.yaml --data /path/to/slf5k

Training comparisons: the human comparisons of ``split`` in the SLF5K-format ``data`` (when
``human_comparisons`` is true) plus every ``{"prompt","chosen","rejected"}`` JSONL file in
``comparisons`` (e.g. the feedback-derived ``comparisons.jsonl`` that ``recipes/ilf_summarize.py``
writes: selected refinement ≻ initial summary). Held-out comparisons: the ``eval_comparisons`` JSONL
file, else the human comparisons of ``eval_split``. Prints the held-out accuracy before and after
training and the model directory; a rerun with a finished ``output_dir`` only prints its saved
metrics. All the work is in ``rlhf.preference``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from language_feedback.prompts import summarize_prompt
from language_feedback.summarization_data import comparisons as human_comparisons
from language_feedback.summarization_data import load_slf5k
from rlhf.config import load_config
from rlhf.preference import METADATA_FILE, load_comparisons_jsonl, train_reward_model
from rlhf.training import LoraSettings, TrainingSettings


@dataclass
class TrainRewardModelConfig:
    model: str = "smollm2-135m-instruct"
    data: str = ""  # SLF5K-format JSONL file, directory of <split>.jsonl, or JeremyAlain/SLF5K
    split: str = "train"
    eval_split: str = "test"
    human_comparisons: bool = True  # train on the human comparisons of `split`
    comparisons: list[str] = field(default_factory=list)  # extra JSONL files of prompt/chosen/rejected
    eval_comparisons: str = ""  # held-out JSONL file; default: human comparisons of `eval_split`
    output_dir: str = "runs/reward_model"
    use_lora: bool = False
    lora: LoraSettings = field(default_factory=LoraSettings)
    training: TrainingSettings = field(default_factory=lambda: TrainingSettings(learning_rate=1e-4))


def slf5k_comparisons(data: str, split: str) -> list[dict[str, str]]:
    # The prompt is the summarization prompt, so the reward model scores summaries exactly as the
    # ILF reward-model selector and best-of-N present them.
    return human_comparisons(load_slf5k(data, split), lambda s: summarize_prompt(s.title, s.post))


def main(argv: list[str] | None = None) -> dict:
    config = load_config(TrainRewardModelConfig, argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    output_dir = Path(config.output_dir)
    if (output_dir / METADATA_FILE).exists():
        metrics = json.loads((output_dir / METADATA_FILE).read_text())["metrics"]
        print(f"already trained, skipping: {output_dir}")
    else:
        if config.human_comparisons and not config.data:
            raise SystemExit("human_comparisons needs --data (an SLF5K-format file or directory); "
                             "or pass --human_comparisons false --comparisons [file.jsonl]")
        train = slf5k_comparisons(config.data, config.split) if config.human_comparisons else []
        for path in config.comparisons:
            train += load_comparisons_jsonl(path)
        if not train:
            raise SystemExit("no training comparisons: set --data with human_comparisons, or --comparisons [file.jsonl]")
        if config.eval_comparisons:
            held_out = load_comparisons_jsonl(config.eval_comparisons)
        elif config.data:
            held_out = slf5k_comparisons(config.data, config.eval_split)
        else:
            raise SystemExit("no held-out comparisons: set --eval_comparisons file.jsonl or --data with eval_split")
        print(f"training on {len(train)} comparisons, held-out {len(held_out)}")
        metrics = train_reward_model(
            config.model, train, output_dir, eval_comparisons=held_out,
            lora=config.lora if config.use_lora else None, settings=config.training,
        )
    print(f"held-out accuracy: {metrics['eval_accuracy']:.3f} (before training {metrics['eval_accuracy_before']:.3f}, "
          f"n={metrics['n_eval']})")
    print(f"reward model: {output_dir}")
    return metrics


if __name__ == "__main__":
    main()
