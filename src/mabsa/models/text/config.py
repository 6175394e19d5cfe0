"""Configs of the text baselines (defaults: MiniLM, 128 subwords, no image text)."""

from __future__ import annotations

import dataclasses

from mabsa.models.config import AspectMarkerFields, ModelConfig, TextEncoderFields


@dataclasses.dataclass(frozen=True)
class TextCRFConfig(TextEncoderFields, ModelConfig):
    """``text-crf``: a token tagger with a BIO-constrained CRF."""


@dataclasses.dataclass(frozen=True)
class TextClsConfig(AspectMarkerFields, TextEncoderFields, ModelConfig):
    """``text-cls``: a classifier of the marked aspect."""
