"""vlm_rewards: CLIP reward models from captions (VLM-RM), gymnasium/SB3 wrappers, distributed scoring, fine-tuning.

Modules: ``clip_reward`` (the reward model), ``clip_models`` (loading, saving, preprocessing), ``configs`` (small
CLIP configs), ``wrappers`` (gymnasium and SB3), ``distributed`` (scoring sharded over processes), ``finetune``
(contrastive fine-tuning from captions), ``video`` (policy videos with both rewards); the experiments, which
build on ``envs``: ``robotics`` (policy training), ``quickstart``, ``reward_quality``. Names are imported lazily,
so that e.g. ``vlm_rewards.wrappers`` (which SubprocVecEnv workers import) does not pull in open_clip.
"""

from rlhf.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "CLIPReward": "vlm_rewards.clip_reward",
    "OpenClip": "vlm_rewards.clip_models",
    "load_open_clip": "vlm_rewards.clip_models",
    "save_open_clip": "vlm_rewards.clip_models",
    "small_conv_clip_config": "vlm_rewards.configs",
    "tiny_vit_clip_config": "vlm_rewards.configs",
})
