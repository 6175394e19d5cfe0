"""What the server needs from a model: ``predict_batch(items) -> results``, one per item.

:class:`EnginePredictor` adapts a checkpoint loaded by :func:`mabsa.api.load`; tests and other
backends can pass anything with the same :class:`ServePredictor` shape.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mabsa.api import TruncationWarning, load
from mabsa.errors import MabsaError
from mabsa.processing.images import LoadedImage


@dataclass(frozen=True)
class PredictItem:
    text: str
    image: str | LoadedImage | None = None  # for models that read the image: a file, or the decoded upload
    aspects: tuple[str, ...] | None = None  # masc models: the aspect terms to classify
    # per-image texts the server already perceived (evidence panel); None: perceive ``image``
    caption: str | None = None
    faces: tuple | None = None


class ServePredictor(Protocol):
    task: str
    info: dict[str, Any]
    reads_image: bool  # the server hands it the uploaded image as a file only if True

    def predict_batch(self, items: Sequence[PredictItem]) -> list[Any]:
        """One engine ``Prediction`` (``text, tokens, aspects, truncated``) or one exception
        per item."""


class EnginePredictor:
    """A ``mabsa train`` checkpoint behind the server's predictor shape."""

    def __init__(self, predictor: Any, directory: str | Path | None = None):
        self.predictor = predictor
        processor = predictor.model.processor
        self.task = predictor.task
        # Per-image texts (caption, faces) are perceived by the engine's predictor from the file;
        # pixel models (visual_source "image") load the file themselves.
        self.reads_image_texts = bool(getattr(processor, "reads_image_texts", processor.image_text))
        self.reads_image = self.reads_image_texts or getattr(processor, "visual_source", None) == "image"
        self.info = {
            "task": self.task,
            "model": predictor.config.get("model"),
            "checkpoint": str(directory) if directory is not None else None,
            "reads_image": self.reads_image,
            "image_text": list(processor.image_text),
            "max_length": predictor.max_length,
            "needs_aspects": self.task == "masc",
        }

    @classmethod
    def load(cls, directory: str | Path, batch_size: int = 32) -> EnginePredictor:
        return cls(load(directory, batch_size=batch_size), directory)

    def _call(self, items: Sequence[PredictItem]) -> list[Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncationWarning)  # reported per post instead
            return self.predictor.predict_batch(
                [i.text for i in items],
                [i.image if self.reads_image else None for i in items],
                aspects=[list(i.aspects) if i.aspects else None for i in items],
                captions=[i.caption for i in items],
                faces=[i.faces for i in items],
            )

    def predict_batch(self, items: Sequence[PredictItem]) -> list[Any]:
        try:
            return self._call(items)
        except MabsaError:
            if len(items) == 1:
                raise
        out: list[Any] = []
        for item in items:  # isolate the item that failed; its neighbours still get answers
            try:
                out.extend(self._call([item]))
            except MabsaError as e:
                out.append(e)
        return out


def token_offsets(text: str, tokens: Sequence[str]) -> list[tuple[int, int] | None]:
    """Character span of each token in ``text`` (tokens are substrings, in order); ``None``
    for a token that cannot be found (then the page shows the tokens instead of the text)."""
    out: list[tuple[int, int] | None] = []
    pos = 0
    for token in tokens:
        start = text.find(token, pos)
        if start < 0:
            out.append(None)
            continue
        out.append((start, start + len(token)))
        pos = start + len(token)
    return out
