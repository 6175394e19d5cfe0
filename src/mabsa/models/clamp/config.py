"""CLAMP's config: the paper's settings (12 heads, 2 PAF stages, dropout 0.5, InfoNCE at
temperature 0.07, IPOT with 50 iterations, AMA on); ``clamp-cpu`` is the budget preset."""

from __future__ import annotations

import dataclasses

from mabsa.models.config import ModelConfig, TextEncoderFields, VisualStreamFields


@dataclasses.dataclass(frozen=True)
class ClampConfig(VisualStreamFields, TextEncoderFields, ModelConfig):
    dropout: float = 0.5
    #: width of the fused states (default: the text encoder's)
    fusion_dim: int | None = None
    heads: int = 12
    paf_stages: int = 2
    #: longest word sequence the fusion's position table covers
    fusion_max_len: int = 256
    #: projection width of the contrastive (GCL) and word-region (WRA) alignment
    align_dim: int = 256
    temperature: float = 0.07
    ipot_beta: float = 0.5
    ipot_iterations: int = 50
    ama_alpha: float = 0.5
    ama_temperature: float = 1.0
    #: the ablations: Progressive Attention Fusion, global contrast, word-region alignment, AMA
    paf: bool = True
    gcl: bool = True
    wra: bool = True
    ama: bool = True
