"""vlm_rewards: CLIP reward models from captions (VLM-RM), gymnasium/SB3 wrappers, distributed scoring, fine-tuning.

Names are imported lazily, so that e.g. ``vlm_rewards.wrappers`` (which SubprocVecEnv workers import to
unpickle ``RenderFrameInInfo``) does not pull in open_clip.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "CLIPReward": "vlm_rewards.clip_reward",
    "OpenClip": "vlm_rewards.clip_models",
    "load_open_clip": "vlm_rewards.clip_models",
    "save_open_clip": "vlm_rewards.clip_models",
    "small_conv_clip_config": "vlm_rewards.configs",
    "tiny_vit_clip_config": "vlm_rewards.configs",
}

__all__ = [
    "CLIPReward",
    "OpenClip",
    "load_open_clip",
    "save_open_clip",
    "small_conv_clip_config",
    "tiny_vit_clip_config",
]

if TYPE_CHECKING:
    from vlm_rewards.clip_models import OpenClip, load_open_clip, save_open_clip
    from vlm_rewards.clip_reward import CLIPReward
    from vlm_rewards.configs import small_conv_clip_config, tiny_vit_clip_config


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vlm_rewards' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
