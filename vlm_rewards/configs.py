"""Small open_clip model configs (random weights) for CPU fine-tuning and tests.

Pass one to :func:`vlm_rewards.clip_models.load_open_clip` or
:meth:`vlm_rewards.clip_reward.CLIPReward.from_pretrained`. No CLIP weights can be downloaded here,
so a small model fine-tuned on captioned frames (:mod:`vlm_rewards.finetune`) is how a working
reward model is made offline. A small convolutional image tower learns simple scenes (e.g. CartPole
pole angles at 64×64) in minutes on a CPU where a small ViT tower of similar cost does not.
"""

from __future__ import annotations

# open_clip's SimpleTokenizer (the BPE vocabulary shipped with open_clip) has this many tokens.
CLIP_VOCAB_SIZE = 49408


def small_conv_clip_config(
    image_size: int = 64,
    embed_dim: int = 64,
    vision_width: int = 16,
    vision_layers: tuple[int, int, int, int] = (1, 1, 1, 1),
    text_width: int = 64,
    text_layers: int = 2,
    context_length: int = 32,
) -> dict:
    """A small CLIP with a ModifiedResNet (convolutional) image tower.

    ``image_size`` must be a multiple of 32 (the tower downsamples by 32); ``vision_width`` is the
    stem width (the last stage has ``32 * vision_width`` channels).
    """
    if image_size % 32:
        raise ValueError(f"image_size must be a multiple of 32 for a ModifiedResNet tower, got {image_size}")
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {
            "image_size": image_size,
            "layers": list(vision_layers),
            "width": vision_width,
            "head_width": vision_width,
        },
        "text_cfg": {
            "context_length": context_length,
            "vocab_size": CLIP_VOCAB_SIZE,
            "width": text_width,
            "heads": max(1, text_width // 32),
            "layers": text_layers,
        },
    }


def tiny_vit_clip_config(image_size: int = 32, embed_dim: int = 32, width: int = 32, layers: int = 1) -> dict:
    """A tiny CLIP with a ViT image tower (patch size 8); for tests and smoke runs."""
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": image_size, "layers": layers, "width": width, "patch_size": 8, "head_width": 16},
        "text_cfg": {
            "context_length": 16,
            "vocab_size": CLIP_VOCAB_SIZE,
            "width": width,
            "heads": max(1, width // 16),
            "layers": layers,
        },
    }
