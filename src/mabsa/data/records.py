"""The records every part of mabsa speaks: a :class:`Post` and its :class:`Aspect` s.

Spans are token indices over ``Post.tokens`` with ``end`` exclusive, as in the JMASA JSON
release. Records are frozen; use :func:`dataclasses.replace` (or the helpers below) to derive
new ones.

Image-derived texts come in two kinds, and the split matters (leakage rule, see
``docs/data.md``):

* **per-image** texts (``caption``, ``faces``) describe the picture without knowing the gold
  aspects; any task may read them;
* **per-aspect** texts (``Post.aspect_face_description`` and ``Aspect.rationale``) were made
  *with* the gold aspects and name them; they may only be read where the aspect is given.
  :meth:`Post.extraction_input` strips them, and is what term extractors must consume.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any


class Polarity(str, enum.Enum):  # noqa: UP042  (StrEnum would change str(Polarity.POS))
    """Sentiment toward an aspect. The value is the short tag used in files and BIO labels."""

    POS = "POS"
    NEU = "NEU"
    NEG = "NEG"

    @classmethod
    def parse(cls, value: Any) -> Polarity:
        """Accept the spellings the public releases use.

        ``POS/NEU/NEG`` (any case), ``positive/neutral/negative``, and the integer codes of the
        TomBERT TXT / rationale files (``1/0/-1``). The TSV's 0/1/2 codes are ambiguous with
        those, so they are decoded by :data:`TSV_LABELS` in the TSV reader, not here.
        """
        if isinstance(value, Polarity):
            return value
        key = str(value).strip().lower()
        try:
            return _POLARITY_SPELLINGS[key]
        except KeyError:
            raise ValueError(
                f"bad polarity {value!r}: expected one of POS, NEU, NEG (or positive/neutral/negative, or 1/0/-1)"
            ) from None


_POLARITY_SPELLINGS = {
    "pos": Polarity.POS,
    "positive": Polarity.POS,
    "1": Polarity.POS,
    "+1": Polarity.POS,
    "neu": Polarity.NEU,
    "neutral": Polarity.NEU,
    "0": Polarity.NEU,
    "neg": Polarity.NEG,
    "negative": Polarity.NEG,
    "-1": Polarity.NEG,
}

#: TomBERT TSV label column: 0 = NEG, 1 = NEU, 2 = POS.
TSV_LABELS = {"0": Polarity.NEG, "1": Polarity.NEU, "2": Polarity.POS}


@dataclass(frozen=True)
class Rationale:
    """An LLM's view of one aspect: an image description and a sentiment rationale.

    Per-aspect text: it names the aspect it was generated for.
    """

    description: str | None = None
    reason: str | None = None
    source: str | None = None  # e.g. "miniGPT-4 (ArkMSA release)" or a backend id

    def as_text(self) -> str:
        return " ".join(p.strip() for p in (self.description, self.reason) if p and p.strip())


@dataclass(frozen=True)
class Face:
    """One detected face and its attributes; every attribute is optional.

    ``box`` is ``(x, y, w, h)`` in pixels of the original image. ``emotion`` holds
    probabilities in [0, 1] (DeepFace's percentages are divided by 100 when read).
    """

    box: tuple[int, int, int, int] | None = None
    age: float | None = None
    gender: str | None = None  # "man" / "woman"
    race: str | None = None
    emotion: str | None = None
    emotion_scores: Mapping[str, float] = field(default_factory=dict)
    confidence: float | None = None  # detector or expression confidence, in [0, 1]
    race_scores: Mapping[str, float] = field(default_factory=dict)  # probabilities in [0, 1]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: unknown attributes are left out."""
        out = {k: v for k, v in vars(self).items() if v not in (None, {})}
        if self.box is not None:
            out["box"] = list(self.box)
        if self.emotion_scores:
            out["emotion_scores"] = dict(self.emotion_scores)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Face:
        d = dict(d)
        if d.get("box") is not None:
            d["box"] = tuple(int(v) for v in d["box"])
        d["emotion_scores"] = dict(d.get("emotion_scores") or {})
        return cls(**d)


@dataclass(frozen=True)
class Aspect:
    """An aspect term: tokens ``[start, end)`` of its post, and the sentiment toward it.

    ``polarity`` is ``None`` only for term-only (MATE) predictions. ``score`` is a model's
    confidence, ``None`` for gold annotations.
    """

    start: int
    end: int
    term: str
    polarity: Polarity | None = None
    score: float | None = None
    rationale: Rationale | None = None  # per-aspect text (leakage rule)

    def __post_init__(self) -> None:
        if not (0 <= self.start < self.end):
            raise ValueError(f"bad aspect span [{self.start}, {self.end}): need 0 <= start < end")
        if self.polarity is not None and not isinstance(self.polarity, Polarity):
            object.__setattr__(self, "polarity", Polarity.parse(self.polarity))

    @property
    def span(self) -> tuple[int, int]:
        return (self.start, self.end)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"start": self.start, "end": self.end, "term": self.term}
        out["polarity"] = self.polarity.value if self.polarity else None
        if self.score is not None:
            out["score"] = self.score
        if self.rationale is not None:
            out["rationale"] = {k: v for k, v in vars(self.rationale).items() if v is not None}
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Aspect:
        r = d.get("rationale")
        return cls(
            start=int(d["start"]),
            end=int(d["end"]),
            term=str(d.get("term", "")),
            polarity=Polarity.parse(d["polarity"]) if d.get("polarity") is not None else None,
            score=float(d["score"]) if d.get("score") is not None else None,
            rationale=Rationale(**r) if r else None,
        )


