"""What a fusion model (CLAMP, LRSA) needs for its visual stream: the processor settings its
config gives, and the vision encoder it owns when it reads pixels."""

from __future__ import annotations

from typing import Any

from mabsa.encoders.vision import build_vision_encoder
from mabsa.models.config import VisualStreamFields
from mabsa.processing.visual import MultimodalProcessor


def visual_args(config: VisualStreamFields) -> dict[str, Any]:
    """The :class:`MultimodalProcessor` keyword arguments of a model's visual-stream fields."""
    return {
        "visual_source": config.visual_source,
        "visual_text": config.visual_text,
        "visual_max_length": config.visual_max_length,
        "image_root": config.image_root,
    }


def attach_vision_encoder(config: VisualStreamFields, processor: MultimodalProcessor, text_dim: int):
    """The vision encoder a ``visual_source="image"`` model owns (None for image-text) and the
    width of its visual tokens; hands the encoder's preprocessing to ``processor``."""
    if processor.visual_source != "image":
        return None, text_dim  # per-image texts go through the model's own text encoder
    vision = build_vision_encoder(config.vision_encoder)
    processor.image_preprocess = vision.preprocess
    return vision, vision.dim
