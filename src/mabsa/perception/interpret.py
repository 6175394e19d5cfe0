"""Interpretations of regions (IEA) and per-aspect rationales (LRSA-style), from any chat backend.

Spec strings (:func:`build_region_interpreter`):

* ``"labels"`` - embedded: the top ImageNet labels of the region crop, plus the expression of any
  face whose centre lies in the region ("This region shows a tabby or a tiger cat. A person in it
  has a happy expression.");
* any chat backend spec (``"smollm2"``, ``"hf:..."``, ``"openai:<url>#<model>"``): a VLM sees the
  crop; a text-only LLM gets the embedded interpretation as its evidence and rewrites it.

A rationale is per-aspect: it is generated for one given aspect and names it, so it obeys the
leakage rule like the shipped ones (MASC / polarity stage only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from PIL import Image

from mabsa.data.records import Face, Rationale
from mabsa.perception.cache import cache_key
from mabsa.perception.captions import LABEL_FLOOR, list_labels
from mabsa.perception.labels import shared_labeler
from mabsa.perception.llm import ChatBackend, build_chat_backend, user_message
from mabsa.perception.records import Region

REGION_PROMPT = "Describe in one sentence what this region of a social-media photo shows and what feeling it conveys."
REGION_TEXT_PROMPT = (
    "A region of a social-media photo was analysed automatically: {evidence} "
    "In one sentence, say what the region shows and what feeling it conveys."
)
#: How an interpretation names a region whose labels are all under the floor.
UNCLEAR_REGION = "unclear"
RATIONALE_DESCRIBE_PROMPT = 'Describe the image in one or two sentences, focusing on anything related to "{aspect}".'
RATIONALE_PROMPT = (
    "Post: {text}\nImage: {description}\nAspect: {aspect}\n"
    "In one or two sentences, explain which sentiment (positive, neutral or negative) the "
    'post expresses toward "{aspect}" and why.'
)


class RegionInterpreter(Protocol):
    id: str

    def interpret(self, image: Image.Image, regions: Sequence[Region], faces: Sequence[Face] = ()) -> list[str]: ...


def crop(image: Image.Image, region: Region) -> Image.Image:
    x, y, w, h = region.box
    return image.crop((x, y, x + max(1, w), y + max(1, h)))


def crops(image: Image.Image, regions: Sequence[Region]) -> list[Image.Image]:
    return [crop(image, r) for r in regions]


def faces_in_region(region: Region, faces: Sequence[Face]) -> list[Face]:
    out = []
    for f in faces:
        if f.box is None:
            continue
        cx, cy = f.box[0] + f.box[2] // 2, f.box[1] + f.box[3] // 2
        if region.mask is not None:
            inside = 0 <= cy < region.mask.shape[0] and 0 <= cx < region.mask.shape[1] and bool(region.mask[cy, cx])
        else:
            x, y, w, h = region.box
            inside = x <= cx < x + w and y <= cy < y + h
        if inside:
            out.append(f)
    return out


class LabelRegionInterpreter:
    def __init__(self, k: int = 3, floor: float = LABEL_FLOOR):
        self.k, self.floor = k, floor
        self.id = f"region-labels(efficientnet-lite0,k={k},floor={floor})+face-expression"

    def interpret(self, image: Image.Image, regions: Sequence[Region], faces: Sequence[Face] = ()) -> list[str]:
        if not regions:
            return []
        return self.phrase(regions, shared_labeler().top_labels(crops(image, regions), self.k), faces)

    def phrase(
        self, regions: Sequence[Region], labels: Sequence[Sequence[tuple[str, float]]], faces: Sequence[Face] = ()
    ) -> list[str]:
        """The interpretations of ``regions`` from their crops' top labels (the perceiver labels
        the image and its crops in one pass and hands the crops' labels here)."""
        out = []
        for region, top in zip(regions, labels):
            what = list_labels(top[: self.k], self.floor)
            where = "The background" if region.is_background else "This region"
            # a crop the labeller cannot name is "unclear", not given its best wrong guess
            text = f"{where} shows {what}." if what else f"{where} is {UNCLEAR_REGION}."
            moods = [f.emotion for f in faces_in_region(region, faces) if f.emotion]
            if len(moods) == 1:
                text += f" A person in it has a {moods[0]} expression."
            elif moods:
                text += f" {len(moods)} people in it have {', '.join(moods[:-1])} and {moods[-1]} expressions."
            out.append(text)
        return out


class ChatRegionInterpreter:
    def __init__(self, backend: ChatBackend, max_tokens: int = 60):
        self.backend, self.max_tokens = backend, max_tokens
        self.evidence = None if backend.supports_images else LabelRegionInterpreter()
        self.id = f"region-chat({backend.id},max_tokens={max_tokens})"

    def interpret(self, image: Image.Image, regions: Sequence[Region], faces: Sequence[Face] = ()) -> list[str]:
        if self.evidence is None:
            convs = [[user_message(REGION_PROMPT, [crop(image, r)])] for r in regions]
        else:
            notes = self.evidence.interpret(image, regions, faces)
            convs = [[user_message(REGION_TEXT_PROMPT.format(evidence=n))] for n in notes]
        return self.backend.chat_many(convs, max_tokens=self.max_tokens)


def build_region_interpreter(spec: str = "labels") -> RegionInterpreter:
    if spec.strip() == "labels":
        return LabelRegionInterpreter()
    return ChatRegionInterpreter(build_chat_backend(spec))


class RationaleGenerator:
    """Image description + sentiment rationale for one given aspect (as the ArkMSA/LRSA texts)."""

    def __init__(
        self,
        backend: ChatBackend,
        max_tokens: int = 80,
        describe_prompt: str | None = None,
        rationale_prompt: str | None = None,
    ):
        """``describe_prompt`` / ``rationale_prompt`` replace the built-in templates (fields
        ``{aspect}``; ``{text}``, ``{description}``, ``{aspect}``); the id, and so every cache
        key, changes with them."""
        self.backend, self.max_tokens = backend, max_tokens
        self.describe_prompt = describe_prompt or RATIONALE_DESCRIBE_PROMPT
        self.rationale_prompt = rationale_prompt or RATIONALE_PROMPT
        self.id = f"rationale({backend.id},max_tokens={max_tokens})"
        if describe_prompt or rationale_prompt:
            self.id = self.id[:-1] + f",prompts={cache_key(self.describe_prompt, self.rationale_prompt)[:12]})"

    def rationale(
        self, text: str, aspect: str | None, image: Image.Image | None = None, image_text: str | None = None
    ) -> Rationale:
        """``image_text`` (caption + face text) stands for the image for text-only backends.
        ``aspect`` may be None for per-post prompts that do not name one."""
        aspect = aspect or ""
        if image is not None and self.backend.supports_images:
            description = self.backend.chat(
                [user_message(self.describe_prompt.format(aspect=aspect), [image])], max_tokens=self.max_tokens
            )
        else:
            description = image_text or "unknown"
        reason = self.backend.chat(
            [user_message(self.rationale_prompt.format(text=text, description=description, aspect=aspect))],
            max_tokens=self.max_tokens,
        )
        return Rationale(description=description, reason=reason, source=self.backend.id)
