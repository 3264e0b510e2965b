"""Bradley–Terry reward models: training through TRL, LoRA with the score head, padding-independent scoring."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest
import torch
from _launch import accelerate_launch
from safetensors import safe_open
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback

from rlhf.preference import (
    METADATA_FILE,
    PreferenceRewardModel,
    load_comparisons_jsonl,
    preference_accuracy,
    train_reward_model,
    validate_comparisons,
)
from rlhf.reward import PromptCompletion
from rlhf.training import LoraSettings, TrainingSettings

POSTS = [
    "my landlord will not return the deposit after I moved out",
    "the function fails when the list is empty",
    "write a python function to find the maximum of a list",
    "the summary is too long and misses the point",
]
GOOD = [" make it shorter and mention the dog.", " the dog is fine now.", " my dog ate it.", " TL;DR: the dog."]
BAD = [" the landlord will not return it.", " assert add(1, 2) == 3", " it is too long.", " Answer yes or no."]


def synthetic_comparisons(seed: int, n: int) -> list[dict[str, str]]:
    """A preference a 2-layer model can learn: chosen summaries mention the dog, rejected ones never do.

    Post, chosen and rejected texts are drawn independently, so nothing but the dog separates them.
    """
    rng = random.Random(seed)
    return [
        {"prompt": f"Post: {rng.choice(POSTS)} (#{seed}-{i})\nTL;DR:", "chosen": rng.choice(GOOD), "rejected": rng.choice(BAD)}
        for i in range(n)
    ]


TRAIN = synthetic_comparisons(0, 48)
HELD_OUT = synthetic_comparisons(1000, 32)
SETTINGS = TrainingSettings(learning_rate=3e-3, num_train_epochs=4, per_device_train_batch_size=8, max_length=128, logging_steps=100)


@pytest.fixture(scope="module")
def trained_rm(tiny_lm_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("rm") / "reward_model"
    metrics = train_reward_model(tiny_lm_path, TRAIN, out, eval_comparisons=HELD_OUT, settings=SETTINGS)
    return out, metrics


def test_training_raises_held_out_accuracy_and_saves_a_loadable_model(trained_rm):
    out, metrics = trained_rm
    assert metrics["n_train"] == metrics["n_train_used"] == 48
    assert metrics["eval_accuracy"] >= 0.9
    assert metrics["eval_accuracy"] > metrics["eval_accuracy_before"]
    saved = json.loads((out / "reward_model.json").read_text())
    assert saved["metrics"]["eval_accuracy"] == metrics["eval_accuracy"]
    assert not list(out.parent.glob(".reward_model.*"))  # no temporary directory left behind

    rm = PreferenceRewardModel(out)
    assert rm.name == "rm_reward_model"
    assert preference_accuracy(rm, HELD_OUT) == pytest.approx(metrics["eval_accuracy"])
    scores = rm([PromptCompletion("Post: a new post\nTL;DR:", GOOD[0]), PromptCompletion("Post: a new post\nTL;DR:", BAD[0])])
    assert scores.shape == (2,) and scores[0] > scores[1]


def test_lora_training_saves_the_score_head(tiny_lm_path, tmp_path):
    out = tmp_path / "rm_lora"
    lora = LoraSettings(r=8, lora_alpha=16, lora_dropout=0.0)
    metrics = train_reward_model(tiny_lm_path, TRAIN, out, eval_comparisons=HELD_OUT, lora=lora, settings=SETTINGS)
    assert (out / "adapter_config.json").exists()
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any("score" in k for k in keys), keys  # modules_to_save=["score"]: the head is in the adapter
    assert any("lora_A" in k for k in keys)
    assert metrics["eval_accuracy"] > metrics["eval_accuracy_before"]
    # Reloaded from disk (base model + adapter, merged) it scores exactly as the in-memory model did.
    assert preference_accuracy(PreferenceRewardModel(out), HELD_OUT) == pytest.approx(metrics["eval_accuracy"])


class StopAtStep(TrainerCallback):
    """Interrupts training after a given step, as a kill would (the checkpoint before it is on disk)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"interrupted at step {self.step}")


def test_interrupted_training_leaves_no_model_and_resumes_from_its_checkpoint(tiny_lm_path, tmp_path, caplog):
    out = tmp_path / "rm"
    settings = TrainingSettings(learning_rate=3e-3, num_train_epochs=2, per_device_train_batch_size=8, max_length=128, save_steps=4)
    with pytest.raises(KeyboardInterrupt):
        train_reward_model(tiny_lm_path, TRAIN, out, settings=settings, callbacks=[StopAtStep(5)])
    assert not out.exists()  # nothing half-written
    assert (tmp_path / "rm.trainer" / "checkpoint-4").is_dir()
    with caplog.at_level(logging.INFO, logger="rlhf.preference"):
        metrics = train_reward_model(tiny_lm_path, TRAIN, out, eval_comparisons=HELD_OUT, settings=settings)
    assert "resuming reward-model training from" in caplog.text and "checkpoint-4" in caplog.text
    assert metrics["train_steps"] == 12  # 48 comparisons / batch 8 × 2 epochs, counted across both runs
    assert metrics["eval_accuracy"] > metrics["eval_accuracy_before"]
    assert (out / "reward_model.json").exists()
    assert not list((tmp_path / "rm.trainer").glob("checkpoint-*"))  # superseded by the finished model


