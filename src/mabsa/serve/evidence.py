"""The evidence the page shows beside a prediction, from :mod:`mabsa.perception`:

* per image: caption, top labels, faces (boxes + attributes + description), regions (boxes +
  interpretations);
* per predicted aspect: the aligned face/region - the one whose description is nearest to the
  aspect term by MiniLM cosine similarity - and, only if enabled, an LLM rationale (slow on a
  CPU). The aspects are the model's predictions, not gold ones, so this respects the leakage rule.

Everything here is optional (``EvidenceConfig``): the model's answer never waits for it when
it is off, and a failure in it is reported in the answer instead of failing the request.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from mabsa.encoders.text import TextEncoder, load_tokenizer
from mabsa.perception import Perceiver, Perception, PerceptionConfig, use_threads
from mabsa.perception.captions import LABEL_FLOOR
from mabsa.perception.interpret import UNCLEAR_REGION
from mabsa.processing.image_text import describe_face
from mabsa.processing.images import LoadedImage

#: An aspect is shown as aligned to a face or region only at or above this MiniLM cosine
#: similarity. Calibrated on scikit-image photos (docs/perception.md): ten unrelated terms
#: ("Obama", "pizza", "election", ...) reached at most 0.23 against any face or region of five
#: photos, related common nouns ("cat" 0.59, "tripod" 0.73, "coffee" 0.44, "launch" 0.29) more.
ALIGNMENT_FLOOR = 0.25


@dataclass(frozen=True)
class EvidenceConfig:
    enabled: bool = True
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)
    align: bool = True
    align_encoder: str = "minilm"
    rationales: bool = False  # chat-LLM rationale per aspect (seconds per aspect on a CPU)
    cache_dir: str | None = None
    # processes that perceive uploaded images, each with its own models and one CPU thread
    # (batches of concurrent requests' images go to whichever is free); 0: a thread of the
    # service process (no start-up cost, one image at a time)
    workers: int = 2


def warm_up_image():
    from skimage import data

    return data.astronaut()[::4, ::4].copy()


def perceive_each(perceiver: Perceiver, images: Sequence[LoadedImage]) -> list[Perception | BaseException]:
    """One batched pass over ``images``; if it fails, image by image, so that a bad image fails
    alone. A failure is returned as a plain ``RuntimeError`` (it crosses process boundaries).
    Region masks are dropped: the answer shows boxes, and a mask is ~0.5 MB to send and keep."""
    try:
        return [without_masks(p) for p in perceiver.perceive_batch(images)]
    except Exception as e:
        if len(images) == 1:
            return [RuntimeError(f"{type(e).__name__}: {e}")]
    return [perceive_each(perceiver, [image])[0] for image in images]


def without_masks(perception: Perception) -> Perception:
    if not perception.regions:
        return perception
    return replace(perception, regions=tuple(replace(r, mask=None) for r in perception.regions))


# -- perception worker processes (EvidenceConfig.workers) --------------------------------------
_worker_perceiver: Perceiver | None = None
_worker_error: str | None = None  # why this worker could not start


def start_worker(config: EvidenceConfig) -> None:
    """Process-pool initializer: one thread per library, every model built once. A failure is
    kept and raised by this worker's tasks (an initializer that raises breaks the whole pool with
    a message that does not say why)."""
    global _worker_perceiver, _worker_error
    _exit_with(os.getppid())
    use_threads(1)
    try:
        perceiver = Perceiver(config.perception, config.cache_dir)
        perceiver.perceive(warm_up_image())
        _worker_perceiver = perceiver
    except Exception as e:
        _worker_error = f"{type(e).__name__}: {e}"


def _exit_with(parent: int) -> None:
    """Leave when the service process is gone, however it went (a SIGKILL runs no clean-up):
    an orphaned worker would keep its models in memory for ever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="mabsa-parent-watch", daemon=True).start()


def perceive_in_worker(images: Sequence[LoadedImage]) -> list[Perception | BaseException]:
    return perceive_each(_started_perceiver(), images)


def worker_ready() -> int:
    """Submitting one per worker makes the pool start (and warm up) all of them; raises why a
    worker could not start."""
    _started_perceiver()
    return os.getpid()


def _started_perceiver() -> Perceiver:
    if _worker_perceiver is None:
        raise RuntimeError(f"a perception worker could not start: {_worker_error or 'start_worker did not run'}")
    return _worker_perceiver


#: Sentence embeddings the aligner keeps in memory, by text (384 floats each: ~6 MB).
EMBEDDINGS_KEPT = 4096
#: Perceptions the service keeps in memory, by image digest (the same photo posted again is
#: answered without perceiving it again; without its region masks a perception is a few kB).
PERCEPTIONS_KEPT = 64


