"""Model registry and the interface every mabsa model implements.

A model is an ``nn.Module`` registered under a name (``@register("text-crf")``) with a JSON
config of the same name in ``mabsa/configs/``. The one training loop (:mod:`mabsa.engine`)
needs only:

* ``forward(batch) -> dict`` with ``"loss"`` when the batch has ``"labels"``;
* ``decode(batch) -> list[list[Aspect]]``: the aspects predicted for each feature of the
  batch (spans over the post's tokens, with polarity where the task has one and a
  ``score`` in [0, 1]);
* ``processor``: the :class:`~mabsa.processing.processor.Processor` that made the batch.

Building is split in two so a checkpoint can be rebuilt without the original weights:
:meth:`MabsaModel.create` loads pretrained encoders (or random-init ones when
``random_init`` is set, for tests), :meth:`MabsaModel.restore` rebuilds the same shapes from
files in a checkpoint directory, before its weights are loaded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from torch import nn
from transformers import AutoConfig

from mabsa.data.records import Aspect
from mabsa.encoders.text import TextEncoder, load_tokenizer
from mabsa.errors import MabsaError
from mabsa.models.config import ModelConfig, TextEncoderFields
from mabsa.modules.outputs import ModelOutput
from mabsa.processing.processor import Processor

ENCODER_CONFIG_DIR = "text_encoder"


class UnknownModelError(MabsaError):
    pass


_REGISTRY: dict[str, type[MabsaModel]] = {}


def register(name: str):
    """Class decorator: make a model available to ``mabsa train --model NAME``."""

    def wrap(cls: type[MabsaModel]) -> type[MabsaModel]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type[MabsaModel]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; available: {', '.join(available_models())}") from None


class MabsaModel(nn.Module):
    name: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = ()
    #: The Processor subclass this model's checkpoints are saved with (restored by :meth:`restore`).
    processor_class: ClassVar[type[Processor]] = Processor
    #: Parameter-name prefixes of pretrained encoders: trained at ``lr``, the rest at ``head_lr``.
    pretrained_prefixes: ClassVar[tuple[str, ...]] = ("text_encoder.",)
    #: The typed config its ``model_args`` become (the only place its defaults live).
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    #: Built from trained checkpoints (a pipeline, an ensemble), never trained itself.
    composed: ClassVar[bool] = False
    #: Weight-name prefixes of older checkpoints and what they are called now (old -> new):
    #: renamed as the weights load, so every checkpoint ever written still loads.
    renamed_weights: ClassVar[Mapping[str, str]] = {}

    config: Any  # each model's own config class
    processor: Any  # a Processor, or what a generator / pipeline / ensemble batches with
    text_encoder: Any  # a TextEncoder; FITE: one per branch; composed models and IEA: None

    def __init__(self, config: Any, task: str, processor: Any, text_encoder: Any):
        super().__init__()
        self.config = config
        self.task = task
        self.processor = processor
        self.text_encoder = text_encoder
        if isinstance(config, TextEncoderFields) and config.freeze_embeddings and text_encoder is not None:
            text_encoder.freeze_input_embeddings()
        if self.renamed_weights:
            self.register_load_state_dict_pre_hook(_rename_old_weights)

    # -- construction --------------------------------------------------------------------
    @classmethod
    def check_task(cls, task: str) -> None:
        if task not in cls.tasks:
            raise MabsaError(f"model {cls.name!r} does not do task {task!r}; it does: {', '.join(cls.tasks)}")

    @classmethod
    def _processor(cls, tokenizer: Any, config: Any, task: str) -> Processor:
        return Processor(
            tokenizer,
            task,
            max_length=config.max_length,
            image_text=config.image_text,
            # only MASC marks the given aspect in the text
            **({"aspect_markers": config.aspect_markers} if task == "masc" else {}),
        )

    @classmethod
    def create(cls, args: Mapping[str, Any] | ModelConfig, task: str) -> MabsaModel:
        """A new model with pretrained encoder weights (random ones if ``random_init``)."""
        cls.check_task(task)
        config: Any = cls.config_class.of(args)
        tokenizer = load_tokenizer(config.encoder)
        if config.random_init:
            encoder = TextEncoder.from_config(config.encoder, config.encoder_overrides)
        else:
            encoder = TextEncoder.from_pretrained(config.encoder)
        return cls(config, task, cls._processor(tokenizer, config, task), encoder)

    @classmethod
    def restore(cls, args: Mapping[str, Any] | ModelConfig, task: str, directory: str | Path) -> MabsaModel:
        """Same shapes as the model saved in ``directory`` (weights are loaded by the caller)."""
        cls.check_task(task)
        directory = Path(directory)
        processor = cls.processor_class.from_pretrained(directory)
        enc_cfg = AutoConfig.from_pretrained(str(directory / ENCODER_CONFIG_DIR))
        return cls(cls.config_class.of(args), task, processor, TextEncoder.from_config(enc_cfg))

    def save_components(self, directory: str | Path) -> None:
        """Everything but the weights that :meth:`restore` needs."""
        directory = Path(directory)
        self.processor.save_pretrained(directory)
        self.text_encoder.config.save_pretrained(str(directory / ENCODER_CONFIG_DIR))

    # -- training interface --------------------------------------------------------------
    def parameter_groups(self, lr: float, head_lr: float, weight_decay: float, layer_decay: float = 1.0) -> list[dict]:
        """Encoder at ``lr``, task heads (CRF transitions, classifiers) at ``head_lr``; no
        weight decay on biases and norms. With ``layer_decay`` below 1 (layer-wise learning-rate
        decay), a text-encoder parameter at depth ``d`` (embeddings 0, layer ``k`` at ``k + 1``,
        what sits above the last layer at ``L + 1``) trains at ``lr * layer_decay ** (L + 1 - d)``:
        the lower, more general layers move less."""
        layered = layer_decay != 1.0
        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        depths = {n: _depth(n) for n, _ in named if layered and n.startswith("text_encoder.")}
        top = max((d for d in depths.values() if d is not None), default=-1) + 1
        groups: dict[tuple[bool, int, bool], list] = {}
        for name, param in named:
            is_encoder = name.startswith(self.pretrained_prefixes)
            depth = depths.get(name, top) if name in depths else (top if layered else 0)
            groups.setdefault((is_encoder, top if depth is None else depth, param.dim() < 2), []).append(param)
        return [
            {
                "params": params,
                "lr": (lr * layer_decay ** (top - depth) if layered else lr) if is_encoder else head_lr,
                "weight_decay": 0.0 if no_decay else weight_decay,
            }
            for (is_encoder, depth, no_decay), params in sorted(groups.items())
        ]

    def forward(self, batch: Mapping[str, Any]) -> ModelOutput:  # pragma: no cover
        raise NotImplementedError

    def decode(self, batch: Mapping[str, Any]) -> list[list[Aspect]]:  # pragma: no cover
        raise NotImplementedError

    def prediction_counts(self) -> dict[str, int]:
        """Running totals a model keeps about its own answers as it decodes (IEA: answers it could
        not read, or that the token budget cut); the trainer records what each evaluation adds to
        them. Taggers and classifiers cannot give an invalid answer: none."""
        return {}

    def encode_text(self, batch: Mapping[str, Any]):
        return self.text_encoder(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))


def _rename_old_weights(module: MabsaModel, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    """Load-time migration: a weight saved under an old name (``prefix`` + an old prefix of
    ``renamed_weights``) takes its new name, wherever the model sits (a pipeline stage, an
    ensemble member). Names already new are left alone."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        local = key[len(prefix) :]
        for old, new in module.renamed_weights.items():
            if local.startswith(old) and prefix + new + local[len(old) :] not in state_dict:
                state_dict[prefix + new + local[len(old) :]] = state_dict.pop(key)
                break


def model_summary(model: MabsaModel) -> dict[str, Any]:
    n = sum(p.numel() for p in model.parameters())
    return {
        "model": model.name,
        "task": model.task,
        "parameters": n,
        "args": model.config.to_dict(),
    }


_LAYER = re.compile(r"\.layers?\.(\d+)\.")


def _depth(name: str) -> int | None:
    """Depth of a text-encoder parameter: 0 for embeddings, ``k + 1`` for layer ``k``, ``None``
    for what sits above the layers (a final norm)."""
    found = _LAYER.search(name)
    if found:
        return int(found.group(1)) + 1
    return 0 if "embed" in name else None
