"""Supervised fine-tuning through TRL: completion-only loss mask, training, atomic (merged) save."""

from __future__ import annotations

import json

import pytest
import torch
from _launch import accelerate_launch
from transformers import AutoModelForCausalLM, AutoTokenizer

from language_feedback.finetune import build_sft_trainer, sft, validate_examples
from language_feedback.generation import generate
from rlhf.training import LoraSettings, TrainingSettings

EXAMPLES = [
    {"prompt": "def add(a, b):", "completion": "\n    return a + b\n"},
    {"prompt": "Write a python function to find the maximum of a list of numbers.\ndef max_of(xs):",
     "completion": "\n    return max(xs)\n"},
    {"prompt": "Feedback: the function fails when the list is empty. Refinement:", "completion": " is_even"},
]


def test_collated_batch_has_labels_only_on_completion_tokens(tiny_lm_path, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    trainer = build_sft_trainer(tiny_lm_path, EXAMPLES, tmp_path / "trainer", settings=TrainingSettings())
    # the trainer's own dataloader: its data collator pads the batch and carries the labels
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == len(EXAMPLES)
    seen = set()
    for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
        ids, labels = ids[mask.bool()].tolist(), labels[mask.bool()].tolist()
        text = tokenizer.decode(ids)
        example = next(e for e in EXAMPLES if text.startswith(e["prompt"]))
        seen.add(example["prompt"])
        n_prompt = len(tokenizer(example["prompt"])["input_ids"])
        assert all(label == -100 for label in labels[:n_prompt]), "a prompt token carries a label"
        learned = [label for label in labels if label != -100]
        assert learned == ids[n_prompt:], "completion tokens must be learned as themselves"
        assert tokenizer.decode(learned) == example["completion"] + tokenizer.eos_token
        # padding carries no label
        assert (batch["labels"][~batch["attention_mask"].bool()] == -100).all()
    assert len(seen) == len(EXAMPLES)


def test_sft_learns_the_completion_and_saves_atomically(tiny_lm_path, tmp_path):
    torch.set_num_threads(1)
    examples = [EXAMPLES[0]]
    out = tmp_path / "model"
    metrics = sft(tiny_lm_path, examples, out,
                  settings=TrainingSettings(learning_rate=3e-3, num_train_epochs=40, per_device_train_batch_size=1, logging_steps=5, seed=0,
                                            report_to=["tensorboard"]))
    assert metrics["n_examples"] == 1 and metrics["train_steps"] == 40
    meta = json.loads((out / "sft.json").read_text())
    assert meta["settings"]["learning_rate"] == 3e-3 and meta["lora"] is None
    assert not list(tmp_path.glob(".model.*"))  # no temporary directory left behind
    assert list((tmp_path / "model.trainer").rglob("events.out.tfevents.*"))  # TensorBoard scalars written
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    before = generate(AutoModelForCausalLM.from_pretrained(tiny_lm_path), tokenizer, [examples[0]["prompt"]],
                      temperature=0, max_new_tokens=8, progress=False)[0][0]
    after = generate(model, tokenizer, [examples[0]["prompt"]], temperature=0, max_new_tokens=8, progress=False)[0][0]
    assert after == examples[0]["completion"] != before


def test_sft_with_lora_saves_a_merged_plain_model(tiny_lm_path, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "lora_model"
    lora = LoraSettings(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["c_attn"])
    sft(tiny_lm_path, EXAMPLES, out, lora=lora, settings=TrainingSettings(learning_rate=1e-2, num_train_epochs=2, per_device_train_batch_size=2))
    assert not (out / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    assert not any("lora" in name for name in merged.state_dict())
    merged_w = merged.transformer.h[0].attn.c_attn.weight
    assert not torch.allclose(merged_w, base.transformer.h[0].attn.c_attn.weight)  # LoRA delta merged in
    assert torch.equal(merged.transformer.h[0].mlp.c_fc.weight, base.transformer.h[0].mlp.c_fc.weight)  # untouched


def test_bad_examples_name_the_item():
    with pytest.raises(ValueError, match=r"examples\[1\]\.completion"):
        validate_examples([{"prompt": "a", "completion": "b"}, {"prompt": "a", "completion": "  "}])
    with pytest.raises(TypeError, match=r"examples\[0\]\.prompt"):
        validate_examples([{"completion": "b"}])
    with pytest.raises(ValueError, match="no examples"):
        validate_examples([])


DDP_SCRIPT = """
import json, sys
from accelerate import Accelerator
from language_feedback.finetune import build_sft_trainer
from rlhf.training import TrainingSettings

accelerator = Accelerator(cpu=True)
path, out = sys.argv[1:3]
examples = [{"prompt": f"p{i}", "completion": f" c{i}"} for i in range(4)]
trainer = build_sft_trainer(path, examples, out + ".trainer", settings=TrainingSettings(per_device_train_batch_size=1))
json.dump({"world_size": trainer.args.world_size, "batches": len(trainer.get_train_dataloader()),
           "accelerator_processes": accelerator.num_processes},
          open(f"{out}.{accelerator.process_index}.json", "w"))
accelerator.end_training()  # destroys the process group: else gloo's threads can abort the process at exit
"""


def test_trainer_is_data_parallel_under_accelerate_launch_on_cpu(tiny_lm_path, tmp_path):
    # Without a GPU, TrainingArguments resets accelerate's state; unless told to use the CPU it silently makes
    # every launched process train alone on all the data (and breaks later barriers).
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    proc = accelerate_launch([script, tiny_lm_path, tmp_path / "out"], use_cpu_env=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        result = json.loads((tmp_path / f"out.{rank}.json").read_text())
        # 4 examples, batch 1 per process, 2 processes: 2 batches each; the recipe's accelerator still sees 2
        assert result == {"world_size": 2, "batches": 2, "accelerator_processes": 2}
