"""What a fusion model (CLAMP, LRSA) needs for its visual stream: the processor settings its
``model_args`` give, and the vision encoder it owns when it reads pixels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mabsa.encoders.vision import build_vision_encoder
from mabsa.processing.visual import MultimodalProcessor


def visual_args(args: Mapping[str, Any], visual_max_length: int = 64) -> dict[str, Any]:
    """The :class:`MultimodalProcessor` keyword arguments a model's ``model_args`` give."""
    return {
        "visual_source": str(args.get("visual_source", "image-text")),
        "visual_text": tuple(args.get("visual_text", ("caption", "faces"))),
        "visual_max_length": int(args.get("visual_max_length", visual_max_length)),
        "image_root": args.get("image_root"),
    }


def attach_vision_encoder(args: Mapping[str, Any], processor: MultimodalProcessor, text_dim: int):
    """The vision encoder a ``visual_source="image"`` model owns (None for image-text) and the
    width of its visual tokens; hands the encoder's preprocessing to ``processor``."""
    if processor.visual_source != "image":
        return None, text_dim  # per-image texts go through the model's own text encoder
    vision = build_vision_encoder(str(args.get("vision_encoder", "efficientnet-lite0")))
    processor.image_preprocess = vision.preprocess
    return vision, vision.dim
