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
from torch import nn

from mabsa.data.records import Aspect
from mabsa.models.base import MabsaModel, register
from mabsa.models.config import ModelConfig, TextEncoderFields
from mabsa.models.text.config import TextClsConfig, TextCRFConfig
from mabsa.modules.crf import CRF, bio_transition_constraints
from mabsa.processing.processor import POLARITIES
from mabsa.tagging import ids_to_tags, tags_to_aspects


def gather_positions(hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``hidden[b, positions[b, i]]`` -> ``(B, N, H)``."""
    index = positions.unsqueeze(-1).expand(-1, -1, hidden.size(-1))
    return hidden.gather(1, index)


@register("text-crf")
class TextCRF(MabsaModel):
    tasks = ("jmasa", "mate")
    config_class: ClassVar[type[ModelConfig]] = TextCRFConfig

    def __init__(self, config: TextEncoderFields, task, processor, text_encoder):
        super().__init__(config, task, processor, text_encoder)
        labels = processor.labels
        self.dropout = nn.Dropout(config.dropout)
        self.emissions = nn.Linear(text_encoder.hidden_size, len(labels))
        allowed, allowed_start = bio_transition_constraints(labels)
        self.crf = CRF(len(labels), allowed, allowed_start)

    def word_emissions(self, batch: Mapping[str, Any]) -> torch.Tensor:
        hidden = self.encode_text(batch)
        words = gather_positions(hidden, batch["word_positions"])
        return self.emissions(self.dropout(words))

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        emissions = self.word_emissions(batch)
        out: dict[str, Any] = {"emissions": emissions}
        if "labels" in batch:
            out["loss"] = self.crf(emissions, batch["labels"], batch["word_mask"])
        return out

    @torch.no_grad()
    def decode(self, batch: Mapping[str, Any]) -> list[list[Aspect]]:
        return self.aspects_from_emissions(self.word_emissions(batch), batch["word_mask"], batch, self.crf)

    def aspects_from_emissions(
        self, emissions: torch.Tensor, mask: torch.Tensor, batch: Mapping[str, Any], crf: CRF
    ) -> list[list[Aspect]]:
        """Viterbi spans of word ``emissions`` under ``crf`` (an ensemble passes the mean of its
        members' emissions and CRFs), scored by their marginal probabilities."""
        paths = crf.decode(emissions, mask)
        probs = crf.marginals(emissions, mask)
        scheme = self.processor.scheme
        results = []
        for i, (feature, path) in enumerate(zip(batch["features"], paths)):
            tokens = feature.post.tokens
            chosen = probs[i, torch.arange(len(path)), torch.tensor(path)].tolist()
            missing = feature.n_words - len(path)  # words cut by truncation: predicted O
            tags = ids_to_tags(path, scheme) + ["O"] * missing
            results.append(tags_to_aspects(tokens, tags, scheme, chosen + [1.0] * missing))
        return results


def cls_and_aspect(hidden: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
    """``[h_CLS ; mean of the aspect's subword states]``, ``(B, 2H)``: the aspect's own states
    say which of several aspects is meant, which a small encoder's ``[CLS]`` alone blurs."""
    span = gather_positions(hidden, batch["aspect_positions"])
    mask = batch["aspect_mask"].unsqueeze(-1).to(span.dtype)
    span_mean = (span * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return torch.cat([hidden[:, 0], span_mean], dim=-1)


@register("text-cls")
class TextClassifier(MabsaModel):
    tasks = ("masc",)
    config_class: ClassVar[type[ModelConfig]] = TextClsConfig

    def __init__(self, config: TextEncoderFields, task, processor, text_encoder):
        super().__init__(config, task, processor, text_encoder)
        hidden = text_encoder.hidden_size
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(2 * hidden, len(POLARITIES))

    def logits(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.classifier(self.dropout(cls_and_aspect(self.encode_text(batch), batch)))

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        logits = self.logits(batch)
        out: dict[str, Any] = {"logits": logits}
        if "labels" in batch:
            out["loss"] = nn.functional.cross_entropy(logits, batch["labels"])
        return out

    @torch.no_grad()
    def decode(self, batch: Mapping[str, Any]) -> list[list[Aspect]]:
        return self.aspects_from_probs(self.logits(batch).softmax(-1), batch)

    def aspects_from_probs(self, probs: torch.Tensor, batch: Mapping[str, Any]) -> list[list[Aspect]]:
        """The given aspect of each feature with its most probable polarity (an ensemble passes
        the mean of its members' probabilities)."""
        best = probs.argmax(-1).tolist()
        results = []
        for feature, k, p in zip(batch["features"], best, probs.tolist()):
            a = feature.aspect
            results.append([Aspect(a.start, a.end, a.term, POLARITIES[k], score=float(p[k]))])
        return results
