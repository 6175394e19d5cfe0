"""Text-only baselines (optionally reading image-derived text as a second segment).

* ``text-crf`` (jmasa, mate): encoder -> first subword of each word -> linear emissions ->
  BIO-constrained linear-chain CRF over the scheme's labels (7 for JMASA, 3 for MATE).
* ``text-cls`` (masc): the aspect is marked in the sentence (``<`` term ``>``); the
  classifier reads ``[first token ; mean of the aspect's subwords]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from mabsa.data.records import Aspect
from mabsa.models.base import MabsaModel, register
from mabsa.models.config import ModelConfig, TextEncoderFields
from mabsa.models.text.config import TextClsConfig, TextCRFConfig
from mabsa.modules.heads import ClassificationHead, TaggingHead, cls_and_aspect, first_subwords
from mabsa.modules.outputs import ModelOutput

#: Checkpoints written before the heads were modules of their own (weights renamed on load).
TAGGER_WEIGHTS_BEFORE_HEADS = {"emissions.": "head.emissions.", "crf.": "head.crf."}
CLASSIFIER_WEIGHTS_BEFORE_HEADS = {"classifier.": "head.classifier."}


@register("text-crf")
class TextCRF(MabsaModel):
    tasks = ("jmasa", "mate")
    config_class: ClassVar[type[ModelConfig]] = TextCRFConfig
    renamed_weights = TAGGER_WEIGHTS_BEFORE_HEADS

    def __init__(self, config: TextEncoderFields, task, processor, text_encoder):
        super().__init__(config, task, processor, text_encoder)
        self.head = TaggingHead(text_encoder.hidden_size, task, config.dropout)

    def word_emissions(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.head(first_subwords(self.encode_text(batch), batch))

    def forward(self, batch: Mapping[str, Any]) -> ModelOutput:
        return self.head.output(self.word_emissions(batch), batch)

    @torch.no_grad()
    def decode(self, batch: Mapping[str, Any]) -> list[list[Aspect]]:
        return self.head.aspects(self.word_emissions(batch), batch)


@register("text-cls")
class TextClassifier(MabsaModel):
    tasks = ("masc",)
    config_class: ClassVar[type[ModelConfig]] = TextClsConfig
    renamed_weights = CLASSIFIER_WEIGHTS_BEFORE_HEADS

    def __init__(self, config: TextEncoderFields, task, processor, text_encoder):
        super().__init__(config, task, processor, text_encoder)
        self.head = ClassificationHead(2 * text_encoder.hidden_size, config.dropout)

    def logits(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.head(cls_and_aspect(self.encode_text(batch), batch))

    def forward(self, batch: Mapping[str, Any]) -> ModelOutput:
        return self.head.output(self.logits(batch), batch)

    @torch.no_grad()
    def decode(self, batch: Mapping[str, Any]) -> list[list[Aspect]]:
        return self.aspects_from_probs(self.logits(batch).softmax(-1), batch)

    def aspects_from_probs(self, probs: torch.Tensor, batch: Mapping[str, Any]) -> list[list[Aspect]]:
        """The head's aspects (a subclass adds the evidence it read)."""
        return self.head.aspects(probs, batch)
