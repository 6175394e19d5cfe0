"""FITE's config: two MiniLM branches (face description, caption) fused by a gate, [CLS] pooling."""

from __future__ import annotations

import dataclasses

from mabsa.models.config import ModelConfig
from mabsa.processing.image_text import MIN_ATTRIBUTE_CONFIDENCE


@dataclasses.dataclass(frozen=True)
class FiteConfig(ModelConfig):
    #: one encoder of this name per branch (FITE-DE: mpnet-base)
    encoder: str = "minilm"
    max_length: int = 128
    #: "face" (the aspect's face description) and/or "caption"
    branches: tuple[str, ...] = ("face", "caption")
    #: "gate" (the paper) or "concat" (the w/o-gate ablation)
    fusion: str = "gate"
    #: "auto": the shipped description where a post has one, else built from its faces; "faces": always built
    face_source: str = "auto"
    #: image-text model that matches faces to aspects (None: the most-confident-face rule)
    similarity: str | None = None
    image_root: str | None = None
    min_attribute_confidence: float = MIN_ATTRIBUTE_CONFIDENCE
    dropout: float = 0.1
    #: "cls" (the paper) or "cls+aspect" (also the mean of the aspect's subwords)
    pooling: str = "cls"
