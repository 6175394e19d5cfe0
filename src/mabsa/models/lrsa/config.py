"""LRSA's config: MiniLM, the rationale as a second segment, dual image<->text attention."""

from __future__ import annotations

import dataclasses

from mabsa.models.config import AspectMarkerFields, ModelConfig, TextEncoderFields, VisualStreamFields


@dataclasses.dataclass(frozen=True)
class LRSAConfig(VisualStreamFields, AspectMarkerFields, TextEncoderFields, ModelConfig):
    max_length: int = 160
    #: which rationale is read: "aspect" (the given aspect's), "post", "none"; None: "aspect"
    #: for masc, "none" for the term extractors (leakage rule)
    rationale: str | None = None
    #: "segment" (a second text segment) or "encoder" (cross-attention over its own encoding)
    injection: str = "segment"
    rationale_max_length: int = 96
    rationale_parts: tuple[str, ...] = ("reason", "description")
    #: probability of training a feature without its rationale (robust to a missing one)
    rationale_dropout: float = 0.2
    #: chat spec of the LLM that writes missing rationales ($MABSA_RATIONALE_BACKEND wins)
    rationale_backend: str | None = None
    rationale_template: str | None = None
    rationale_cache: str | None = None
    #: the dual image<->text cross-attention, and how its two directions are fused
    dual: bool = True
    dual_fusion: str = "gate"
    fusion_dim: int | None = None
    visual_max_length: int = 48
    heads: int = 6
    #: a frozen encoder (its states cached) with trainable adapter layers on top
    freeze_encoder: bool = False
    adapter_layers: int = 0
