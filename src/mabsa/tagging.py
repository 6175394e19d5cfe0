"""Aspect spans <-> BIO tag sequences, tag repair, and subword alignment.

Two tag schemes:

* :data:`JMASA` - BIO with the polarity in the tag (``B-POS``, ``I-NEG``, ...): one sequence
  labelling pass extracts terms and their sentiment;
* :data:`MATE` - plain ``O/B/I`` for term extraction alone.

Spans are token indices over ``Post.tokens``, ``end`` exclusive (see :mod:`mabsa.data.records`).
Models predict tags per token; :func:`tags_to_aspects` turns any sequence, valid or not, into
aspects by first applying the deterministic :func:`repair_tags` rule, so every decoder in mabsa
reads the same spans from the same tags. The rule and the subword rule are documented in
``docs/tagging_and_metrics.md``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from mabsa.data.records import Aspect, Polarity
from mabsa.errors import MabsaError

__all__ = [
    "JMASA",
    "MATE",
    "TagError",
    "TagScheme",
    "align_labels_to_subwords",
    "convert_scheme",
    "first_subword_index",
    "get_scheme",
    "ids_to_tags",
    "repair_tags",
    "spans_to_tags",
    "subword_to_word_predictions",
    "tags_to_aspects",
    "tags_to_ids",
]

OUTSIDE = "O"
BEGIN = "B"
INSIDE = "I"


class TagError(MabsaError, ValueError):
    """Tags, spans or subword alignments that cannot be converted; the message says why."""


@dataclass(frozen=True)
class TagScheme:
    """A label set for sequence labelling.

    ``labels`` fixes the label ids (``labels[i]`` has id ``i``; ``"O"`` is id 0 in both
    shipped schemes). ``label2id`` / ``id2label`` return fresh dicts (ready for a Hugging Face
    config) so the shared scheme cannot be altered through them.
    """

    name: str
    labels: tuple[str, ...]
    with_polarity: bool
    _ids: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = {label: i for i, label in enumerate(self.labels)}
        if len(ids) != len(self.labels):
            raise TagError(f"tag scheme {self.name!r}: duplicate labels in {self.labels}")
        object.__setattr__(self, "_ids", MappingProxyType(ids))

    @property
    def label2id(self) -> dict[str, int]:
        return dict(self._ids)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def tag(self, prefix: str, polarity: Polarity | None = None) -> str:
        """The label for a prefix (``"O"``, ``"B"``, ``"I"``) and, in JMASA, a polarity."""
        if prefix == OUTSIDE:
            return OUTSIDE
        if not self.with_polarity:
            return prefix
        if polarity is None:
            raise TagError(f"{self.name} tags need a polarity for prefix {prefix!r}")
        return f"{prefix}-{Polarity(polarity).value}"

    def parse(self, tag: str) -> tuple[str, Polarity | None]:
        """Split a label into (prefix, polarity); polarity is ``None`` for ``O`` and in MATE."""
        if tag not in self._ids:
            raise TagError(f"unknown {self.name} tag {tag!r}; expected one of {', '.join(self.labels)}")
        if tag == OUTSIDE:
            return OUTSIDE, None
        if not self.with_polarity:
            return tag, None
        prefix, polarity = tag.split("-", 1)
        return prefix, Polarity(polarity)


JMASA = TagScheme(
    name="jmasa",
    labels=("O", "B-POS", "I-POS", "B-NEU", "I-NEU", "B-NEG", "I-NEG"),
    with_polarity=True,
)
MATE = TagScheme(name="mate", labels=("O", "B", "I"), with_polarity=False)

_SCHEMES = {s.name: s for s in (JMASA, MATE)}


def get_scheme(name: str | TagScheme) -> TagScheme:
    """The scheme called ``name`` (``"jmasa"`` or ``"mate"``, any case); a scheme is returned as is."""
    if isinstance(name, TagScheme):
        return name
    try:
        return _SCHEMES[str(name).strip().lower()]
    except KeyError:
        raise TagError(f"unknown tag scheme {name!r}; expected one of {', '.join(sorted(_SCHEMES))}") from None


# -- spans <-> tags -----------------------------------------------------------------------
def spans_to_tags(n_tokens: int, aspects: Iterable[Aspect], scheme: TagScheme | str = JMASA) -> list[str]:
    """Tag ``n_tokens`` tokens with the aspects' spans (``O`` elsewhere).

    Raises :class:`TagError` (a ``ValueError``) for a span outside ``[0, n_tokens)``, for two
    spans that share a token (identical spans included), and in JMASA for an aspect without
    polarity. MATE ignores polarities.
    """
    scheme = get_scheme(scheme)
    owner: list[Aspect | None] = [None] * n_tokens
    spans = []
    for aspect in aspects:
        if not (0 <= aspect.start < aspect.end <= n_tokens):
            raise TagError(
                f"aspect {aspect.term!r} span [{aspect.start}, {aspect.end}) is out of range for {n_tokens} tokens"
            )
        if scheme.with_polarity and aspect.polarity is None:
            raise TagError(
                f"aspect {aspect.term!r} [{aspect.start}, {aspect.end}) has no polarity; "
                f"the {scheme.name} scheme needs one"
            )
        for i in range(aspect.start, aspect.end):
            other = owner[i]
            if other is not None:
                raise TagError(
                    f"aspect spans overlap at token {i}: [{other.start}, {other.end}) "
                    f"{other.term!r} and [{aspect.start}, {aspect.end}) {aspect.term!r}"
                )
            owner[i] = aspect
        spans.append((aspect.start, aspect.end, aspect.polarity))
    return _encode(n_tokens, spans, scheme)


def _encode(n_tokens: int, spans: Iterable[tuple[int, int, Polarity | None]], scheme: TagScheme) -> list[str]:
    """Tags for non-overlapping ``(start, end, polarity)`` spans, ``O`` elsewhere."""
    tags = [OUTSIDE] * n_tokens
    for start, end, polarity in spans:
        tags[start] = scheme.tag(BEGIN, polarity)
        for i in range(start + 1, end):
            tags[i] = scheme.tag(INSIDE, polarity)
    return tags


def _tag_spans(tags: Sequence[str], scheme: TagScheme) -> list[tuple[int, int, list[Polarity | None]]]:
    """Segment tags into spans by the repair rule: ``(start, end, per-token polarities)``."""
    spans: list[tuple[int, int, list[Polarity | None]]] = []
    current: list[Polarity | None] | None = None  # polarities of the open span
    start = 0
    for i, tag in enumerate(tags):
        prefix, polarity = scheme.parse(tag)
        if prefix == INSIDE and current is not None:
            current.append(polarity)
            continue
        if current is not None:
            spans.append((start, i, current))
            current = None
        if prefix != OUTSIDE:  # B-*, or an I-* that continues nothing
            start, current = i, [polarity]
    if current is not None:
        spans.append((start, len(tags), current))
    return spans


def _span_polarity(polarities: Sequence[Polarity | None]) -> Polarity | None:
    """Majority polarity; among tied polarities, the one that occurs first in the span."""
    counts = Counter(polarities)
    best = max(counts.values())
    return next(p for p in polarities if counts[p] == best)


def _decode(tags: Sequence[str], scheme: TagScheme) -> list[tuple[int, int, Polarity | None]]:
    return [(s, e, _span_polarity(pols)) for s, e, pols in _tag_spans(tags, scheme)]


def repair_tags(tags: Sequence[str], scheme: TagScheme | str = JMASA) -> list[str]:
    """Turn any tag sequence into a valid one, deterministically.

    The rule:

    1. A span starts at a ``B-*`` tag, or at an ``I-*`` tag that continues no span (at
       position 0 or after ``O``); such an ``I-*`` becomes ``B-*``.
    2. ``I-*`` tags right after a span's token continue that span, whatever their polarity.
       A ``B-*`` always starts a new span, even directly after another.
    3. (JMASA) A span's polarity is the majority polarity over its tokens; on a tie, the tied
       polarity that occurs first in the span wins (the first token's, when it is tied).
       Every token of the span then carries that polarity.

    Examples (JMASA): ``I-POS I-POS`` -> ``B-POS I-POS``; ``B-POS I-NEG I-NEG`` ->
    ``B-NEG I-NEG I-NEG``; ``B-NEG I-POS`` -> ``B-NEG I-NEG``; ``O I-NEU`` -> ``O B-NEU``.
    A valid sequence is returned unchanged. Unknown tags raise :class:`TagError`.
    """
    scheme = get_scheme(scheme)
    return _encode(len(tags), _decode(tags, scheme), scheme)


def tags_to_aspects(
    tokens: Sequence[str],
    tags: Sequence[str],
    scheme: TagScheme | str = JMASA,
    scores: Sequence[float] | None = None,
) -> list[Aspect]:
    """Decode per-token tags into aspects (after :func:`repair_tags`), in token order.

    ``term`` is the span's tokens joined by spaces; ``polarity`` is ``None`` in MATE. With
    per-token ``scores`` (e.g. the probability of each predicted tag), an aspect's ``score``
    is the mean over its tokens.
    """
    scheme = get_scheme(scheme)
    if len(tags) != len(tokens):
        raise TagError(f"{len(tags)} tags for {len(tokens)} tokens; need one tag per token")
    if scores is not None and len(scores) != len(tokens):
        raise TagError(f"{len(scores)} scores for {len(tokens)} tokens; need one per token")
    aspects = []
    for start, end, polarity in _decode(tags, scheme):
        score = None
        if scores is not None:
            score = float(sum(float(s) for s in scores[start:end]) / (end - start))
        aspects.append(Aspect(start, end, term=" ".join(tokens[start:end]), polarity=polarity, score=score))
    return aspects


def convert_scheme(tags: Sequence[str], src: TagScheme | str, dst: TagScheme | str) -> list[str]:
    """Re-tag a sequence in another scheme (the input is repaired first).

    JMASA -> MATE drops the polarity. MATE -> JMASA is impossible (no polarity to add) and
    raises :class:`TagError`. ``src == dst`` returns the repaired sequence.
    """
    src, dst = get_scheme(src), get_scheme(dst)
    if dst.with_polarity and not src.with_polarity:
        raise TagError(f"cannot convert {src.name} tags to {dst.name}: {src.name} tags carry no polarity")
    return _encode(len(tags), _decode(tags, src), dst)


# -- label ids ---------------------------------------------------------------------------
def tags_to_ids(tags: Sequence[str], scheme: TagScheme | str = JMASA) -> list[int]:
    scheme = get_scheme(scheme)
    for tag in tags:
        scheme.parse(tag)  # raises on an unknown tag
    return [scheme._ids[t] for t in tags]


def ids_to_tags(ids: Iterable[int], scheme: TagScheme | str = JMASA) -> list[str]:
    """Label ids (ints, numpy or 0-d torch integers) to tags; an id out of range raises."""
    scheme = get_scheme(scheme)
    out = []
    for raw in ids:
        i = int(raw)
        if not 0 <= i < scheme.num_labels:
            raise TagError(f"label id {i} out of range for the {scheme.name} scheme ({scheme.num_labels} labels)")
        out.append(scheme.labels[i])
    return out


# -- subword alignment (first-subword labelling) -----------------------------------------
# ``word_ids`` is what a Hugging Face fast tokenizer returns from ``encoding.word_ids(i)``
# for words passed with ``is_split_into_words=True``: per subword position, the index of
# the word it came from, ``None`` for special and padding tokens. For a text pair, set the
# other sequence's positions to ``None`` first (its word indices restart at 0).
Label = TypeVar("Label", bound=Hashable)


def first_subword_index(word_ids: Sequence[int | None]) -> dict[int, int]:
    """Word index -> position of its first subword. Words cut by truncation are absent."""
    first: dict[int, int] = {}
    for position, word in enumerate(word_ids):
        if word is not None:
            first.setdefault(word, position)
    return first


def align_labels_to_subwords(
    word_ids: Sequence[int | None], word_labels: Sequence[int], ignore_index: int = -100
) -> list[int]:
    """Per-subword labels: the word's label on its first subword, ``ignore_index`` elsewhere.

    Later subwords of a word, special tokens and padding get ``ignore_index`` so the loss
    skips them. Raises :class:`TagError` if a word index has no label.
    """
    out = [ignore_index] * len(word_ids)
    for word, position in first_subword_index(word_ids).items():
        if word >= len(word_labels):
            raise TagError(
                f"subword {position} belongs to word {word} but only {len(word_labels)} word labels were given"
            )
        out[position] = word_labels[word]
    return out


def subword_to_word_predictions(
    word_ids: Sequence[int | None],
    subword_preds: Sequence[Label],
    n_words: int,
    fill: Label = "O",  # type: ignore[assignment]  # "O" is a Label
) -> list[Label]:
    """Per-word predictions: each word takes its first subword's prediction.

    Words dropped by truncation get ``fill`` (``"O"`` for tag strings; pass ``fill=0`` for
    label ids). ``subword_preds`` is aligned with ``word_ids`` (same length).
    """
    if len(subword_preds) != len(word_ids):
        raise TagError(
            f"{len(subword_preds)} subword predictions for {len(word_ids)} word ids; they must "
            "be aligned position by position"
        )
    out = [fill] * n_words
    for word, position in first_subword_index(word_ids).items():
        if word >= n_words:
            raise TagError(f"subword {position} belongs to word {word} but n_words={n_words}")
        out[word] = subword_preds[position]
    return out
