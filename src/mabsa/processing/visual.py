"""The visual stream of a batch, for models that fuse text with the image (CLAMP, LRSA).

``visual_source`` says where the image evidence comes from, and every results row states it:

* ``"image"`` - the picture itself: ``Post.image`` is loaded (a path, or a file name under
  ``image_root``) and preprocessed for the model's vision encoder -> ``pixel_values``;
* ``"image-text"`` - the image's *per-image* texts (caption, a description of the detected
  faces) as a second token sequence -> ``visual_input_ids``. This is how the benchmarks run on
  this machine, where the tweet images are not available: the shipped captions and face
  attributes were produced from the real images.

Per-aspect texts (shipped face descriptions, rationales) name the gold aspects and are never
part of the visual stream (leakage rule): asking for one is a :class:`LeakageError`.

Either way the batch gets ``visual_present`` (B,): False where a post has no image evidence;
models mask such posts' visual tokens out entirely.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from mabsa.data.records import Post
from mabsa.errors import MabsaError
from mabsa.processing.errors import LeakageError
from mabsa.processing.image_text import IMAGE_TEXT_SOURCES
from mabsa.processing.images import LoadedImage, load_image, post_image
from mabsa.processing.processor import Processor

VISUAL_SOURCES = ("image-text", "image")


class MultimodalProcessor(Processor):
    """A :class:`Processor` whose batches also carry the visual stream."""

    def __init__(
        self,
        tokenizer: Any,
        task: str,
        visual_source: str = "image-text",
        visual_text: Sequence[str] = ("caption", "faces"),
        visual_max_length: int = 64,
        image_root: str | None = None,
        image_preprocess: Callable[[list], torch.Tensor] | None = None,
        **kwargs: Any,
    ):
        super().__init__(tokenizer, task, **kwargs)
        if visual_source not in VISUAL_SOURCES:
            raise MabsaError(f"unknown visual_source {visual_source!r}: use one of {', '.join(VISUAL_SOURCES)}")
        unknown = [s for s in visual_text if s not in IMAGE_TEXT_SOURCES]
        if unknown:
            raise MabsaError(f"unknown visual_text source(s) {unknown}: use {', '.join(IMAGE_TEXT_SOURCES)}")
        per_aspect = [s for s in visual_text if IMAGE_TEXT_SOURCES[s][0]]
        if per_aspect:
            raise LeakageError(
                f"visual_text source(s) {per_aspect} were built with the gold aspects; the visual "
                "stream holds per-image evidence only"
            )
        self.visual_source = visual_source
        self.visual_text = tuple(visual_text)
        self.visual_max_length = int(visual_max_length)
        self.image_root = image_root
        self.image_preprocess = image_preprocess  # set by the model that owns the vision encoder
        self._warned_missing = False

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update(
            visual_source=self.visual_source,
            visual_text=list(self.visual_text),
            visual_max_length=self.visual_max_length,
            image_root=self.image_root,
        )
        return out

    @property
    def reads_image_texts(self) -> bool:
        return super().reads_image_texts or (self.visual_source == "image-text" and bool(self.visual_text))

    # -- the visual stream ---------------------------------------------------------------
    def visual_text_for(self, post: Post) -> str:
        texts = [IMAGE_TEXT_SOURCES[s][1](post, None) for s in self.visual_text]
        return " ".join(t.strip() for t in texts if t and t.strip())

    def image_source(self, post: Post) -> LoadedImage | Path | None:
        """The post's decoded image, or its file (``None``: no image to read)."""
        return post_image(post, self.image_root)

    def visual_batch(self, posts: Sequence[Post]) -> dict[str, torch.Tensor]:
        if self.visual_source == "image-text":
            texts = [self.visual_text_for(p) for p in posts]
            enc = self.tokenizer(
                texts, padding=True, truncation=True, max_length=self.visual_max_length, return_tensors="pt"
            )
            return {
                "visual_input_ids": enc["input_ids"],
                "visual_attention_mask": enc["attention_mask"],
                "visual_present": torch.tensor([bool(t) for t in texts]),
            }
        if self.image_preprocess is None:
            raise MabsaError(
                "visual_source='image' needs the model's image preprocessing; load the processor with its model"
            )
        from PIL import Image

        paths = [self.image_source(p) for p in posts]
        missing = [p.image for p, path in zip(posts, paths) if path is None]
        if missing and not self._warned_missing:
            # once per processor: a wrong image_root would otherwise train a text-only model quietly
            self._warned_missing = True
            warnings.warn(
                f"visual_source='image': no image file for {missing[0]!r}"
                + (
                    f" (looked under image_root {self.image_root})"
                    if self.image_root
                    else " (set model_args.image_root to the folder of the images)"
                )
                + "; such posts have their visual stream masked out",
                stacklevel=2,
            )
        images = [load_image(p).rgb if p is not None else Image.new("RGB", (32, 32)) for p in paths]
        return {
            "pixel_values": self.image_preprocess(images),
            "visual_present": torch.tensor([p is not None for p in paths]),
        }

    def collate(self, features: Sequence[Any]) -> dict[str, Any]:
        batch = super().collate(features)
        batch.update(self.visual_batch([f.post for f in features]))
        return batch