def test_scores_do_not_depend_on_padding_side_or_batch_size(tiny_lm_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_lm_path, num_labels=1)
    batch = [
        PromptCompletion("Post: short\nTL;DR:", " ok"),
        PromptCompletion("Post: my landlord will not return the deposit after I moved out\nTL;DR:", " the dog."),
        PromptCompletion("", "def add(a, b):\n    return a + b\n"),
        PromptCompletion("Feedback: the function fails when the list is empty. Refinement:", " assert add(1, 2) == 3"),
    ]
    reference = PreferenceRewardModel(model, tokenizer, batch_size=1, padding_side="right")(batch)
    assert reference.std() > 0  # the random head gives different texts different scores
    for side in ("left", "right"):
        for batch_size in (1, 4):
            scores = PreferenceRewardModel(model, tokenizer, batch_size=batch_size, padding_side=side)(batch)
            torch.testing.assert_close(scores, reference, atol=1e-5, rtol=1e-4)


def test_long_inputs_keep_their_end_and_are_counted(trained_rm, caplog):
    out, _ = trained_rm
    rm = PreferenceRewardModel(out, max_length=16)
    long_prompt = "Post: " + "the summary is too long " * 20 + "\nTL;DR:"
    with caplog.at_level(logging.WARNING):
        scores = rm([PromptCompletion(long_prompt, GOOD[0]), PromptCompletion(long_prompt, BAD[0])])
    assert "2 of 2 inputs longer than 16 tokens" in caplog.text
    assert scores[0] > scores[1]  # the completion, at the end, is what is kept


def test_bad_comparisons_raise_naming_position_and_field(tmp_path):
    with pytest.raises(ValueError, match=r"comparisons\[1\]: missing comparison field 'rejected'"):
        validate_comparisons([TRAIN[0], {"prompt": "p", "chosen": "a"}])
    with pytest.raises(ValueError, match=r"comparisons\[0\]: field 'chosen' is empty"):
        validate_comparisons([{"prompt": "p", "chosen": " ", "rejected": "b"}])
    with pytest.raises(ValueError, match="no comparisons"):
        validate_comparisons([])
    path = tmp_path / "comparisons.jsonl"
    path.write_text(json.dumps(TRAIN[0]) + "\n\n" + json.dumps({"prompt": "p", "rejected": "b"}) + "\n")
    with pytest.raises(ValueError, match=rf"{path}, line 3: missing comparison field 'chosen'"):
        load_comparisons_jsonl(path)
    path.write_text(json.dumps(TRAIN[0]) + "\n" + json.dumps(TRAIN[1]) + "\n")
    assert load_comparisons_jsonl(path) == TRAIN[:2]


def test_bad_model_or_batch_raises_clearly(trained_rm, tiny_lm_path):
    out, _ = trained_rm
    with pytest.raises(ValueError, match="is not a reward model"):
        PreferenceRewardModel(tiny_lm_path)  # a causal LM without a trained score head
    rm = PreferenceRewardModel(out)
    with pytest.raises(ValueError, match="empty batch"):
        rm([])
    with pytest.raises(TypeError, match=r"batch\[0\] is str, expected PromptCompletion"):
        rm(["just a string"])


DDP_SCRIPT = """
import json, sys
from accelerate import PartialState
from rlhf.preference import train_reward_model
from rlhf.training import TrainingSettings

path, out = sys.argv[1:3]
state = PartialState(cpu=True)
comparisons = [{"prompt": f"p{i}", "chosen": " good", "rejected": " bad"} for i in range(8)]
metrics = train_reward_model(path, comparisons, out + "/rm", settings=TrainingSettings(per_device_train_batch_size=2, max_length=32))
json.dump({"world_size": state.num_processes, "steps": metrics["train_steps"]},
          open(f"{out}/rank{state.process_index}.json", "w"))
state.destroy_process_group()  # else gloo's threads can abort the process at exit
"""


