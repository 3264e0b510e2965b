"""Contrastive fine-tuning of an open_clip model on (frame, caption) pairs.

This is how a user adapts a small CLIP to their scene, and how an offline machine (no CLIP weights)
gets a working reward model: caption frames (by people or by a state-based captioner), fine-tune,
save a checkpoint directory, and load it with ``CLIPReward.from_pretrained(path, ...)``.

Captions from a captioner repeat ("the pole leans left" many times), so a batch often holds the same
caption for several frames. The loss therefore contrasts each frame against the batch's *distinct*
captions, and each distinct caption against all frames, with every frame carrying that caption a
positive. With distinct captions this is exactly the CLIP loss; with repeats it does not push apart
frames that share a caption.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from accelerate.utils import broadcast_object_list
from open_clip import get_model_preprocess_cfg
from peft import get_peft_model
from torch.optim.swa_utils import update_bn
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from rlhf.config import ConfigError, runtime_field
from rlhf.sharding import check_launch, gather_model
from rlhf.training import LoraSettings
from vlm_rewards.clip_models import FramePreprocessor, OpenClip, frames_to_tensor, save_open_clip
from vlm_rewards.distributed import shard_bounds

logger = logging.getLogger(__name__)

METRICS_FILE = "finetune_metrics.json"

# LoRA goes on modules that are called through forward(): the MLP linears of transformer blocks and the
# convolutions of ModifiedResNet blocks. (nn.MultiheadAttention and ModifiedResNet's attention pool use
# their projection weights functionally, so LoRA layers there would never run.)
DEFAULT_LORA_TARGETS = r".*(mlp\.c_fc|mlp\.c_proj|conv1|conv2|conv3)$"


@dataclass
class FinetuneConfig:
    """Settings for :func:`finetune_clip` (TRL/transformers argument names where one exists)."""

    num_train_epochs: int = 10
    per_device_train_batch_size: int = 64
    learning_rate: float = 1e-3  # suits small randomly initialized models; use ~1e-5 for pretrained CLIP
    weight_decay: float = 0.1
    eval_fraction: float = 0.2  # held-out share of the pairs, never trained on
    seed: int = 0
    lora: LoraSettings | None = None  # None: train every weight; target_modules default: DEFAULT_LORA_TARGETS
    max_logit_scale: float = 100.0  # as in CLIP training: clamp the learned temperature
    per_device_eval_batch_size: int = runtime_field(256)
    progress: bool = runtime_field(True)
    tensorboard_dir: str | None = None  # write loss / accuracy scalars here (TensorBoard)

    def __post_init__(self) -> None:
        if self.per_device_train_batch_size < 2:
            raise ConfigError(f"must be >= 2 for a contrastive loss, got {self.per_device_train_batch_size}",
                              key="per_device_train_batch_size")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ConfigError(f"must be in (0, 1), got {self.eval_fraction}", key="eval_fraction")
        if self.num_train_epochs < 1:
            raise ConfigError(f"must be >= 1, got {self.num_train_epochs}", key="num_train_epochs")


@dataclass
class FinetuneResult:
    """The trained model (LoRA merged in) and what the held-out split says about it."""

    clip: OpenClip
    train_size: int
    eval_size: int
    eval_captions: int  # distinct captions in the held-out split (chance accuracy is about 1/this)
    eval_accuracy_before: float
    eval_accuracy_after: float
    train_losses: list[float] = field(default_factory=list)  # mean loss per epoch

    def metrics(self) -> dict[str, Any]:
        """A JSON-able summary (no model)."""
        return {k: v for k, v in asdict(self).items() if k != "clip"} | {"chance_accuracy": 1.0 / self.eval_captions}


def _check_pairs(frames: Any, captions: list[str]) -> tuple[torch.Tensor, list[str]]:
    frames = frames_to_tensor(frames)
    captions = list(captions)
    if len(captions) != frames.shape[0]:
        raise ValueError(f"{frames.shape[0]} frames but {len(captions)} captions; give one caption per frame")
    for i, c in enumerate(captions):
        if not isinstance(c, str) or not c.strip():
            raise ValueError(f"captions[{i}]: expected a non-empty string, got {c!r}")
    if frames.shape[0] < 2:
        raise ValueError("need at least 2 (frame, caption) pairs: one to train on and one held out")
    return frames, captions


def split_pairs(n: int, eval_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (train indices, held-out indices); at least one of each."""
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_eval = min(n - 1, max(1, round(eval_fraction * n)))
    return perm[n_eval:], perm[:n_eval]


