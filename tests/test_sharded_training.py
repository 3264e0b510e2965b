"""Sharded training saves complete models: SFT (full and LoRA), a reward model, GRPO and CLIP fine-tuning, trained with FSDP2 on 2 CPU
processes (recipes/accelerate/fsdp.yaml through `accelerate launch`; see _launch.FSDP_ON_CPU for why accelerate
needs a nudge to shard on CPU).

At the end of each training run a callback records, on every process, the local shard shape of every parameter
(so the test knows the weights really were sharded) and gathers the in-memory model with torch's own API
(``get_model_state_dict(full_state_dict=True)``): the reference the saved directory must equal, parameter by
parameter, and score or generate exactly like.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from _launch import FSDP_ON_CPU, FSDP_TWO_PROCESSES, accelerate_launch
from _recipes import load_recipe
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from language_feedback.finetune import sft
from language_feedback.generation import generate
from rlhf.cli import run_recipe
from rlhf.config import ConfigError
from rlhf.preference import PreferenceRewardModel
from rlhf.reward import PromptCompletion
from rlhf.training import LoraSettings

SCRIPT = FSDP_ON_CPU + """
import json, sys
from pathlib import Path

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.tensor import DTensor
from transformers import TrainerCallback

from language_feedback.finetune import sft
from rlhf.grpo import train_grpo
from rlhf.preference import train_reward_model
from rlhf.reward import RewardModel
from rlhf.training import GRPOSettings, LoraSettings, TrainingSettings


class GatherAtEnd(TrainerCallback):
    def __init__(self, name):
        self.name = name

    def on_train_end(self, args, state, control, model=None, **kwargs):  # args: anything with a process_index
        shards = {n: [list(p.to_local().shape), list(p.shape)] for n, p in model.named_parameters()
                  if isinstance(p, DTensor)}
        (OUT / f"{self.name}.shards{args.process_index}.json").write_text(json.dumps(shards))
        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if args.process_index == 0:
            torch.save(full, OUT / f"{self.name}.gathered.pt")


class Brevity(RewardModel):
    name = "brevity"

    def score(self, batch):
        return torch.tensor([-len(x.completion) / 10 for x in batch])


path, OUT = sys.argv[1], Path(sys.argv[2])
examples = [{"prompt": f"def f{i}(x):", "completion": f"\\n    return x + {i}\\n"} for i in range(4)]
settings = TrainingSettings(learning_rate=1e-2, max_steps=2, per_device_train_batch_size=1, max_length=64)
sft(path, examples, OUT / "sft", settings=settings, callbacks=[GatherAtEnd("sft")])
lora = LoraSettings(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["c_attn"])
sft(path, examples, OUT / "sft_lora", lora=lora, settings=settings, callbacks=[GatherAtEnd("sft_lora")])
comparisons = [{"prompt": f"Post {i}", "chosen": " short.", "rejected": " long and rambling."} for i in range(4)]
train_reward_model(path, comparisons, OUT / "rm", settings=settings, callbacks=[GatherAtEnd("rm")])
grpo = GRPOSettings(learning_rate=1e-2, max_steps=1, per_device_train_batch_size=2, num_generations=2,
                    max_completion_length=4)
train_grpo(path, [f"Post {i}" for i in range(2)], [Brevity()], OUT / "grpo", settings=grpo,
           callbacks=[GatherAtEnd("grpo")])

from accelerate import Accelerator
from accelerate.state import AcceleratorState
from vlm_rewards import load_open_clip, tiny_vit_clip_config
from vlm_rewards.finetune import FinetuneConfig, finetune_clip