class EvidenceBuilder:
    def __init__(self, config: EvidenceConfig):
        self.config = config
        self.perceiver = Perceiver(config.perception, config.cache_dir)
        self._lock = threading.Lock()  # perception components are built lazily, once
        self._recent_lock = threading.Lock()
        self._recent: OrderedDict[str, Perception] = OrderedDict()  # digest -> perception, newest last
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()  # text -> embedding, newest last

    # -- per image -------------------------------------------------------------------------
    def recall(self, image: LoadedImage) -> Perception | None:
        """The perception of these pixels if it is among the last :data:`PERCEPTIONS_KEPT`."""
        with self._recent_lock:
            seen = self._recent.pop(image.digest, None)
            if seen is not None:
                self._recent[image.digest] = seen  # newest again
        return None if seen is None else replace(seen, image=image.name)  # under this request's name

    def remember(self, image: LoadedImage, perception: Perception) -> Perception:
        with self._recent_lock:
            self._recent[image.digest] = perception
            while len(self._recent) > PERCEPTIONS_KEPT:
                self._recent.popitem(last=False)
        return replace(perception, image=image.name)

    def perceive(self, image: LoadedImage) -> Perception:
        """One image, in this process."""
        seen = self.recall(image)
        if seen is not None:
            return seen
        result = self.perceive_batch([image])[0]
        if isinstance(result, BaseException):
            raise result
        return self.remember(image, result)

    def perceive_batch(self, images: Sequence[LoadedImage]) -> list[Perception | BaseException]:
        """Several images in this process (the service's batcher when ``workers`` is 0)."""
        with self._lock:
            return perceive_each(self.perceiver, images)

    # -- per aspect ------------------------------------------------------------------------
    @cached_property
    def _text_encoder(self):
        return load_tokenizer(self.config.align_encoder), TextEncoder.from_pretrained(self.config.align_encoder).eval()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence embeddings ``[len(texts), D]``; a text seen lately is not encoded again
        (region and face descriptions repeat across photos, and so do aspect terms)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            for text, vector in zip(missing, self.encode(missing)):
                self._vectors[text] = vector
        for text in texts:
            self._vectors.move_to_end(text)
        while len(self._vectors) > EMBEDDINGS_KEPT:
            self._vectors.popitem(last=False)
        return np.stack([self._vectors[t] for t in texts])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Mean-pooled, L2-normalised sentence embeddings (the sentence-transformers recipe)."""
        import torch

        tokenizer, encoder = self._text_encoder
        batch = tokenizer(list(texts), padding=True, truncation=True, max_length=64, return_tensors="pt")
        with torch.inference_mode():
            hidden = encoder(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()

    def align(self, perception: Perception, terms: Sequence[str]) -> list[dict[str, Any] | None]:
        """For each term, the face or region whose description is nearest to it, if it is near
        enough (:data:`ALIGNMENT_FLOOR`); ``None`` otherwise: an unrelated pair is not shown."""
        candidates = visual_candidates(perception)
        if not terms or not candidates:
            return [None] * len(terms)
        with self._lock:
            vectors = self.embed([*terms, *(c["description"] for c in candidates)])
        sims = vectors[: len(terms)] @ vectors[len(terms) :].T
        out: list[dict[str, Any] | None] = []
        for row in sims:
            best = int(np.argmax(row))
            similarity = float(row[best])
            out.append(
                {**candidates[best], "similarity": round(similarity, 4)} if similarity >= ALIGNMENT_FLOOR else None
            )
        return out

    def rationale(self, image: LoadedImage, text: str, term: str) -> dict[str, Any]:
        with self._lock:
            r = self.perceiver.rationale(image, text, term)
        return {"description": r.description, "reason": r.reason, "source": r.source}


def visual_candidates(perception: Perception) -> list[dict[str, Any]]:
    """Faces and regions as ``{kind, index, box, description}``, the things an aspect can be
    aligned to."""
    out: list[dict[str, Any]] = []
    for i, face in enumerate(perception.faces or ()):
        if face.box is not None:
            out.append({"kind": "face", "index": i, "box": list(face.box), "description": describe_face(face)})
    for i, region in enumerate(perception.regions or ()):
        if region.interpretation and not is_unclear(region.interpretation):
            out.append(
                {
                    "kind": "background" if region.is_background else "region",
                    "index": i,
                    "box": list(region.box),
                    "description": region.interpretation,
                }
            )
    return out


def is_unclear(interpretation: str) -> bool:
    """A region the labeller could not name (its faces' expressions may still be described)."""
    return interpretation.split(".")[0].endswith(f" is {UNCLEAR_REGION}")


def confident(perception: Perception) -> bool:
    """Whether the image gave any confident evidence: a face, a label at or above the floor, or
    a region it could name."""
    return bool(
        perception.faces
        or any(p >= LABEL_FLOOR for _, p in perception.labels)
        or any(r.interpretation and not is_unclear(r.interpretation) for r in perception.regions or ())
    )


def image_summary(perception: Perception) -> dict[str, Any]:
    """The per-image part of an answer (JSON-ready)."""
    width, height = perception.size or (None, None)
    return {
        "name": perception.image,
        "width": width,
        "height": height,
        "confident": confident(perception),
        "caption": perception.caption.text if perception.caption else None,
        "caption_source": perception.caption.source if perception.caption else None,
        "labels": [{"label": label, "probability": round(p, 4)} for label, p in perception.labels],
        "face_description": perception.face_text,
        "faces": [
            {
                "box": list(f.box) if f.box else None,
                "age": f.age,
                "gender": f.gender,
                "emotion": f.emotion,
                "confidence": f.confidence,
                "description": describe_face(f),
            }
            for f in perception.faces or ()
        ],
        "regions": [
            {"box": list(r.box), "score": r.score, "is_background": r.is_background, "interpretation": r.interpretation}
            for r in perception.regions or ()
        ],
    }
