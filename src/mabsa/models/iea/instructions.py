"""Nearest-to-Match Instruction: X = [I, c1, U1, c2, U2, ..., cm] with U = [P, R, E].

Each region R that the aligner maps to a phrase P of the text is inserted, with its
interpretation E, right after P; regions aligned to nothing go at the end. The instruction is a
list of :class:`Segment` s, rendered as plain text for a text-only generator (R becomes a
``<region k>`` marker) or as chat content parts for a VLM (R is the region's crop).

Ablations (``mode``):

* ``"nmi"`` - the full instruction;
* ``"no_aligner"`` - every region and its interpretation at the end (no alignment);
* ``"no_interpretation"`` - regions placed by the aligner, without E;
* ``"text_only"`` - the post alone (no I, no regions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mabsa.models.iea.interpretations import ImageView, RegionUnit

MODES = ("nmi", "no_aligner", "no_interpretation", "text_only")
TASK_PROMPT = "Extract the aspect terms of the post and their sentiment."
TASK_PROMPT_MATE = "Extract the aspect terms of the post."
#: MASC: one instruction per given aspect; the answer is one polarity word.
TASK_PROMPT_MASC = 'What is the sentiment (positive, neutral or negative) toward "{term}" in the post?'


@dataclass(frozen=True)
class Segment:
    kind: str  # "image" (I), "text" (c), "phrase" (P), "region" (R), "interpretation" (E)
    text: str = ""
    region: int | None = None  # region number for phrase / region / interpretation
    image: Any = None  # PIL image for "image" / "region" (VLM generators)


@dataclass(frozen=True)
class Instruction:
    segments: tuple[Segment, ...]
    prompt: str = TASK_PROMPT

    def text(self) -> str:
        """Plain-text rendering (text-only generators, ``mabsa iea explain``)."""
        lines = [self.prompt]
        image = next((s for s in self.segments if s.kind == "image"), None)
        if image is not None and image.text:
            lines.append(f"Image: {image.text}")
        words: list[str] = []
        for s in self.segments:
            if s.kind in ("text", "phrase"):
                words.append(s.text)
            elif s.kind == "region":
                words.append(f"<region {s.region}>")
            elif s.kind == "interpretation" and words and words[-1] == f"<region {s.region}>":
                words[-1] = f"<region {s.region}: {s.text}>"
        lines.append("Post: " + " ".join(w for w in words if w))
        return "\n".join(lines)

    def content_parts(self) -> list[dict[str, Any]]:
        """Chat content parts for a VLM: the whole image first, each region's crop after its
        phrase (``{"type": "image"}`` parts, in order of :meth:`images`)."""
        parts: list[dict[str, Any]] = [{"type": "text", "text": self.prompt + "\n"}]
        for s in self.segments:
            if s.kind == "image":
                if s.image is not None:
                    parts.append({"type": "image"})
                if s.text:
                    parts.append({"type": "text", "text": f"Image: {s.text}\nPost:"})
                else:
                    parts.append({"type": "text", "text": "Post:"})
            elif s.kind in ("text", "phrase"):
                parts.append({"type": "text", "text": " " + s.text})
            elif s.kind == "region":
                if s.image is not None:
                    parts.append({"type": "text", "text": f" <region {s.region}>"})
                    parts.append({"type": "image"})
                else:
                    parts.append({"type": "text", "text": f" <region {s.region}>"})
            elif s.kind == "interpretation":
                parts.append({"type": "text", "text": f" ({s.text})"})
        merged: list[dict[str, Any]] = []
        for p in parts:  # adjacent text parts -> one
            if merged and p["type"] == "text" and merged[-1]["type"] == "text":
                merged[-1] = {"type": "text", "text": merged[-1]["text"] + p["text"]}
            else:
                merged.append(p)
        return merged

    def without_last_interpretation(self) -> Instruction | None:
        """This instruction less its last region interpretation (None: it has none left): what a
        prompt over its length budget gives up before any word of the post."""
        last = max((i for i, s in enumerate(self.segments) if s.kind == "interpretation"), default=None)
        if last is None:
            return None
        return Instruction(self.segments[:last] + self.segments[last + 1 :], self.prompt)

    def images(self) -> list[Any]:
        return [s.image for s in self.segments if s.kind in ("image", "region") and s.image is not None]


def _unit(u: RegionUnit, with_interpretation: bool) -> list[Segment]:
    out = [Segment("region", region=u.index, image=u.image)]
    if with_interpretation:
        out.append(Segment("interpretation", u.interpretation, region=u.index))
    return out


def build_instruction(
    tokens: Sequence[str],
    view: ImageView | None,
    spans: Sequence[tuple[int, int] | None] = (),
    mode: str = "nmi",
    prompt: str = TASK_PROMPT,
) -> Instruction:
    """``spans[k]`` is the aligned phrase of ``view.regions[k]`` (None: aligned to nothing)."""
    if mode not in MODES:
        raise ValueError(f"unknown instruction mode {mode!r}: use one of {', '.join(MODES)}")
    segments: list[Segment] = []
    regions = list(view.regions) if view is not None and mode != "text_only" else []
    if view is not None and mode != "text_only" and (view.description or view.image is not None):
        segments.append(Segment("image", view.description or "", image=view.image))
    spans = list(spans)[: len(regions)] + [None] * (len(regions) - len(spans))
    if mode == "no_aligner":
        spans = [None] * len(regions)
    with_interp = mode != "no_interpretation"
    # regions that share a phrase follow it in region order; overlapping phrases are cut at
    # the earlier one's end
    placed = sorted(((s, k) for k, s in enumerate(spans) if s is not None), key=lambda x: (x[0][1], x[0][0], x[1]))
    cursor = 0
    for (start, end), k in placed:
        start = max(start, cursor)
        if start > cursor:
            segments.append(Segment("text", " ".join(tokens[cursor:start])))
        if end > start:
            segments.append(Segment("phrase", " ".join(tokens[start:end]), region=regions[k].index))
        cursor = max(cursor, end)
        segments.extend(_unit(regions[k], with_interp))
    if cursor < len(tokens):
        segments.append(Segment("text", " ".join(tokens[cursor:])))
    for k, s in enumerate(spans):
        if s is None and k < len(regions):
            segments.extend(_unit(regions[k], with_interp))
    return Instruction(tuple(segments), prompt)
