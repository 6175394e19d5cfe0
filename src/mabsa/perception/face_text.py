"""FITE's aspect-sensitive alignment and rewrite: the face description *for one aspect*.

FITE (Yang et al., 2022, section 3.4 and appendix A.1) describes every face with the template of
:func:`~mabsa.processing.image_text.describe_face`, then, for a given aspect:

* **0 faces** -> "There are 0 people in the image."
* **1 face** -> that face;
* **several faces** -> the face whose description best matches the aspect *in this image*: an
  image-text similarity model (CLIP in the paper) scores ``"<aspect>, <face description>"``
  against the image and the best-scoring face is kept.

The chosen face is rewritten to keep only the aspect and the expression:
"There are 2 people in the image. Kate Middleton with a happy expression." (an expression under
the confidence threshold, 0.4, is left out: "There are 2 people in the image. Kate Middleton.").

Similarity backends (``similarity`` spec): ``None`` (the embedded rule below), ``"hf:<id or dir>"``
or a local directory holding a CLIP-style dual encoder (``CLIPModel``, ``SiglipModel``: anything
with ``get_text_features`` / ``get_image_features``), offline. Any object with
``scores(image, texts) -> list[float]`` can be passed as well (tests use a fake one).

**Embedded fallback rule** (no backend, or no image file to look at, e.g. the shipped benchmarks):
the face with the most confident expression (``Face.confidence``, else its top emotion
probability); ties go to the larger box, then to the earlier face. This is the paper's own
"single face" setting (Table 7: "the face with the highest emotional prediction confidence").
The rule is deterministic and :attr:`FaceChoice.rule` says which one picked each face.

Leakage: the output names the aspect it was asked about, so it is per-aspect text (MASC or the
polarity stage of a two-stage JMASA only); it is built from per-image faces and the *given*
aspect, never from gold annotations.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from mabsa.data.records import Face
from mabsa.perception.errors import BackendSpecError
from mabsa.processing.image_text import (
    MIN_ATTRIBUTE_CONFIDENCE,
    describe_face,
    people_sentence,
    sure_expression,
)
from mabsa.processing.images import load_image

RULE_ONLY_FACE = "only-face"
RULE_SIMILARITY = "similarity"
RULE_MOST_CONFIDENT = "most-confident"


class SimilarityBackend(Protocol):
    id: str

    def scores(self, image: Any, texts: Sequence[str]) -> list[float]:
        """One image-text similarity per text (higher = better match)."""
        ...


@dataclass(frozen=True)
class FaceChoice:
    index: int | None  # chosen face, None when the image has no face
    rule: str | None  # RULE_* that chose it
    scores: tuple[float, ...] = ()  # similarity per face (RULE_SIMILARITY only)


def expression_confidence(face: Face) -> float:
    if face.confidence is not None:
        return float(face.confidence)
    return max(face.emotion_scores.values(), default=0.0)


def _area(face: Face) -> int:
    return face.box[2] * face.box[3] if face.box else 0


def most_confident_face(faces: Sequence[Face]) -> int:
    """The embedded rule: most confident expression, then larger box, then earlier face."""
    return min(range(len(faces)), key=lambda i: (-expression_confidence(faces[i]), -_area(faces[i]), i))


def matching_texts(faces: Sequence[Face], aspect: str, min_confidence: float = MIN_ATTRIBUTE_CONFIDENCE) -> list[str]:
    """What the similarity model reads per face (appendix A.1): "<aspect>, <description>"."""
    return [f"{aspect}, {describe_face(f, min_confidence)}" for f in faces]


def choose_face(
    faces: Sequence[Face],
    aspect: str,
    image: Any = None,
    backend: SimilarityBackend | None = None,
    min_confidence: float = MIN_ATTRIBUTE_CONFIDENCE,
) -> FaceChoice:
    """Which face the description of ``aspect`` keeps."""
    if not faces:
        return FaceChoice(None, None)
    if len(faces) == 1:
        return FaceChoice(0, RULE_ONLY_FACE)
    if backend is not None and image is not None:
        scores = [float(s) for s in backend.scores(image, matching_texts(faces, aspect, min_confidence))]
        best = max(range(len(faces)), key=lambda i: (scores[i], -i))
        return FaceChoice(best, RULE_SIMILARITY, tuple(scores))
    return FaceChoice(most_confident_face(faces), RULE_MOST_CONFIDENT)


def rewrite(
    faces: Sequence[Face], choice: FaceChoice, aspect: str, min_confidence: float = MIN_ATTRIBUTE_CONFIDENCE
) -> str:
    """The people count, then the aspect with the chosen face's expression."""
    head = people_sentence(len(faces))
    if choice.index is None:
        return head
    emotion = sure_expression(faces[choice.index], min_confidence)
    return f"{head} {aspect} with a {emotion} expression." if emotion else f"{head} {aspect}."