AcceleratorState._reset_state(reset_partial_state=True)  # a fresh FSDP plugin: the trainers' one wraps GPT2Block
accelerator = Accelerator(cpu=True)
torch.manual_seed(0)
clip = load_open_clip(tiny_vit_clip_config())
frames = torch.randint(0, 256, (24, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
captions = [f"a {c} square" for c in ("red", "green", "blue")] * 8
result = finetune_clip(clip, frames, captions, FinetuneConfig(num_train_epochs=2, per_device_train_batch_size=4,
                       progress=False), output_dir=OUT / "clip", accelerator=accelerator)
GatherAtEnd("clip").on_train_end(accelerator, None, None, model=clip.model)  # the model finetune_clip trained
(OUT / f"clip.result{accelerator.process_index}.json").write_text(json.dumps(
    {"clip_is_none": result.clip is None, "losses": result.train_losses, "after": result.eval_accuracy_after}))
torch.distributed.destroy_process_group()  # else gloo's threads can abort the process at exit
"""


@pytest.fixture(scope="module")
def sharded_runs(tiny_lm_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    script = out / "train_sharded.py"
    script.write_text(SCRIPT)
    proc = accelerate_launch([script, tiny_lm_path, out], launcher_args=FSDP_TWO_PROCESSES, use_cpu_env=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def gathered(out, name: str) -> dict[str, torch.Tensor]:
    """The in-memory model gathered at the end of training, after checking both processes held half of it."""
    shards = [json.loads((out / f"{name}.shards{rank}.json").read_text()) for rank in (0, 1)]
    assert shards[0], f"{name}: no parameter was sharded"
    for param, (local, full) in shards[0].items():
        # FSDP2 shards dim 0 across the 2 processes (rank 0 takes the larger half of an odd size)
        assert local[0] == (full[0] + 1) // 2 and local[1:] == full[1:], param
        assert shards[1][param][0][0] == full[0] // 2, param
    return torch.load(out / f"{name}.gathered.pt")


def assert_same_weights(saved: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
    assert set(saved) == set(reference)
    for name, tensor in reference.items():
        assert saved[name].shape == tensor.shape, name
        assert torch.equal(saved[name], tensor), name


def test_sharded_sft_saves_the_complete_model(sharded_runs, tiny_lm_path):
    reference = gathered(sharded_runs, "sft")
    saved = AutoModelForCausalLM.from_pretrained(sharded_runs / "sft")  # loads in one process
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    # every parameter at full shape (the base model's), equal to the gathered in-memory model, and trained
    assert {n: p.shape for n, p in saved.named_parameters()} == {n: p.shape for n, p in base.named_parameters()}
    assert_same_weights(saved.state_dict(), reference)
    assert not torch.equal(saved.transformer.h[1].mlp.c_fc.weight, base.transformer.h[1].mlp.c_fc.weight)

    in_memory = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    in_memory.load_state_dict(reference)
    tokenizer = AutoTokenizer.from_pretrained(sharded_runs / "sft")
    prompts = ["def f1(x):", "def add(a, b):"]
    ids = tokenizer(prompts[0], return_tensors="pt")["input_ids"]
    assert torch.equal(saved(ids).logits, in_memory(ids).logits)
    texts = [generate(m, tokenizer, prompts, temperature=0, max_new_tokens=12, progress=False) for m in (saved, in_memory)]
    assert texts[0] == texts[1]


def test_sharded_lora_sft_saves_the_complete_merged_model(sharded_runs, tiny_lm_path):
    from peft import get_peft_model

    reference = gathered(sharded_runs, "sft_lora")
    assert any("lora_A" in name for name in reference)
    saved = AutoModelForCausalLM.from_pretrained(sharded_runs / "sft_lora")
    assert not any("lora" in name for name in saved.state_dict())  # a plain model
    # the gathered adapter merged into the base by peft, independently of the code under test
    lora = LoraSettings(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["c_attn"])
    in_memory = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_lm_path), lora.peft_config(task_type="CAUSAL_LM"))
    in_memory.load_state_dict(reference)
    merged = in_memory.merge_and_unload()
    assert_same_weights(saved.state_dict(), merged.state_dict())
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    assert not torch.equal(saved.transformer.h[0].attn.c_attn.weight, base.transformer.h[0].attn.c_attn.weight)
    tokenizer = AutoTokenizer.from_pretrained(sharded_runs / "sft_lora")
    prompts = ["def f2(x):", "Post 1"]
    assert (generate(saved, tokenizer, prompts, temperature=0, max_new_tokens=12, progress=False)
            == generate(merged, tokenizer, prompts, temperature=0, max_new_tokens=12, progress=False))


def test_sharded_reward_model_training_saves_the_complete_model(sharded_runs, tiny_lm_path):
    reference = gathered(sharded_runs, "rm")
    saved = AutoModelForSequenceClassification.from_pretrained(sharded_runs / "rm")
    assert saved.score.weight.shape == (1, 64)
    assert_same_weights(saved.state_dict(), reference)

    in_memory = AutoModelForSequenceClassification.from_pretrained(tiny_lm_path, num_labels=1)
    in_memory.load_state_dict(reference)
    tokenizer = AutoTokenizer.from_pretrained(sharded_runs / "rm")
    batch = [PromptCompletion(f"Post {i}", text) for i in range(3) for text in (" short.", " long and rambling.")]
    scores = PreferenceRewardModel(sharded_runs / "rm")(batch)
    assert torch.equal(scores, PreferenceRewardModel(in_memory, tokenizer)(batch))
    assert json.loads((sharded_runs / "rm" / "reward_model.json").read_text())["metrics"]["train_steps"] == 2


def test_sharded_grpo_saves_the_complete_policy(sharded_runs, tiny_lm_path):
    reference = gathered(sharded_runs, "grpo")
    saved = AutoModelForCausalLM.from_pretrained(sharded_runs / "grpo" / "final")
    assert_same_weights(saved.state_dict(), reference)
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    assert any(not torch.equal(p, base.state_dict()[n]) for n, p in saved.state_dict().items())
    assert (sharded_runs / "grpo" / "log_history.json").is_file()


def test_sharded_clip_finetuning_saves_the_complete_model(sharded_runs):
    from vlm_rewards import CLIPReward, load_open_clip, tiny_vit_clip_config

    reference = gathered(sharded_runs, "clip")
    # sharded, CLIP's 0-dim logit_scale is a 1-element vector (FSDP2 cannot shard 0-dim tensors); saved, 0-dim again
    assert reference["logit_scale"].shape == (1,)
    reference["logit_scale"] = reference["logit_scale"].reshape(())
    saved = load_open_clip(sharded_runs / "clip")
    assert_same_weights(saved.model.state_dict(), reference)
    results = [json.loads((sharded_runs / f"clip.result{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["clip_is_none"] for r in results] == [False, True]  # the model on the main process only
    assert results[0]["losses"] == results[1]["losses"] and results[0]["after"] == results[1]["after"]
    assert json.loads((sharded_runs / "clip" / "finetune_metrics.json").read_text())["eval_accuracy_after"] == \
        results[0]["after"]

    torch.manual_seed(0)
    in_memory = load_open_clip(tiny_vit_clip_config())  # the script's initial weights
    assert not torch.equal(in_memory.model.visual.conv1.weight, saved.model.visual.conv1.weight)  # trained
    in_memory.model.load_state_dict(reference)
    frames = torch.randint(0, 256, (5, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    rewards = [CLIPReward(c.model, c.tokenizer, ["a red square"], ["a square"], alpha=0.5)(frames)
               for c in (saved, in_memory)]
    assert torch.equal(rewards[0], rewards[1])


# -- launches that cannot shard as they ask are refused before any work ------------------------------------------

REPO = Path(__file__).resolve().parents[1]
REWARD_MODEL_ARGS = [REPO / "recipes" / "train_reward_model.py", "--config",
                     REPO / "recipes" / "configs" / "reward_model_cpu.yaml"]


def test_fsdp_config_without_gpus_is_refused_before_any_work(tmp_path):
    # On CPU accelerate would drop FSDP and train every process on its own, each writing the same model.
    proc = accelerate_launch([*REWARD_MODEL_ARGS, "--output_dir", tmp_path / "rm"], launcher_args=FSDP_TWO_PROCESSES,
                             use_cpu_env=False)
    assert proc.returncode != 0
    message = ("error: config key 'distributed_type': the accelerate config asks for FSDP but there are no GPU "
               "processes to shard over (no GPU on this machine)")
    # From each process that got that far: torchrun stops the other one as soon as the first exits.
    assert proc.stderr.count(message) >= 1  # without a traceback (torchrun adds its own)
    assert "[rank0]: Traceback" not in proc.stderr and "[rank1]: Traceback" not in proc.stderr
    assert not (tmp_path / "rm").exists()


def test_deepspeed_launch_without_deepspeed_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("DeepSpeed is installed here")
    # what `accelerate launch` passes to the processes for recipes/accelerate/deepspeed_zero3.yaml
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL", "true")
    with pytest.raises(SystemExit) as exit_:
        run_recipe(load_recipe("train_reward_model.py").main, [*map(str, REWARD_MODEL_ARGS[1:]), "--output_dir",
                                                               str(tmp_path / "rm")])
    assert exit_.value.code == 2
    assert ("config key 'distributed_type': the accelerate config asks for DeepSpeed (ZeRO stage 3) but DeepSpeed "
            "is not installed") in capsys.readouterr().err
    assert not (tmp_path / "rm").exists()


def test_trainer_that_does_not_shard_as_launched_is_refused(tiny_lm_path, tmp_path, monkeypatch):
    # A library call (no recipe) under an FSDP launch that accelerate did not set up as FSDP: caught on the trainer.
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ConfigError, match="asks for FSDP but there are no GPU processes to shard over "
                                          r"\(accelerate set up DistributedType.NO\)"):
        sft(tiny_lm_path, [{"prompt": "a", "completion": " b"}], tmp_path / "model")
    assert not (tmp_path / "model").exists()
