"""Loading, saving and tensor preprocessing for open_clip models.

Everything that turns "which CLIP" into a model, and frames into the model's input, lives here so
that the reward model and fine-tuning preprocess frames identically.

A checkpoint directory is open_clip's own ``local-dir`` format: ``open_clip_config.json``
(``{"model_cfg": ..., "preprocess_cfg": ...}``) next to ``open_clip_model.safetensors``, so
``open_clip.create_model("local-dir:<dir>")`` loads it too.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torchvision.transforms.v2.functional as TF
from safetensors.torch import save_file
from torchvision.transforms import InterpolationMode

from rlhf.artifacts import atomic_path
from rlhf.models import ModelNotAvailableError

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"


@dataclass
class OpenClip:
    """An open_clip model, its tokenizer, the config it was built from (needed to save it), whether its weights
    are random (an architecture without pretrained weights), and what a checkpoint stored beside its weights
    (``save_open_clip``'s ``extra``: e.g. the reward prompts and alpha it was fine-tuned for)."""

    model: torch.nn.Module
    tokenizer: Any
    model_cfg: dict | None = None
    random_weights: bool = False
    extra: dict = field(default_factory=dict)


def load_open_clip(
    source: str | os.PathLike | dict,
    pretrained: str | None = None,
    *,
    device: str | torch.device = "cpu",
    preprocess_cfg: dict | None = None,
) -> OpenClip:
    """Build an open_clip model and tokenizer.

    ``source`` is one of:
      - a built-in architecture name (``"ViT-B-32"``, ``"RN50"``, see ``open_clip.list_models()``), with
        ``pretrained`` a pretrained tag or a local weights file (``None``: random weights);
      - a checkpoint directory written by :func:`save_open_clip` (or any open_clip ``local-dir``);
      - a model config dict ``{"embed_dim": ..., "vision_cfg": {...}, "text_cfg": {...}}`` (random weights),
        e.g. a small ModifiedResNet tower (``vision_cfg.layers`` a list of 4 ints) at 64×64.

    ``preprocess_cfg`` overrides the preprocessing (mean, std, interpolation, resize_mode).
    """
    if isinstance(source, dict):
        model_cfg = copy.deepcopy(source)
        for key in ("embed_dim", "vision_cfg", "text_cfg"):
            if key not in model_cfg:
                raise ValueError(f"open_clip model config dict is missing {key!r} (has {sorted(model_cfg)})")
        try:
            model = open_clip.CLIP(**copy.deepcopy(model_cfg)).to(device)
        except TypeError as e:  # unknown keys surface as unexpected keyword arguments
            raise ValueError(f"open_clip model config dict: {e}") from None
        cfg = {**_default_preprocess_cfg(), "size": model.visual.image_size, **(preprocess_cfg or {})}
        open_clip.set_model_preprocess_cfg(model, cfg)
        context_length = model_cfg["text_cfg"].get("context_length", 77)
        return OpenClip(model, open_clip.SimpleTokenizer(context_length=context_length), model_cfg, random_weights=True)

    source = str(source)
    path = Path(source.removeprefix("local-dir:")).expanduser()
    extra: dict = {}
    if source.startswith("local-dir:") or path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            inside = sorted(str(c.parent) for c in path.glob(f"*/{CONFIG_FILE}")) + sorted(
                str(c.parent) for c in path.glob(f"*/*/{CONFIG_FILE}"))
            hint = f"; the checkpoint inside it is {inside[0]}" if len(inside) == 1 else (
                f"; checkpoints inside it: {', '.join(inside[:5])}" if inside else "")
            raise FileNotFoundError(f"{path}: not an open_clip checkpoint directory (no {CONFIG_FILE}){hint}")
        if pretrained is not None:
            raise ValueError(f"pretrained={pretrained!r} given with checkpoint directory {path}; its weights are used")
        name = f"local-dir:{path}"
        try:
            saved = json.loads((path / CONFIG_FILE).read_text())
            model_cfg, extra = saved["model_cfg"], saved.get("vlm_rewards", {})
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(
                f"{path / CONFIG_FILE}: not a valid open_clip config (needs a 'model_cfg' object): {e}"
            ) from e
    elif "/" in source or source.startswith((".", "~")):
        raise FileNotFoundError(f"{source}: no such path (give an open_clip checkpoint directory, an architecture "
                                f"name such as ViT-B-32, or a model config)")
    else:
        if source not in open_clip.list_models():
            raise ValueError(
                f"unknown open_clip model {source!r}: not a directory and not one of open_clip.list_models() "
                f"(e.g. {', '.join(open_clip.list_models()[:5])}, ...); or pass a config dict"
            )
        if pretrained and not os.path.isfile(pretrained):
            cached = open_clip.get_pretrained_cfg(source, pretrained)
            if not cached:
                raise ValueError(
                    f"pretrained={pretrained!r} for {source!r} is neither a local file nor a known tag "
                    f"({', '.join(open_clip.list_pretrained_tags_by_model(source)) or 'none'})"
                )
        name = source
        model_cfg = open_clip.get_model_config(source)
    try:
        model = open_clip.create_model(
            name, pretrained=pretrained, device=device, force_preprocess_cfg=preprocess_cfg, pretrained_text=False
        )
    except RuntimeError as e:
        if pretrained and "download" in str(e).lower():
            raise ModelNotAvailableError(
                f"could not fetch pretrained weights {pretrained!r} for {source!r} (no network to a model hub "
                f"here?): pass a local weights file as pretrained=, a checkpoint directory, or pretrained=None "
                f"for random weights. Cause: {e}"
            ) from e
        raise
    return OpenClip(model, open_clip.get_tokenizer(name), model_cfg, random_weights=name == source and not pretrained,
                    extra=extra)


def stored_reward_settings(path: str | os.PathLike) -> dict:
    """The reward prompts and alpha a fine-tuned checkpoint stores ({} when it stores none)."""
    config = Path(path) / CONFIG_FILE
    if not config.is_file():
        return {}
    return json.loads(config.read_text()).get("vlm_rewards", {}).get("reward", {})


def save_open_clip(
    clip: OpenClip, path: str | os.PathLike, extra: dict | None = None, json_files: dict[str, Any] | None = None
) -> Path:
    """Write ``clip`` as a checkpoint directory (atomically) that :func:`load_open_clip` rebuilds.

    ``extra`` (e.g. training settings) is stored under ``"vlm_rewards"`` in the config file;
    ``json_files`` maps file names to JSON-able objects written into the same directory.
    """
    if clip.model_cfg is None:
        raise ValueError("cannot save this open_clip model: its model config is unknown (build it with load_open_clip)")
    tokenizer = clip.tokenizer
    if not isinstance(tokenizer, open_clip.SimpleTokenizer):
        # An HF tokenizer would need its files copied next to the weights; not needed for the towers used here.
        raise TypeError(f"saving models with a {type(tokenizer).__name__} tokenizer is not supported")
    config = {"model_cfg": clip.model_cfg, "preprocess_cfg": dict(open_clip.get_model_preprocess_cfg(clip.model))}
    if extra:
        config["vlm_rewards"] = extra
    state = {k: v.detach().to("cpu").contiguous() for k, v in clip.model.state_dict().items()}
    with atomic_path(path) as tmp:
        tmp.mkdir()
        save_file(state, str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        for name, obj in (json_files or {}).items():
            (tmp / name).write_text(json.dumps(obj, indent=2, default=str) + "\n")
    return Path(path)


def _default_preprocess_cfg() -> dict:
    return {
        "mean": open_clip.OPENAI_DATASET_MEAN,
        "std": open_clip.OPENAI_DATASET_STD,
        "interpolation": "bicubic",
        "resize_mode": "shortest",
        "fill_color": 0,
    }


def frames_to_tensor(frames: Any) -> torch.Tensor:
    """Validate frames and return them as a uint8 ``(N, 3, H, W)`` tensor (a view when possible).

    Accepts uint8 numpy arrays or tensors shaped ``(N, H, W, 3)`` or ``(N, 3, H, W)``, or a sequence of
    ``(H, W, 3)`` / ``(3, H, W)`` frames of one size.
    """
    if isinstance(frames, Sequence) and not isinstance(frames, (str, bytes)):
        if len(frames) == 0:
            raise ValueError("frames: empty batch")
        items = [f if isinstance(f, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(f)) for f in frames]
        shapes = {tuple(f.shape) for f in items}
        if len(shapes) > 1:
            raise ValueError(f"frames: a list of frames must share one shape, got {sorted(shapes)}")
        frames = torch.stack(items)
    elif isinstance(frames, np.ndarray):
        # ascontiguousarray copies only when needed, e.g. MuJoCo's flipped (negative-stride) renders
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    elif not isinstance(frames, torch.Tensor):
        raise TypeError(f"frames: expected a uint8 numpy array, tensor or list of frames, got {type(frames).__name__}")
    if frames.dtype != torch.uint8:
        raise TypeError(
            f"frames: dtype must be uint8 (0..255 RGB), got {frames.dtype}; "
            "convert float images in [0, 1] with (x * 255).round().astype(np.uint8)"
        )
    if frames.ndim != 4:
        hint = " (one frame? add a batch axis: frames[None])" if frames.ndim == 3 else ""
        raise ValueError(f"frames: expected rank 4 (N,H,W,3) or (N,3,H,W), got shape {tuple(frames.shape)}{hint}")
    if frames.shape[0] == 0:
        raise ValueError("frames: empty batch")
    channels_last, channels_first = frames.shape[3] == 3, frames.shape[1] == 3
    if channels_last and channels_first:
        raise ValueError(f"frames: shape {tuple(frames.shape)} is ambiguous (3 could be channels or a side)")
    if channels_last:
        return frames.permute(0, 3, 1, 2)
    if channels_first:
        return frames
    raise ValueError(f"frames: expected 3 RGB channels in axis 1 or 3, got shape {tuple(frames.shape)}")


class FramePreprocessor:
    """uint8 ``(N, 3, H, W)`` frames → the model's normalized float input, as tensor ops on one device.

    Follows the model's own preprocess config the way open_clip's eval transform does (resize mode
    ``shortest``: resize the short side + center crop; ``squash``; ``longest``: resize the long side +
    pad with ``fill_color``; interpolation; mean and std), but on whole batches: torchvision resizes
    the uint8 frames (antialiased; on CPU this matches open_clip's PIL pipeline to ±1 level), floats
    appear only at the model's input size, and ``/255``, ``-mean`` and ``/std`` are folded into one
    multiply-add, so preprocessing costs little next to the image tower.
    """

    def __init__(self, preprocess_cfg: dict, device: torch.device | str):
        size = preprocess_cfg["size"]
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.resize_mode = preprocess_cfg.get("resize_mode", "shortest")
        if self.resize_mode not in ("shortest", "squash", "longest"):
            raise ValueError(f"preprocess_cfg.resize_mode: unsupported {self.resize_mode!r}")
        interpolation = preprocess_cfg.get("interpolation", "bicubic")
        self.interpolation = InterpolationMode.BICUBIC if interpolation == "bicubic" else InterpolationMode.BILINEAR
        self.fill = int(preprocess_cfg.get("fill_color", 0))
        mean = torch.tensor(preprocess_cfg["mean"], dtype=torch.float32, device=device).view(1, 3, 1, 1)
        std = torch.tensor(preprocess_cfg["std"], dtype=torch.float32, device=device).view(1, 3, 1, 1)
        # (x / 255 - mean) / std == x * scale + shift
        self.scale = 1.0 / (255.0 * std)
        self.shift = -mean / std
        self.device = torch.device(device)

    def _resize(self, frames: torch.Tensor, size: list[int]) -> torch.Tensor:
        if list(frames.shape[-2:]) == list(size):
            return frames
        return TF.resize(frames, size, interpolation=self.interpolation, antialias=True)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """Preprocess validated uint8 ``(N, 3, H, W)`` frames (see :func:`frames_to_tensor`)."""
        th, tw = self.size
        h, w = frames.shape[-2:]
        frames = frames.to(self.device, non_blocking=True)
        if self.resize_mode == "squash":
            frames = self._resize(frames, [th, tw])
        elif self.resize_mode == "shortest":
            # open_clip: Resize(short side) for square targets, ResizeKeepRatio otherwise; then CenterCrop.
            if th == tw:
                short, long = min(h, w), max(h, w)
                long_new = int(th * long / short)  # torchvision's rounding for Resize(int)
                size = [th, long_new] if h <= w else [long_new, th]
            else:
                ratio = min(h / th, w / tw)
                size = [round(h / ratio), round(w / ratio)]
            frames = TF.center_crop(self._resize(frames, size), [th, tw])
        else:  # longest: open_clip's ResizeKeepRatio(longest=1) + CenterCropOrPad(fill)
            ratio = max(h / th, w / tw)
            frames = self._resize(frames, [round(h / ratio), round(w / ratio)])
            nh, nw = frames.shape[-2:]
            if nh < th or nw < tw:
                pad_w, pad_h = max(tw - nw, 0), max(th - nh, 0)
                frames = TF.pad(frames, [pad_w // 2, pad_h // 2, (pad_w + 1) // 2, (pad_h + 1) // 2], fill=self.fill)
            frames = TF.center_crop(frames, [th, tw])
        return torch.addcmul(self.shift, frames.float(), self.scale)