def test_data_parallel_training_under_accelerate_launch_writes_one_model(tiny_lm_path, tmp_path):
    script = tmp_path / "rm_ddp.py"
    script.write_text(DDP_SCRIPT)
    proc = accelerate_launch([script, tiny_lm_path, tmp_path], use_cpu_env=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # 8 comparisons, batch 2 per process, 2 processes: 2 steps each (alone, a process would take 4)
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == {"world_size": 2, "steps": 2}
    assert (tmp_path / "rm" / METADATA_FILE).is_file()
    assert not list(tmp_path.glob(".rm.*"))  # no second process's temporary copy left behind


CHAT_TEMPLATE = ("{% for m in messages %}<|pad|>{{ m['role'] }}: {{ m['content'] }}<|endoftext|>{% endfor %}"
                 "{% if add_generation_prompt %}<|pad|>assistant: {% endif %}")


def test_conversational_reward_model_in_grpo_reads_the_chat_template_not_flattened_text(tiny_lm_path, tmp_path):
    """Trained on TRL's conversational format, the reward model scores GRPO's conversational prompts through its
    chat template (system and user roles kept), records the format, and refuses plain text."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from rlhf.reward import PromptCompletion, as_trl_reward_func

    model_dir = tmp_path / "chat_lm"
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(model_dir)
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        (model_dir / name).write_bytes((Path(tiny_lm_path) / name).read_bytes())

    def chat(row: dict) -> dict:
        return {"prompt": [{"role": "system", "content": "Summarize."}, {"role": "user", "content": row["prompt"]}],
                "chosen": [{"role": "assistant", "content": row["chosen"]}],
                "rejected": [{"role": "assistant", "content": row["rejected"]}]}

    out = tmp_path / "rm"
    metrics = train_reward_model(model_dir, [chat(r) for r in TRAIN], out, eval_comparisons=[chat(r) for r in HELD_OUT],
                                 settings=SETTINGS)
    assert json.loads((out / "reward_model.json").read_text())["prompt_format"] == "conversational"
    assert metrics["eval_accuracy"] > metrics["eval_accuracy_before"]
    rm = PreferenceRewardModel(out)
    item = PromptCompletion(chat(TRAIN[0])["prompt"], chat(TRAIN[0])["chosen"])
    # The score is the one of the chat-templated conversation (system and user roles and separators included).
    ids = tokenizer.apply_chat_template(item.prompt + item.completion, tokenize=True, return_dict=True)["input_ids"]
    assert rm._encode(item) == ids
    assert "system: Summarize." in tokenizer.decode(ids)
    with pytest.raises(ValueError, match="trained on conversational prompts but was given plain text"):
        rm([PromptCompletion(TRAIN[0]["prompt"], TRAIN[0]["chosen"])])

    seen = []

    class Recording(PreferenceRewardModel):
        def score(self, batch):
            seen.extend(batch)
            return super().score(batch)

    recording = Recording(out)
    args = GRPOConfig(output_dir=str(tmp_path / "grpo"), per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=6, max_steps=1, logging_steps=1, report_to=[], use_cpu=True,
                      save_strategy="no", bf16=False)
    prompts = [chat(r)["prompt"] for r in TRAIN[:2]]
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=as_trl_reward_func(recording), args=args,
                          train_dataset=Dataset.from_dict({"prompt": prompts * 2}))
    trainer.train()
    assert seen and all(x.prompt in prompts and isinstance(x.completion, list) for x in seen)
    logged = [row[f"rewards/{recording.name}/mean"] for row in trainer.state.log_history
              if f"rewards/{recording.name}/mean" in row]
    assert logged and logged[0] == pytest.approx(float(rm(seen).mean()), abs=1e-5)


def test_reward_model_recipe_reuses_its_model_and_refuses_changed_settings(tiny_lm_path, tmp_path, capsys):
    """A rerun with the same config reuses the trained model; a changed setting is refused with the key, never
    answered with the old model's accuracy."""
    from _recipes import REPO, load_recipe

    from rlhf.artifacts import RunDirectoryMismatch

    recipe = load_recipe("train_reward_model.py")
    args = ["--config", str(REPO / "recipes" / "configs" / "reward_model_cpu.yaml"), "--model", tiny_lm_path,
            "--data", str(REPO / "recipes" / "data" / "slf5k_demo"), "--output_dir", str(tmp_path / "rm"),
            "--training", "{learning_rate: 1.0e-3, num_train_epochs: 1, per_device_train_batch_size: 8, max_length: 256}"]
    first = recipe.main(args)
    model = tmp_path / "rm" / "model" / "model.safetensors"
    written = model.stat().st_mtime_ns
    assert recipe.main(args) == first and model.stat().st_mtime_ns == written
    changed = [*args[:-1], "{learning_rate: 1.0e-3, num_train_epochs: 2, per_device_train_batch_size: 8, max_length: 256}"]
    with pytest.raises(RunDirectoryMismatch, match="training.num_train_epochs: 1.0 → 2.0"):
        recipe.main(changed)
    assert "reward model: " + str(tmp_path / "rm" / "model") in capsys.readouterr().out
