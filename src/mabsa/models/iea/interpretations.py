"""Region interpretations for IEA: what the instruction says about each image region.

* A real image goes through :class:`~mabsa.perception.Perceiver`: IEA's region proposals and
  filters (``RegionConfig``: t_size 25, t_clarity 100, t_conf 0.7, L = 5 with the background),
  then the region interpreter (embedded label interpreter, or a VLM endpoint), plus a sentiment
  rating (from a face's expression in the region when the interpreter gives none).
* The shipped benchmarks have no images. Their stand-in builds the interpretations from the
  *per-image* texts only: the caption describes the whole image (I), and every face of
  ``face_attributes`` is one region with its box, interpreted by the FITE face template with a
  rating from its expression. The per-aspect texts (``aspect_face_description``, rationales) name
  gold aspects and are never read here (leakage rule); the posts come in as
  ``Post.extraction_input()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mabsa.data.records import Face, Post
from mabsa.errors import MabsaError
from mabsa.models.iea.fgca import rating_sentence
from mabsa.perception import Perceiver, PerceptionConfig
from mabsa.perception.interpret import crop
from mabsa.perception.regions import RegionConfig
from mabsa.processing.errors import ImageLoadError
from mabsa.processing.image_text import describe_face
from mabsa.processing.images import post_image

#: Expression -> sentiment rating of a region showing that face.
EXPRESSION_RATING = {
    "happy": "positive",
    "surprise": "positive",
    "neutral": "neutral",
    "sad": "negative",
    "angry": "negative",
    "fear": "negative",
    "disgust": "negative",
}


@dataclass(frozen=True)
class RegionUnit:
    """One region of the image as the instruction sees it."""

    index: int  # 1-based region number in the instruction
    content: str  # what the region shows
    rating: str | None  # "positive" / "neutral" / "negative", None = not rated
    box: tuple[int, int, int, int] | None = None
    image: Any = None  # the region crop (PIL) for a VLM generator; None for text-only

    @property
    def interpretation(self) -> str:
        return f"{self.content} {rating_sentence(self.rating)}"


@dataclass(frozen=True)
class ImageView:
    """The image (I) and its regions, as IEA's instruction uses them."""

    description: str | None  # whole-image text (caption) for a text-only generator
    regions: tuple[RegionUnit, ...]
    image: Any = None  # the whole image (PIL) for a VLM generator
    source: str = "stand-in"


def face_rating(face: Face) -> str | None:
    return EXPRESSION_RATING.get((face.emotion or "").lower())


def stand_in_view(post: Post, max_regions: int = 5) -> ImageView:
    """Per-image texts only: caption as the image, one region per face (largest first, at most
    ``max_regions - 1``, the background being the caption's whole image)."""
    faces = list(post.faces or ())
    faces.sort(key=lambda f: -(f.box[2] * f.box[3]) if f.box else 0)
    units = tuple(
        RegionUnit(k + 1, describe_face(f), face_rating(f), f.box)
        for k, f in enumerate(faces[: max(0, max_regions - 1)])
    )
    return ImageView(post.caption, units, None, "stand-in")


class ImageViews:
    """Builds the :class:`ImageView` of a post: ``mode`` "stand-in" (shipped texts), "perceive"
    (the post's image file through the Perceiver) or "auto" (perceive when ``post.image`` is a
    file that exists, else the stand-in)."""

    def __init__(
        self,
        mode: str = "auto",
        segmenter: str = "classical",
        interpreter: str = "labels",
        cache: str | None = None,
        max_regions: int = 5,
        image_root: str | None = None,
    ):
        if mode not in ("auto", "stand-in", "perceive"):
            raise MabsaError(f"regions={mode!r}: use 'auto', 'stand-in' or 'perceive'")
        self.mode, self.segmenter, self.interpreter = mode, segmenter, interpreter
        self.cache, self.max_regions, self.image_root = cache, max_regions, image_root
        self._perceiver: Perceiver | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "segmenter": self.segmenter,
            "interpreter": self.interpreter,
            "cache": self.cache,
            "max_regions": self.max_regions,
            "image_root": self.image_root,
        }

    def __call__(self, post: Post, with_images: bool = False) -> ImageView:
        if self.mode == "perceive" or (self.mode == "auto" and post_image(post, self.image_root)):
            return self.perceive(post, with_images)
        return stand_in_view(post, self.max_regions)

    def perceive(self, post: Post, with_images: bool = False) -> ImageView:
        if self._perceiver is None:
            self._perceiver = Perceiver(
                PerceptionConfig(
                    segmenter=self.segmenter,
                    interpreter=self.interpreter,
                    regions=RegionConfig(max_regions=self.max_regions),
                ),
                cache=self.cache,
            )
        source = post_image(post, self.image_root)
        if source is None:
            hint = (
                f"under image_root {self.image_root}"
                if self.image_root
                else "(a relative name: set model_args.image_root to the folder of the images)"
            )
            raise ImageLoadError(post.image or f"post {post.id}", f"no such file {hint}")
        image = self._perceiver.load(source)  # its decoding limits; a decoded image passes as is
        seen = self._perceiver.perceive(image)
        whole = image.rgb if with_images else None
        units: list[RegionUnit] = []
        for r in seen.regions or ():
            if r.is_background:
                continue  # the background is part of I (the whole image / its caption)
            inside = [f for f in seen.faces or () if _centre_in(f.box, r.box)]
            rating = next((face_rating(f) for f in inside if face_rating(f)), None)
            units.append(
                RegionUnit(
                    len(units) + 1,
                    r.interpretation or "A region.",
                    rating,
                    r.box,
                    crop(whole, r) if whole is not None else None,
                )
            )
        caption = seen.caption.text if seen.caption else None
        return ImageView(caption, tuple(units), whole, "image")


def _centre_in(box, outer) -> bool:
    if box is None or outer is None:
        return False
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return outer[0] <= cx < outer[0] + outer[2] and outer[1] <= cy < outer[1] + outer[3]


def shuffled_views(views: Sequence[ImageView], seed: int = 0) -> list[ImageView]:
    """ "Random regions" ablation: every post gets the regions of another post of the same
    batch (a seeded derangement); its own caption stays."""
    import random

    n = len(views)
    if n < 2:
        return [ImageView(v.description, (), v.image, v.source) for v in views]
    order = list(range(n))
    random.Random(seed).shuffle(order)
    shift = {order[i]: order[(i + 1) % n] for i in range(n)}  # a cycle: nobody keeps its own
    return [ImageView(v.description, views[shift[i]].regions, v.image, v.source) for i, v in enumerate(views)]
