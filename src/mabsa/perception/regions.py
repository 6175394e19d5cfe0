"""Regions for IEA: pluggable segmenters + IEA's region selection.

Spec strings (:func:`build_segmenter`):

* ``"classical"`` - embedded: scikit-image Felzenszwalb segments on a copy downscaled to 192 px
  (256 px took twice the time for the same kind of regions: docs/perception.md); each
  segment's score is the mean of its solidity (area / convex-hull area) and its colour contrast
  with a ring around it (CIELAB distance / 40, capped at 1), so compact segments that stand out
  from their surroundings score high, like good SAM masks;
* ``"sam:<id or dir>"`` - any ``transformers`` ``SamModel`` (SAM, SlimSAM, ...): automatic masks
  from a grid of point prompts, best of 3 masks per point by predicted IoU, mask-NMS; the score is
  the predicted IoU.

:func:`select_regions` is IEA's selection, thresholds in :class:`RegionConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from mabsa.perception.errors import BackendSpecError
from mabsa.perception.records import Region


@dataclass(frozen=True)
class RegionConfig:
    """IEA's selection: drop regions with min(w, h) < ``min_side`` px, Laplacian variance <
    ``min_laplacian`` or score < ``min_score``; keep the best ``max_regions - 1`` by score; the
    rest of the image is the background region (so at most ``max_regions`` regions)."""

    max_regions: int = 5
    min_side: int = 25
    min_laplacian: float = 100.0
    min_score: float = 0.7

    def to_dict(self) -> dict:
        return dict(vars(self))


class Segmenter(Protocol):
    id: str

    def propose(self, rgb: np.ndarray) -> list[Region]: ...


def laplacian_variance(gray: np.ndarray) -> float:
    import cv2

    if gray.size == 0:
        return 0.0
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of the mask's set pixels; ``(0, 0, 0, 0)`` for an empty mask."""
    import cv2

    # OpenCV's scan of a uint8 mask is ~10x faster than numpy's nonzero on a full-size mask
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask, dtype=np.uint8))
    return (int(x), int(y), int(w), int(h))