@dataclass(frozen=True)
class Post:
    """A short text with an image, and (for annotated data) its aspects.

    ``tokens`` is the unit of every span; ``text`` is the raw text (for the shipped data,
    ``" ".join(tokens)``). ``image`` is an image id (``"1860693.jpg"``) or a path.

    Image-derived texts, ``None`` where unknown:

    * ``caption`` - one caption of the image (per-image);
    * ``faces`` - detected faces with attributes; ``()`` means "looked, found none" (per-image);
    * ``aspect_face_description`` - FITE's shipped face description, built *with* the gold
      aspects (per-aspect: MASC / polarity stage only).

    ``decoded_image`` is the image itself when the caller already holds it decoded (the
    service's upload, a ``processing.images.LoadedImage``): models read it instead of loading
    ``image`` from disk, so nothing is written to a temporary file and decoded again. It is
    never serialised and does not take part in comparisons.
    """

    id: str
    tokens: tuple[str, ...]
    aspects: tuple[Aspect, ...] = ()
    text: str | None = None
    image: str | None = None
    caption: str | None = None
    faces: tuple[Face, ...] | None = None
    aspect_face_description: str | None = None
    decoded_image: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.tokens, tuple):
            object.__setattr__(self, "tokens", tuple(self.tokens))
        if not isinstance(self.aspects, tuple):
            object.__setattr__(self, "aspects", tuple(self.aspects))
        if self.text is None:
            object.__setattr__(self, "text", " ".join(self.tokens))
        for a in self.aspects:
            if a.end > len(self.tokens):
                raise ValueError(
                    f"post {self.id!r}: aspect span [{a.start}, {a.end}) out of range for {len(self.tokens)} tokens"
                )

    # -- views -------------------------------------------------------------------------
    def span_text(self, start: int, end: int) -> str:
        return " ".join(self.tokens[start:end])

    def with_aspects(self, aspects: Iterable[Aspect]) -> Post:
        return replace(self, aspects=tuple(aspects))

    def extraction_input(self) -> Post:
        """What a term extractor (JMASA/MATE) may see: no aspects and no per-aspect texts."""
        return replace(self, aspects=(), aspect_face_description=None)

    @property
    def has_aspect_texts(self) -> bool:
        return self.aspect_face_description is not None or any(a.rationale is not None for a in self.aspects)

    # -- canonical JSONL form -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "text": self.text,
            "tokens": list(self.tokens),
            "image": self.image,
            "aspects": [a.to_dict() for a in self.aspects],
        }
        if self.caption is not None:
            out["caption"] = self.caption
        if self.faces is not None:
            out["faces"] = [f.to_dict() for f in self.faces]
        if self.aspect_face_description is not None:
            out["aspect_face_description"] = self.aspect_face_description
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Post:
        faces = d.get("faces")
        return cls(
            id=str(d["id"]),
            tokens=tuple(d["tokens"]),
            text=d.get("text"),
            image=d.get("image"),
            aspects=tuple(Aspect.from_dict(a) for a in d.get("aspects") or ()),
            caption=d.get("caption"),
            faces=None if faces is None else tuple(Face.from_dict(f) for f in faces),
            aspect_face_description=d.get("aspect_face_description"),
        )
