"""Sharded training (FSDP through accelerate, DeepSpeed ZeRO-3): saving complete models, and checking the launch.

Under FSDP or ZeRO-3 every process holds a shard of each weight, so a model saved by the main process alone
would be a shard. Every trainer in the toolkit (SFT, reward models, GRPO, CLIP fine-tuning) therefore saves
through :func:`gather_model`: all processes take part in gathering the state dict the way accelerate and
``Trainer.save_model`` do (``Accelerator.get_state_dict``), and the main process gets an ordinary, unsharded copy
of the model holding it, which it saves (merging LoRA first where the trainer does) atomically, as before.
Without sharding (one process, or data-parallel DDP) the trained model is used as it is.

Which accelerate configs shard is decided by ``accelerate launch`` (``recipes/accelerate/fsdp*.yaml``,
``deepspeed_zero3.yaml``). :func:`check_launch` refuses, before any work, a launch that asks for sharding it
cannot have: FSDP without GPUs (accelerate then silently trains every process alone, or plain data-parallel
on CPU), DeepSpeed that is not installed, and ZeRO-3 that cannot gather its weights for saving.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rlhf.config import ConfigError

__all__ = ["check_launch", "gather_model", "is_sharded"]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "false").lower() in ("1", "true", "yes")


def check_launch(accelerator: Any = None) -> None:
    """Raise ``ConfigError`` naming the accelerate config option when the launch cannot shard as it asks.

    ``accelerate launch`` passes its config to the processes as environment variables (``ACCELERATE_USE_FSDP``,
    ``ACCELERATE_USE_DEEPSPEED``, ...). Without ``accelerator`` the check reads those and the hardware, so a
    recipe can run it before anything else; with the trainer's ``accelerator`` it checks what accelerate really
    set up (FSDP asked for, but another mode running).
    """
    if _env_flag("ACCELERATE_USE_FSDP"):
        if accelerator is not None:  # what accelerate really set up
            shards, where = str(accelerator.distributed_type).endswith("FSDP"), f"accelerate set up {accelerator.distributed_type}"
        else:
            shards, where = torch.accelerator.is_available(), "no GPU on this machine"
        if not shards:
            raise ConfigError(
                f"the accelerate config asks for FSDP but there are no GPU processes to shard over ({where}): "
                "accelerate shards only over GPUs and otherwise trains each process on its own (or, with "
                "ACCELERATE_USE_CPU=1, data-parallel). Launch on GPUs, or use recipes/accelerate/cpu_2proc.yaml "
                "on a CPU machine", key="distributed_type")
    if _env_flag("ACCELERATE_USE_DEEPSPEED"):
        stage, saves_weights, option = _zero_settings()
        if importlib.util.find_spec("deepspeed") is None:
            raise ConfigError(
                f"the accelerate config asks for DeepSpeed (ZeRO stage {stage}) but DeepSpeed is not installed: "
                "`pip install deepspeed` on every node, or use recipes/accelerate/fsdp.yaml", key="distributed_type")
        if stage == "3" and not saves_weights:
            raise ConfigError(
                "ZeRO stage 3 that does not gather 16-bit weights on save cannot write the trained model; set it to "
                "true (as recipes/accelerate/deepspeed_zero3.yaml does)", key=option)


def _zero_settings() -> tuple[str, bool, str]:
    """(ZeRO stage, whether ZeRO-3 gathers weights for saving, the option that says so) of the DeepSpeed launch."""
    ds_file = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
    if ds_file and ds_file != "None":  # a DeepSpeed JSON config named in the accelerate config
        zero = json.loads(Path(ds_file).read_text()).get("zero_optimization", {})
        return (str(zero.get("stage", "?")), zero.get("stage3_gather_16bit_weights_on_model_save") is True,
                f"{ds_file}: zero_optimization.stage3_gather_16bit_weights_on_model_save")
    return (os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "?"),
            _env_flag("ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL"), "deepspeed_config.zero3_save_16bit_model")


def is_sharded(accelerator: Any) -> bool:
    """Whether the processes hold shards of the weights (FSDP, or DeepSpeed ZeRO stage 3)."""
    kind = str(accelerator.distributed_type)
    if kind.endswith("FSDP"):
        return True
    if kind.endswith("DEEPSPEED"):
        return accelerator.state.deepspeed_plugin.zero_stage == 3
    return False


def gather_model(accelerator: Any, model: Any, build_base: Callable[[Any], Any] | None = None) -> Any:
    """The trained ``model`` as an ordinary, unsharded module on the main process; None on the others.

    Every process must call it (under sharding the gather is a collective). ``model`` is what the accelerator
    prepared (``trainer.model_wrapped``: the DeepSpeed engine under DeepSpeed, the FSDP module under FSDP).
    Unsharded, the main process gets the unwrapped trained model itself. Sharded, it gets a new module built
    without weights (``build_base(module)``; default: the transformers model class from its config) that holds
    the gathered state dict; a peft model is rebuilt around it with its own ``LoraConfig``.
    """
    module = accelerator.unwrap_model(model)
    if not is_sharded(accelerator):
        return module if accelerator.is_main_process else None
    state_dict = accelerator.get_state_dict(model)
    if not accelerator.is_main_process:
        return None
    return _unsharded_copy(module, state_dict, build_base or _empty_transformers_model)


def _plain_class(module: torch.nn.Module) -> type:
    """The module's own class: FSDP2's ``fully_shard`` swaps it for a subclass of (FSDPModule, class)."""
    from torch.distributed.fsdp import FSDPModule

    return next(c for c in type(module).__mro__ if not issubclass(c, FSDPModule))


def _empty_transformers_model(module: Any) -> Any:
    from accelerate import init_empty_weights

    with init_empty_weights():  # weights on the meta device: nothing allocated until the gathered ones are assigned
        return _plain_class(module)._from_config(module.config)


def _unsharded_copy(module: Any, state_dict: dict[str, torch.Tensor], build_base: Callable[[Any], Any]) -> Any:
    from peft import PeftModel, get_peft_model

    if isinstance(module, PeftModel):
        adapter = module.active_adapter
        plain = get_peft_model(build_base(module.get_base_model()), copy.deepcopy(module.peft_config[adapter]),
                               adapter_name=adapter)
    else:
        plain = build_base(module)
    # strict: every gathered tensor must find its parameter, and every parameter must be gathered (no meta left)
    plain.load_state_dict(state_dict, strict=True, assign=True)
    if hasattr(plain, "tie_weights"):
        plain.tie_weights()  # assign=True gives tied parameters (embeddings, LM head) separate tensors
    leftover = [name for name, p in plain.named_parameters() if p.is_meta]
    if leftover:
        raise RuntimeError(f"the gathered state dict has no values for {leftover[:5]}")
    return plain.eval()
