"""vlm_rewards: CLIP reward models from captions (VLM-RM), gymnasium/SB3 wrappers, distributed scoring, fine-tuning."""

from vlm_rewards.clip_models import OpenClip, load_open_clip, save_open_clip
from vlm_rewards.clip_reward import CLIPReward
from vlm_rewards.configs import small_conv_clip_config, tiny_vit_clip_config

__all__ = [
    "CLIPReward",
    "OpenClip",
    "load_open_clip",
    "save_open_clip",
    "small_conv_clip_config",
    "tiny_vit_clip_config",
]
