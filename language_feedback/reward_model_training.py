"""The reward-model experiment: a Bradley–Terry reward model on summary comparisons, with held-out accuracy.

Training comparisons are the human comparisons of ``split`` in SLF5K-format ``data`` (``human_comparisons``)
plus every ``{"prompt","chosen","rejected"}`` JSONL file in ``comparisons`` (e.g. the feedback-derived
``comparisons.jsonl`` an ILF run writes: selected refinement ≻ initial summary). Held-out comparisons: the
``eval_comparisons`` file, else the human comparisons of ``eval_split``. The prompt of a human comparison is
the summarization prompt, so the reward model scores summaries exactly as the ILF reward-model selector and
best-of-N present them.

The run directory holds ``run_config.json`` and the stage ``model/`` (the reward model, loadable with
``rlhf.preference.PreferenceRewardModel``); a rerun with the same config reuses it, a changed config is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from language_feedback.prompts import summarize_prompt
from language_feedback.summarization_data import comparisons as human_comparisons
from language_feedback.summarization_data import load_slf5k
from rlhf.config import ConfigError
from rlhf.experiment import Experiment
from rlhf.preference import METADATA_FILE, load_comparisons_jsonl, train_reward_model
from rlhf.training import LoraSettings, TrainingSettings


@dataclass
class RewardModelTrainingConfig:
    model: str = "smollm2-135m-instruct"
    data: str = ""  # SLF5K-format JSONL file, directory of <split>.jsonl, or JeremyAlain/SLF5K
    split: str = "train"
    eval_split: str = "test"
    human_comparisons: bool = True  # train on the human comparisons of `split`
    comparisons: list[str] = field(default_factory=list)  # extra JSONL files of prompt/chosen/rejected
    eval_comparisons: str = ""  # held-out JSONL file; default: human comparisons of `eval_split`
    output_dir: str = "runs/reward_model"
    lora: LoraSettings | None = None  # None: fine-tune every weight; the score head always trains in full
    training: TrainingSettings = field(default_factory=lambda: TrainingSettings(learning_rate=1e-4))

    def __post_init__(self) -> None:
        if self.human_comparisons and not self.data:
            raise ConfigError("human_comparisons needs `data` (an SLF5K-format file or directory); or set "
                              "human_comparisons: false and list JSONL files in `comparisons`", key="data")
        if not self.human_comparisons and not self.comparisons:
            raise ConfigError("no training comparisons: set `data` with human_comparisons, or list JSONL files",
                              key="comparisons")
        if not self.eval_comparisons and not self.data:
            raise ConfigError("no held-out comparisons: set eval_comparisons (a JSONL file) or `data` with eval_split",
                              key="eval_comparisons")
        for i, path in enumerate(self.comparisons):
            if not Path(path).is_file():
                raise ConfigError(f"no file at {path}", key=f"comparisons[{i}]")
        if self.eval_comparisons and not Path(self.eval_comparisons).is_file():
            raise ConfigError(f"no file at {self.eval_comparisons}", key="eval_comparisons")


def slf5k_comparisons(data: str, split: str) -> list[dict[str, str]]:
    """The human comparisons of an SLF5K split, prompted with the summarization prompt."""
    return human_comparisons(load_slf5k(data, split), lambda s: summarize_prompt(s.title, s.post))


class RewardModelTraining(Experiment):
    """Train (or reuse) the reward model a :class:`RewardModelTrainingConfig` describes."""

    config: RewardModelTrainingConfig

    def __init__(self, config: RewardModelTrainingConfig):
        self.train_rows = slf5k_comparisons(config.data, config.split) if config.human_comparisons else []
        for path in config.comparisons:
            self.train_rows += load_comparisons_jsonl(path)
        self.eval_rows = (load_comparisons_jsonl(config.eval_comparisons) if config.eval_comparisons
                          else slf5k_comparisons(config.data, config.eval_split))
        super().__init__(config)

    @property
    def model_dir(self) -> Path:
        return self.run_dir.stage_path("model")

    def model(self, out: Path) -> None:
        cfg = self.config
        train_reward_model(cfg.model, self.train_rows, out, eval_comparisons=self.eval_rows, lora=cfg.lora,
                           settings=cfg.training, trainer_dir=self.run_dir.path / "trainer")

    def report(self, metrics: dict[str, Any]) -> str:
        """What the recipe prints: the held-out accuracy before and after training, and where the model is."""
        return (f"held-out accuracy: {metrics['eval_accuracy']:.3f} (before training "
                f"{metrics['eval_accuracy_before']:.3f}, n={metrics['n_eval']})\nreward model: {self.model_dir}")

    def run(self) -> dict[str, Any]:
        """Train unless done; return the metrics (held-out accuracy before and after training, counts)."""
        self.run_dir.stage("model", self.model)
        return json.loads((self.model_dir / METADATA_FILE).read_text())["metrics"]