def _encode_texts(clip: OpenClip, captions: list[str], device: torch.device) -> torch.Tensor:
    return F.normalize(clip.model.encode_text(clip.tokenizer(captions).to(device)), dim=-1)


def retrieval_accuracy(clip: OpenClip, frames: Any, captions: list[str], batch_size: int = 256) -> float:
    """Top-1 image→caption retrieval accuracy among the distinct captions of this set.

    A frame counts as correct when its most similar caption (cosine) is the one it was given.
    """
    frames, captions = frames_to_tensor(frames), list(captions)
    model = clip.model
    device = next(model.parameters()).device
    preprocess = FramePreprocessor(get_model_preprocess_cfg(model), device)
    distinct = list(dict.fromkeys(captions))
    target = torch.tensor([distinct.index(c) for c in captions])
    was_training = model.training
    model.eval()
    correct = 0
    with torch.inference_mode():
        text = _encode_texts(clip, distinct, device)
        for start in range(0, frames.shape[0], batch_size):
            img = F.normalize(model.encode_image(preprocess(frames[start : start + batch_size])), dim=-1)
            pred = (img @ text.T).argmax(dim=-1).cpu()
            correct += int((pred == target[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / frames.shape[0]


def caption_contrastive_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, caption_ids: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """CLIP loss between B unit image features and U distinct unit caption features.

    ``caption_ids[i]`` is the row of ``text_features`` that image i was captioned with. Image→text is a
    U-way classification; text→image spreads each caption's target evenly over the images carrying it.
    """
    logits = logit_scale * image_features @ text_features.T  # (B, U)
    image_to_text = F.cross_entropy(logits, caption_ids)
    positives = F.one_hot(caption_ids, text_features.shape[0]).T.float()  # (U, B)
    targets = positives / positives.sum(dim=1, keepdim=True)
    text_to_image = -(targets * F.log_softmax(logits.T, dim=-1)).sum(dim=-1).mean()
    return (image_to_text + text_to_image) / 2


def finetune_clip(
    clip: OpenClip,
    frames: Any,
    captions: list[str],
    config: FinetuneConfig | None = None,
    output_dir: str | os.PathLike | None = None,
    reward_settings: dict | None = None,
    accelerator: Any = None,
) -> FinetuneResult:
    """Fine-tune ``clip`` contrastively on (frame, caption) pairs and report held-out retrieval accuracy.

    ``frames`` are uint8 ``(N, H, W, 3)`` or ``(N, 3, H, W)``; ``captions`` has one string per frame. A
    ``config.eval_fraction`` share is held out. Full fine-tuning trains every weight (the model is
    updated in place); with ``config.lora`` only LoRA adapters (peft) train, and are merged into the
    weights at the end so the result is a plain open_clip model. With ``output_dir`` the model is saved
    there as a checkpoint directory (``CLIPReward.from_pretrained(output_dir, ...)`` loads it), with the
    metrics in ``finetune_metrics.json``; ``reward_settings`` (``goal_prompts``, ``baseline_prompts``,
    ``alpha``: what the model is fine-tuned for) are stored with it and become the reward's defaults.

    Under ``accelerate launch`` pass the ``accelerator`` and the same pairs on every process: each batch of
    ``per_device_train_batch_size`` × processes pairs is split between the processes (data-parallel; under FSDP
    or ZeRO-3 the weights are sharded too), a batch that would leave a process fewer than 2 pairs is skipped on
    all of them, and the trained model is gathered (:func:`rlhf.sharding.gather_model`); the main process
    evaluates and saves it. The result's ``clip`` is the trained model on the main process and None on the
    others; the metrics are the same on every process.
    """
    config = config or FinetuneConfig()
    frames, captions = _check_pairs(frames, captions)
    train_idx, eval_idx = split_pairs(frames.shape[0], config.eval_fraction, config.seed)
    eval_frames, eval_captions = frames[eval_idx], [captions[i] for i in eval_idx]
    acc_before = retrieval_accuracy(clip, eval_frames, eval_captions, config.per_device_eval_batch_size)
    distributed = accelerator is not None and accelerator.num_processes > 1
    rank, world = (accelerator.process_index, accelerator.num_processes) if distributed else (0, 1)
    is_main = rank == 0

    torch.manual_seed(config.seed)
    model = clip.model
    preprocess_cfg = get_model_preprocess_cfg(model)
    if distributed:
        _scalars_as_vectors(model)
    trained = model  # what trains; its forward is CLIP's: (image features, text features, logit scale), normalized
    if config.lora is not None:
        # injects adapters into `model` in place
        trained = get_peft_model(model, config.lora.peft_config(default_targets=DEFAULT_LORA_TARGETS))
    batch_norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    model.train()
    if config.lora is not None:
        for m in batch_norms:
            m.eval()  # adapters only: keep the base model's normalization statistics as they are
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    device = next(model.parameters()).device
    if distributed:
        check_launch(accelerator)
        trained, optimizer = accelerator.prepare(trained, optimizer)  # DDP, or sharded under FSDP / ZeRO-3
        device = accelerator.device
    global_batch = config.per_device_train_batch_size * world
    steps_per_epoch = math.ceil(len(train_idx) / global_batch)
    # Not prepared: accelerate would step a prepared scheduler once per process
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        getattr(optimizer, "optimizer", optimizer), T_max=max(1, config.num_train_epochs * steps_per_epoch))
    preprocess = FramePreprocessor(preprocess_cfg, device)
    max_log_scale = math.log(config.max_logit_scale)
    generator = torch.Generator().manual_seed(config.seed)

    writer = SummaryWriter(config.tensorboard_dir) if config.tensorboard_dir and is_main else None
    if writer:
        writer.add_scalar("finetune/eval_retrieval_accuracy", acc_before, 0)
    step = 0
    losses: list[float] = []
    for epoch in tqdm(range(config.num_train_epochs), desc="finetune clip", disable=not (config.progress and is_main)):
        order = train_idx[torch.randperm(len(train_idx), generator=generator)]  # the same on every process
        epoch_loss = torch.zeros(2, device=device)  # summed loss × pairs, pairs
        for start in range(0, len(order), global_batch):
            batch = order[start : start + global_batch]
            if len(batch) // world < 2:
                continue  # some process would get a single pair, which has nothing to contrast with
            first, end = shard_bounds(len(batch), world, rank)
            idx = batch[first:end]
            batch_captions = [captions[i] for i in idx]
            distinct = list(dict.fromkeys(batch_captions))
            caption_ids = torch.tensor([distinct.index(c) for c in batch_captions], device=device)
            image_features, text_features, logit_scale = trained(
                image=preprocess(frames[idx]), text=clip.tokenizer(distinct).to(device))[:3]
            loss = caption_contrastive_loss(image_features, text_features, caption_ids, logit_scale)
            optimizer.zero_grad(set_to_none=True)
            if distributed:
                accelerator.backward(loss)
            else:
                loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, max_log_scale)
            step_loss = torch.stack([loss.detach() * len(idx), torch.tensor(float(len(idx)), device=device)])
            if distributed:
                step_loss = accelerator.reduce(step_loss, reduction="sum")
            epoch_loss += step_loss
            step += 1
            if writer:
                writer.add_scalar("finetune/train_loss", (step_loss[0] / step_loss[1]).item(), step)
                writer.add_scalar("finetune/logit_scale", logit_scale.item(), step)
        losses.append((epoch_loss[0] / epoch_loss[1]).item())
        if is_main:
            logger.info("epoch %d: train loss %.4f", epoch + 1, losses[-1])

    result_clip, acc_after = None, None
    final = gather_model(accelerator, trained, partial(_empty_open_clip, clip)) if distributed else trained
    if final is not None:  # the main process (or the only one)
        final = _finish(final.to(device), config, preprocess, frames[train_idx])
        if distributed:
            _scalars_as_vectors(final, back=True)
        result_clip = OpenClip(final, clip.tokenizer, copy.deepcopy(clip.model_cfg))
        acc_after = retrieval_accuracy(result_clip, eval_frames, eval_captions, config.per_device_eval_batch_size)
    if distributed:
        acc_after = broadcast_object_list([acc_after])[0]
    result = FinetuneResult(
        clip=result_clip,
        train_size=len(train_idx),
        eval_size=len(eval_idx),
        eval_captions=len(set(eval_captions)),
        eval_accuracy_before=acc_before,
        eval_accuracy_after=acc_after,
        train_losses=losses,
    )
    if is_main:
        logger.info("held-out retrieval accuracy: %.3f before, %.3f after", acc_before, acc_after)
    if writer:
        writer.add_scalar("finetune/eval_retrieval_accuracy", acc_after, step)
        writer.close()
    if output_dir is not None and result_clip is not None:
        save_open_clip(
            result_clip,
            output_dir,
            extra={"finetune": asdict(config), **({"reward": reward_settings} if reward_settings else {})},
            json_files={METRICS_FILE: result.metrics()},
        )
    if distributed:
        accelerator.wait_for_everyone()
    return result


def _finish(model: torch.nn.Module, config: FinetuneConfig, preprocess: FramePreprocessor,
            train_frames: torch.Tensor) -> torch.nn.Module:
    """The trained model as a plain open_clip model in eval mode: LoRA merged, or BatchNorm statistics redone."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    else:
        batch_norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if batch_norms:
            # Running BatchNorm statistics lag far behind weights that changed this much in few steps (a small
            # conv tower scored near chance in eval mode while fitting in train mode); recompute them over the
            # training frames with the final weights.
            size = config.per_device_train_batch_size
            with torch.no_grad():
                update_bn((preprocess(train_frames[i : i + size]) for i in range(0, len(train_frames), size)), model)
    return model.eval()


def _empty_open_clip(clip: OpenClip, module: torch.nn.Module) -> torch.nn.Module:
    """An open_clip model of ``clip``'s architecture without weights (for :func:`rlhf.sharding.gather_model`)."""
    from accelerate import init_empty_weights

    model_cfg = copy.deepcopy(clip.model_cfg)
    model_class = open_clip.CustomTextCLIP if model_cfg.pop("custom_text", False) else open_clip.CLIP
    with init_empty_weights():
        model = model_class(**model_cfg)
    open_clip.set_model_preprocess_cfg(model, get_model_preprocess_cfg(module))
    _scalars_as_vectors(model)  # as the trained model held them
    return model


def _scalars_as_vectors(model: torch.nn.Module, back: bool = False) -> None:
    """Hold CLIP's 0-dim parameters (``logit_scale``, ``logit_bias``) as 1-element vectors, or ``back``.

    FSDP2 cannot shard 0-dim parameters; the forward pass and the loss broadcast either shape alike.
    """
    for name in ("logit_scale", "logit_bias"):
        param = getattr(model, name, None)
        if isinstance(param, torch.nn.Parameter) and param.ndim == (1 if back else 0) and param.numel() == 1:
            setattr(model, name, torch.nn.Parameter(param.detach().reshape(() if back else (1,)),
                                                    requires_grad=param.requires_grad))
