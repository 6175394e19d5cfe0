"""Captions: pluggable image-to-text backends, one ``caption(image) -> Caption`` interface.

Spec strings (:func:`build_captioner`):

* ``"labels"`` - embedded fallback: the top ImageNet labels of EfficientNet-Lite0 phrased as a
  sentence and marked ``label_derived`` (it names objects, it does not describe the scene);
* ``"hf:<id or dir>"`` - a Hugging Face image-to-text model (BLIP, GIT, ViT-GPT2 ...), offline;
* ``"openai:<base url>#<model>"`` - a VLM behind an OpenAI-compatible endpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from PIL import Image

from mabsa.data.records import Face
from mabsa.perception.errors import BackendSpecError
from mabsa.perception.labels import shared_labeler
from mabsa.perception.llm import ChatBackend, build_chat_backend, user_message
from mabsa.perception.records import Caption
from mabsa.processing.image_text import MIN_ATTRIBUTE_CONFIDENCE, describe_face

CAPTION_PROMPT = "Describe this image in one short sentence."
#: An ImageNet label is named only at or above this probability. Calibrated on scikit-image's
#: photos (docs/perception.md): right labels scored 0.30-0.95 (tripod 0.94, espresso 0.95,
#: tiger cat 0.39, missile 0.30), the wrong ones on the astronaut photo 0.06-0.16.
LABEL_FLOOR = 0.25
#: What a caption says when nothing in the image was recognised with confidence.
UNCLEAR = "nothing recognised with confidence"


class Captioner(Protocol):
    id: str

    def caption(self, image: Image.Image) -> Caption: ...


def list_labels(labels: Sequence[tuple[str, float]], floor: float = LABEL_FLOOR) -> str | None:
    """'a tiger cat or an Egyptian cat': the labels at or above ``floor`` (``None``: none is)."""
    names = [f"{'an' if n[0].lower() in 'aeiou' else 'a'} {n}" for n, p in labels if p >= floor]
    if not names:
        return None
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def phrase_labels(labels: Sequence[tuple[str, float]], floor: float = LABEL_FLOOR) -> str:
    """'An image of a tiger cat or an Egyptian cat.' (only labels at or above ``floor``)."""
    return f"An image of {list_labels(labels, floor) or UNCLEAR}."


def describe_image(
    faces: Sequence[Face] | None,
    labels: Sequence[tuple[str, float]],
    min_confidence: float = MIN_ATTRIBUTE_CONFIDENCE,
    floor: float = LABEL_FLOOR,
) -> str:
    """A label-derived caption that names the people found first (their count, and the
    attributes above ``min_confidence``), then the objects named with confidence:
    'An image of a 33-year-old woman with a happy expression.'"""
    people = [_lower_first(describe_face(f, min_confidence).rstrip(".")) for f in faces or ()]
    things = list_labels(labels, floor)
    who: str | None
    if len(people) > 3:
        who = f"{len(people)} people, among them {', '.join(people[:2])}"
    elif len(people) > 1:
        who = f"{len(people)} people: {', '.join(people[:-1])} and {people[-1]}"
    else:
        who = people[0] if people else None
    if who and things:
        return f"An image of {who}; it also shows {things}."
    return f"An image of {who or things or UNCLEAR}."


def label_caption_source(k: int, floor: float = LABEL_FLOOR) -> str:
    """What a label-derived caption names as its source (a cache key part: spelt once)."""
    return f"imagenet-labels(efficientnet-lite0,k={k},floor={floor})"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


class LabelCaptioner:
    def __init__(self, k: int = 3, floor: float = LABEL_FLOOR):
        self.k, self.floor = k, floor
        self.id = label_caption_source(k, floor)

    def caption(self, image: Image.Image) -> Caption:
        labels = shared_labeler().top_labels([image], self.k)[0]
        return Caption(phrase_labels(labels, self.floor), self.id, label_derived=True)


class HFCaptioner:
    """Any ``transformers`` image-to-text model with ``generate`` (greedy, ``max_new_tokens``)."""

    def __init__(self, name_or_dir: str, max_new_tokens: int = 30, prompt: str | None = None):
        from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

        self.id = f"hf:{name_or_dir}"
        self.model = _load_image_to_text(name_or_dir).eval()
        try:
            self.processor = AutoProcessor.from_pretrained(name_or_dir)
            self.tokenizer = getattr(self.processor, "tokenizer", None) or AutoTokenizer.from_pretrained(name_or_dir)
            if not hasattr(self.processor, "image_processor") and not callable(
                getattr(self.processor, "preprocess", None)
            ):
                raise ValueError("not an image processor")
        except (OSError, ValueError, TypeError):  # e.g. a VisionEncoderDecoder saved without a processor
            self.processor = AutoImageProcessor.from_pretrained(name_or_dir)
            self.tokenizer = AutoTokenizer.from_pretrained(name_or_dir)
        self.max_new_tokens, self.prompt = max_new_tokens, prompt
        self._lock = threading.Lock()

    @torch.no_grad()
    def caption(self, image: Image.Image) -> Caption:
        kwargs: dict[str, Any] = {"images": image.convert("RGB"), "return_tensors": "pt"}
        if self.prompt:
            kwargs["text"] = self.prompt
        inputs = self.processor(**kwargs)
        with self._lock:
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        if (
            "input_ids" in inputs
            and out.shape[1] > inputs["input_ids"].shape[1]
            and torch.equal(out[0, : inputs["input_ids"].shape[1]], inputs["input_ids"][0])
        ):
            out = out[:, inputs["input_ids"].shape[1] :]  # decoder-only models echo the prompt
        text = str(self.tokenizer.decode(out[0], skip_special_tokens=True)).strip()
        return Caption(text, self.id)


def _load_image_to_text(name_or_dir: str):
    import transformers

    errors = []
    for auto in ("AutoModelForImageTextToText", "AutoModelForVision2Seq", "VisionEncoderDecoderModel"):
        cls = getattr(transformers, auto, None)
        if cls is None:
            continue
        try:
            return cls.from_pretrained(name_or_dir)
        except (OSError, ValueError, KeyError) as e:
            errors.append(f"{auto}: {e}")
    raise BackendSpecError(
        f"captioner 'hf:{name_or_dir}': not a loadable image-to-text model offline: " + " | ".join(errors)[:600]
    )


class EndpointCaptioner:
    def __init__(self, client: ChatBackend, prompt: str = CAPTION_PROMPT, max_tokens: int = 60):
        self.client, self.prompt, self.max_tokens = client, prompt, max_tokens
        self.id = f"{client.id}|prompt={prompt}"

    def caption(self, image: Image.Image) -> Caption:
        text = self.client.chat([user_message(self.prompt, [image])], max_tokens=self.max_tokens)
        return Caption(text, self.client.id)


def build_captioner(spec: str = "labels", **options) -> Captioner:
    spec = spec.strip()
    if spec == "labels":
        return LabelCaptioner(**options)
    if spec.startswith("hf:"):
        return HFCaptioner(spec[3:], **options)
    if spec.startswith("openai:"):
        return EndpointCaptioner(build_chat_backend(spec), **options)
    raise BackendSpecError(f"unknown captioner {spec!r}: use 'labels', 'hf:<id or dir>' or 'openai:<base url>#<model>'")
