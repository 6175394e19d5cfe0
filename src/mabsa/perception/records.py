"""What perception hands to the methods: one :class:`Perception` per image (per-image evidence
only) and, on request for a given aspect, one :class:`AspectEvidence` (per-aspect evidence)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mabsa.data.records import Face, Rationale

Box = tuple[int, int, int, int]  # x, y, w, h in original pixels


@dataclass(frozen=True)
class Caption:
    text: str
    source: str  # backend id, e.g. "imagenet-labels(efficientnet-lite0)" or "shipped:CATR"
    label_derived: bool = False  # True: phrased from classifier labels, not a captioning model

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "source": self.source, "label_derived": self.label_derived}


@dataclass(frozen=True)
class Region:
    """An image region (IEA). The background region is what no selected region covers."""

    box: Box
    score: float  # backend quality score in [0, 1] (SAM: predicted IoU); background: 0
    area: int
    sharpness: float | None = None  # variance of the Laplacian of the gray box crop
    is_background: bool = False
    interpretation: str | None = None
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)  # HxW bool

    def to_dict(self) -> dict[str, Any]:
        out = {
            "box": list(self.box),
            "score": self.score,
            "area": self.area,
            "sharpness": self.sharpness,
            "is_background": self.is_background,
        }
        if self.interpretation is not None:
            out["interpretation"] = self.interpretation
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], mask: np.ndarray | None = None) -> Region:
        return cls(
            box=(int(d["box"][0]), int(d["box"][1]), int(d["box"][2]), int(d["box"][3])),
            score=float(d["score"]),
            area=int(d["area"]),
            sharpness=d.get("sharpness"),
            is_background=bool(d.get("is_background")),
            interpretation=d.get("interpretation"),
            mask=mask,
        )


@dataclass(frozen=True)
class Perception:
    """Per-image evidence; any task may read every field (none of it knows the aspects).

    ``source`` is ``"image"`` for a real image and ``"stand-in"`` for the shipped texts. ``None``
    means "not computed / not available", ``()`` means "looked, found none".
    """

    image: str
    source: str = "image"
    digest: str | None = None
    size: tuple[int, int] | None = None  # (width, height)
    caption: Caption | None = None
    labels: tuple[tuple[str, float], ...] = ()  # top ImageNet labels of the whole image
    faces: tuple[Face, ...] | None = None
    face_text: str | None = None  # describe_faces(faces)
    regions: tuple[Region, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "source": self.source,
            "digest": self.digest,
            "size": list(self.size) if self.size else None,
            "caption": self.caption.to_dict() if self.caption else None,
            "labels": [[label, p] for label, p in self.labels],
            "faces": None if self.faces is None else [f.to_dict() for f in self.faces],
            "face_text": self.face_text,
            "regions": None if self.regions is None else [r.to_dict() for r in self.regions],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Perception:
        return cls(
            image=d["image"],
            source=d.get("source", "image"),
            digest=d.get("digest"),
            size=tuple(d["size"]) if d.get("size") else None,
            caption=Caption(**d["caption"]) if d.get("caption") else None,
            labels=tuple((str(label), float(p)) for label, p in d.get("labels") or ()),
            faces=None if d.get("faces") is None else tuple(Face.from_dict(f) for f in d["faces"]),
            face_text=d.get("face_text"),
            regions=None if d.get("regions") is None else tuple(Region.from_dict(r) for r in d["regions"]),
        )


@dataclass(frozen=True)
class AspectEvidence:
    """Per-aspect evidence (leakage rule: only where the aspect is given: MASC / polarity stage)."""

    term: str
    span: tuple[int, int]
    face_description: str | None = None  # e.g. FITE's aspect-matched face description
    rationale: Rationale | None = None  # image description + sentiment rationale for this aspect
