"""A trained checkpoint as a predictor: raw text (or posts) in, aspects out."""

from __future__ import annotations

import unicodedata
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mabsa.data import tokenize
from mabsa.data.records import Aspect, Post
from mabsa.engine import checkpoint as ckpt
from mabsa.engine.inference import iter_chunks, predict_posts
from mabsa.perception import Perceiver, PerceptionConfig
from mabsa.processing.errors import InputError
from mabsa.processing.images import ImageSource, LoadedImage, load_image
from mabsa.processing.processor import EXTRACTION_TASKS


class TruncationWarning(UserWarning):
    """A post was longer than the model's ``max_length``; its last words were predicted O."""


@dataclass(frozen=True)
class Prediction:
    text: str
    tokens: tuple[str, ...]
    aspects: tuple[Aspect, ...]  # span (start, end) over tokens, term, polarity, score
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tokens": list(self.tokens),
            "aspects": [a.to_dict() for a in self.aspects],
            "truncated": self.truncated,
        }

    def to_post(self, post_id: str) -> Post:
        """The prediction as a post (for writing it in any dataset format)."""
        return Post(id=post_id, tokens=self.tokens, text=self.text, aspects=self.aspects)


AspectSpec = str | tuple[int, int]


class Predictor:
    """Load with :func:`mabsa.load`. ``predict(text)`` / ``predict_batch(texts)`` for raw
    text; ``predict_posts`` / ``predict_file`` for :class:`Post` s (e.g. with captions)."""

    def __init__(self, model: Any, config: dict[str, Any], batch_size: int = 64):
        self.model = model
        self.config = config
        self.batch_size = int(batch_size)
        self._perceiver: Perceiver | None = None

    @classmethod
    def from_checkpoint(cls, directory: str | Path, task: str | None = None, batch_size: int = 64) -> Predictor:
        model, config = ckpt.load_model(directory, task)
        return cls(model, config, batch_size)

    @property
    def task(self) -> str:
        return self.model.task

    @property
    def max_length(self) -> int:
        return self.model.processor.max_length

    @property
    def reads_image(self) -> bool:
        """Whether an image changes this model's answer (its texts or its pixels)."""
        processor = self.model.processor
        return bool(processor.reads_image_texts) or getattr(processor, "visual_source", None) == "image"

    # -- raw text ------------------------------------------------------------------------
    def _post(
        self,
        index: int,
        text: str,
        image: ImageSource | None,
        aspects: Sequence[AspectSpec] | None,
        caption: str | None,
        faces: tuple | None = None,
    ) -> Post:
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"text #{index} is empty")
        tokens = tokenize(text)
        if not tokens:
            raise InputError(f"text #{index} has no tokens: {text!r}")
        # a path is read where it is needed; bytes, a PIL image or an array are decoded once,
        # here; a LoadedImage (the service's upload) passes as it is
        path = str(image) if isinstance(image, (str, Path)) else None
        decoded = load_image(image) if image is not None and path is None else None
        source = decoded if decoded is not None else path
        # Per-image texts given by the caller (e.g. the server's evidence panel already perceived
        # the image) are used as they are; otherwise the image is perceived here.
        if source is not None and self.model.processor.reads_image_texts and caption is None and faces is None:
            caption, faces = self._perceive(source)
        given: list[Aspect] = []
        if self.task not in EXTRACTION_TASKS:
            if not aspects:
                raise InputError(
                    f"text #{index}: this is a {self.task} model; give the aspect(s) to classify "
                    "(aspects=[...] / --aspect TERM)"
                )
            given = [_locate(tokens, spec, index) for spec in aspects]
        elif aspects:
            raise InputError(f"a {self.task} model finds aspects itself; do not pass aspects")
        return Post(
            id=str(index),
            tokens=tuple(tokens),
            text=text,
            image=decoded.name if decoded is not None else path,
            caption=caption,
            faces=faces,
            aspects=tuple(given),
            decoded_image=decoded,  # read as it is: no temporary file, no second decoding
        )

    def _perceive(self, image: str | LoadedImage) -> tuple[str | None, tuple | None]:
        """Per-image texts (caption, faces) of an image (a file or a decoded one), for models
        that read them."""
        if self._perceiver is None:
            self._perceiver = Perceiver(PerceptionConfig(segmenter=None))
        seen = self._perceiver.perceive(image)
        return (seen.caption.text if seen.caption else None), seen.faces

    def predict(
        self,
        text: str,
        image: ImageSource | None = None,
        *,
        aspects: Sequence[AspectSpec] | None = None,
        caption: str | None = None,
    ) -> Prediction:
        return self.predict_batch([text], [image], aspects=[aspects], captions=[caption])[0]

    def predict_batch(
        self,
        texts: Sequence[str],
        images: Sequence[ImageSource | None] | None = None,
        *,
        aspects: Sequence[Sequence[AspectSpec] | None] | None = None,
        captions: Sequence[str | None] | None = None,
        faces: Sequence[tuple | None] | None = None,
    ) -> list[Prediction]:
        n = len(texts)
        images = list(images) if images is not None else [None] * n
        aspects = list(aspects) if aspects is not None else [None] * n
        captions = list(captions) if captions is not None else [None] * n
        faces = list(faces) if faces is not None else [None] * n
        if not (len(images) == len(aspects) == len(captions) == len(faces) == n):
            raise InputError("texts, images, aspects, captions and faces must have the same length")
        posts = [
            self._post(i, t, im, a, c, f)
            for i, (t, im, a, c, f) in enumerate(zip(texts, images, aspects, captions, faces))
        ]
        result = self._predict(posts)
        truncated = set(result.truncated)
        return [
            Prediction(
                p.text or "", p.tokens, tuple(replace(a, term=clean_term(a.term)) for a in p.aspects), p.id in truncated
            )
            for p in result.posts
        ]

    # -- posts ---------------------------------------------------------------------------
    def _predict(self, posts: Sequence[Post]):
        result = predict_posts(self.model, posts, self.batch_size)
        if result.truncated:
            warnings.warn(
                f"{len(result.truncated)} post(s) longer than max_length={self.max_length} "
                f"subwords were truncated; their last words were predicted O (ids: "
                f"{', '.join(result.truncated[:5])}{' ...' if len(result.truncated) > 5 else ''})",
                TruncationWarning,
                stacklevel=3,
            )
        return result

    def predict_posts(self, posts: Sequence[Post]) -> list[Post]:
        """Posts with predicted aspects (masc: polarity of the given aspects)."""
        return self._predict(posts).posts

    def iter_predictions(self, posts: Iterable[Post], chunk_size: int = 512) -> Iterator[Post]:
        """Streaming: memory holds one chunk of posts at a time."""
        for chunk in iter_chunks(posts, chunk_size):
            yield from self.predict_posts(chunk)


def _locate(tokens: list[str], spec: AspectSpec, index: int) -> Aspect:
    if isinstance(spec, tuple) or isinstance(spec, list):
        start, end = int(spec[0]), int(spec[1])
        if not (0 <= start < end <= len(tokens)):
            raise InputError(f"text #{index}: aspect span {spec} out of range 0..{len(tokens)}")
        return Aspect(start, end, " ".join(tokens[start:end]))
    term = tokenize(str(spec))
    for start in range(len(tokens) - len(term) + 1):
        if term and tokens[start : start + len(term)] == term:
            return Aspect(start, start + len(term), " ".join(term))
    raise InputError(f"text #{index}: aspect {spec!r} does not occur in the text")


def clean_term(term: str) -> str:
    """An aspect term as shown to a user: control and format characters from the input dropped
    (the zero-width joiner of an emoji sequence kept), spaces collapsed. The span (start, end)
    still points at the post's tokens as given."""
    kept = "".join(c for c in term if c == "\u200d" or unicodedata.category(c) not in ("Cc", "Cf") or c in " \t")
    return " ".join(kept.split())