class FaceTextBuilder:
    """``build(faces, aspect, image) -> (text, choice)`` with one similarity backend."""

    def __init__(
        self, similarity: str | SimilarityBackend | None = None, min_confidence: float = MIN_ATTRIBUTE_CONFIDENCE
    ):
        self.spec = (
            similarity
            if isinstance(similarity, str) or similarity is None
            else getattr(similarity, "id", type(similarity).__name__)
        )
        self._backend = similarity if not isinstance(similarity, str) else None
        self.min_confidence = float(min_confidence)
        self._warned = False

    @property
    def backend(self) -> SimilarityBackend | None:
        if self._backend is None and isinstance(self.spec, str):
            self._backend = build_similarity(self.spec)
        return self._backend

    def build(self, faces: Sequence[Face] | None, aspect: str, image: Any = None) -> tuple[str | None, FaceChoice]:
        if faces is None:  # nobody looked at the image: no face text at all
            return None, FaceChoice(None, None)
        backend = self.backend if len(faces) > 1 and self.spec is not None else None
        if backend is not None and not _readable_image(image):
            if not self._warned:
                warnings.warn(
                    f"face matching: similarity backend {self.spec!r} needs the image, "
                    f"but {image!r} is not an image file; using the most-confident-face "
                    "rule for such posts",
                    stacklevel=2,
                )
                self._warned = True
            backend = None
        choice = choose_face(faces, aspect, image if backend else None, backend, self.min_confidence)
        return rewrite(faces, choice, aspect, self.min_confidence), choice


def _readable_image(image: Any) -> bool:
    if image is None:
        return False
    if isinstance(image, (str, Path)):
        return Path(image).is_file()
    return True  # bytes, PIL image, array, LoadedImage


# -- CLIP-style similarity -------------------------------------------------------------------
class HFImageTextSimilarity:
    """Cosine similarity of a dual encoder's projected, L2-normalised embeddings (eq. 3-5)."""

    def __init__(self, name_or_dir: str):
        from transformers import AutoModel, AutoProcessor

        self.id = f"hf:{name_or_dir}"
        try:
            self.model = AutoModel.from_pretrained(name_or_dir).eval()
            self.processor = AutoProcessor.from_pretrained(name_or_dir)
        except (OSError, ValueError) as e:
            raise BackendSpecError(
                f"similarity {self.id!r}: cannot load a CLIP-style model offline from "
                f"{name_or_dir!r} (a local directory or a model in the HF cache): {e}"
            ) from None
        if not hasattr(self.model, "get_text_features") or not hasattr(self.model, "get_image_features"):
            raise BackendSpecError(
                f"similarity {self.id!r}: {type(self.model).__name__} is not an "
                "image-text dual encoder (no get_text_features/get_image_features)"
            )

    def scores(self, image: Any, texts: Sequence[str]) -> list[float]:
        import torch

        rgb = load_image(image).rgb
        with torch.inference_mode():
            t = self.processor(text=list(texts), return_tensors="pt", padding=True, truncation=True)
            i = self.processor(images=[rgb], return_tensors="pt")
            text = _features(self.model.get_text_features(**t))
            img = _features(self.model.get_image_features(pixel_values=i["pixel_values"]))
            text = torch.nn.functional.normalize(text, dim=-1)
            img = torch.nn.functional.normalize(img, dim=-1)
            return (text @ img[0]).tolist()


def _features(out: Any):
    """Newer transformers return a model output; older ones the projected tensor."""
    return out if hasattr(out, "dim") else out.pooler_output


@lru_cache(maxsize=4)
def build_similarity(spec: str) -> SimilarityBackend:
    spec = spec.strip()
    name = spec[3:] if spec.startswith("hf:") else spec
    if spec.startswith("hf:") or Path(name).is_dir():
        return HFImageTextSimilarity(name)
    raise BackendSpecError(
        f"unknown similarity backend {spec!r}: use 'hf:<CLIP id or dir>' or a "
        "local CLIP directory (or none for the most-confident-face rule)"
    )