def select_regions(regions: list[Region], rgb: np.ndarray, config: RegionConfig = RegionConfig()) -> list[Region]:
    """Filter, rank and de-overlap proposals; append the background region (last)."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    kept = []
    for r in regions:
        x, y, bw, bh = r.box
        if min(bw, bh) < config.min_side or r.score < config.min_score:
            continue
        sharpness = laplacian_variance(gray[y : y + bh, x : x + bw])
        if sharpness < config.min_laplacian:
            continue
        kept.append(Region(r.box, r.score, r.area, sharpness, mask=r.mask))
    kept.sort(key=lambda r: r.score, reverse=True)
    taken = np.zeros((h, w), dtype=bool)
    out: list[Region] = []
    for r in kept:
        if len(out) == config.max_regions - 1:
            break
        mask = (r.mask if r.mask is not None else _box_mask(r.box, (h, w))) & ~taken  # overlap -> higher score
        if not mask.any():
            continue
        taken |= mask
        out.append(Region(mask_box(mask), r.score, int(mask.sum()), r.sharpness, mask=mask))
    background = ~taken
    if background.any():
        box = mask_box(background)
        x, y, bw, bh = box
        out.append(
            Region(
                box,
                0.0,
                int(background.sum()),
                laplacian_variance(gray[y : y + bh, x : x + bw]),
                is_background=True,
                mask=background,
            )
        )
    return out


def _box_mask(box, shape) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    x, y, w, h = box
    m[y : y + h, x : x + w] = True
    return m


# -- embedded classical segmenter -------------------------------------------------------------
class ClassicalSegmenter:
    def __init__(
        self, work_side: int = 192, scale: float = 400.0, sigma: float = 0.8, min_fraction: float = 0.01, ring: int = 5
    ):
        self.work_side, self.scale, self.sigma = work_side, scale, sigma
        self.min_fraction, self.ring = min_fraction, ring
        self.id = f"classical-felzenszwalb(side={work_side},scale={scale},sigma={sigma},min={min_fraction})"

    def propose(self, rgb: np.ndarray) -> list[Region]:
        import cv2
        from skimage.measure import regionprops
        from skimage.segmentation import felzenszwalb

        h, w = rgb.shape[:2]
        f = min(1.0, self.work_side / max(h, w))
        small = (
            cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
            if f < 1
            else np.ascontiguousarray(rgb)
        )
        sh, sw = small.shape[:2]
        labels = felzenszwalb(
            small, scale=self.scale, sigma=self.sigma, min_size=max(4, int(self.min_fraction * sh * sw))
        )
        # CIELAB (D65) by OpenCV: within 0.4 of scikit-image's rgb2lab per channel, 20x faster
        lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
        kernel = np.ones((2 * self.ring + 1, 2 * self.ring + 1), np.uint8)
        full_labels = cv2.resize(labels.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST) if f < 1 else labels
        out = []
        for p in regionprops(labels + 1):
            small_mask = labels == p.label - 1
            ring = cv2.dilate(small_mask.astype(np.uint8), kernel).astype(bool) & ~small_mask
            contrast = (
                0.0 if not ring.any() else float(np.linalg.norm(lab[small_mask].mean(0) - lab[ring].mean(0))) / 40.0
            )
            score = 0.5 * float(p.solidity) + 0.5 * min(1.0, contrast)
            mask = full_labels == p.label - 1
            out.append(Region(mask_box(mask), round(score, 4), int(mask.sum()), mask=mask))
        return out


# -- SAM through transformers -----------------------------------------------------------------
class SamSegmenter:
    def __init__(
        self, model, processor, id: str = "sam", points_per_side: int = 8, batch: int = 32, nms_iou: float = 0.7
    ):
        self.model, self.processor = model.eval(), processor
        self.points_per_side, self.batch, self.nms_iou = points_per_side, batch, nms_iou
        self.id = f"{id}(points={points_per_side},nms={nms_iou})"

    @classmethod
    def from_pretrained(cls, name_or_dir: str, **options) -> SamSegmenter:
        from transformers import SamModel, SamProcessor

        try:
            model, processor = SamModel.from_pretrained(name_or_dir), SamProcessor.from_pretrained(name_or_dir)
        except (OSError, ValueError) as e:
            raise BackendSpecError(f"segmenter 'sam:{name_or_dir}': cannot load a SamModel offline: {e}") from None
        return cls(model, processor, f"sam:{name_or_dir}", **options)

    @torch.no_grad()
    def propose(self, rgb: np.ndarray) -> list[Region]:
        image = Image.fromarray(rgb)
        h, w = rgb.shape[:2]
        n = self.points_per_side
        grid = [[(i + 0.5) * w / n, (j + 0.5) * h / n] for j in range(n) for i in range(n)]
        base = self.processor(images=image, return_tensors="pt")
        embeddings = self.model.get_image_embeddings(base["pixel_values"])
        masks, scores = [], []
        for start in range(0, len(grid), self.batch):
            points = [[[p] for p in grid[start : start + self.batch]]]
            prompt = self.processor(images=image, input_points=points, return_tensors="pt")
            out = self.model(image_embeddings=embeddings, input_points=prompt["input_points"], multimask_output=True)
            full = self.processor.image_processor.post_process_masks(
                out.pred_masks, base["original_sizes"], base["reshaped_input_sizes"]
            )[0]  # [P, 3, H, W]
            iou = out.iou_scores[0]  # [P, 3]
            best = iou.argmax(-1)
            for k in range(full.shape[0]):
                masks.append(full[k, best[k]].numpy().astype(bool))
                scores.append(float(iou[k, best[k]].clamp(0, 1)))
        return [
            Region(mask_box(masks[i]), round(scores[i], 4), int(masks[i].sum()), mask=masks[i])
            for i in mask_nms(masks, scores, self.nms_iou)
            if masks[i].any()
        ]


def mask_nms(masks: list[np.ndarray], scores: list[float], iou_threshold: float) -> list[int]:
    """Indices kept by greedy non-maximum suppression on mask IoU, best score first."""
    order = sorted(range(len(masks)), key=lambda i: scores[i], reverse=True)
    flat = [m.reshape(-1) for m in masks]
    kept: list[int] = []
    for i in order:
        if not flat[i].any():
            continue
        if all((flat[i] & flat[j]).sum() / max(1, (flat[i] | flat[j]).sum()) <= iou_threshold for j in kept):
            kept.append(i)
    return kept


def build_segmenter(spec: str = "classical", **options) -> Segmenter:
    spec = spec.strip()
    if spec == "classical":
        return ClassicalSegmenter(**options)
    if spec.startswith("sam:"):
        return SamSegmenter.from_pretrained(spec[4:], **options)
    raise BackendSpecError(f"unknown segmenter {spec!r}: use 'classical' or 'sam:<id or dir>'")
