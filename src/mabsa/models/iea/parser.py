"""Generated text <-> aspects: the target sequence the generator learns and a robust parser.

Target: ``(Chuck Bass, positive); (# MCM, neutral)`` (mate: ``(Chuck Bass); (# MCM)``), or
``none``; for MASC (one given aspect per instruction) a single polarity word. The parser reads
pairs wherever they stand in the output, accepts polarity spellings (pos/positive/Positive...),
and maps each term back to token spans of the post: exact token match, then a normalised match
(case, ``#``/``@``, punctuation), then a fuzzy match (difflib ratio >= 0.8 over windows of
similar length). Output that holds no readable pair and is not
"none" is *unparseable*: no prediction for that post, and the caller logs and counts it.

One polarity per span, as the field's span metric (AoM's) counts predictions: a span the
generator writes twice keeps the polarity it was given **first**; a JMASA pair without a
polarity is dropped (and counted in ``Parsed.unmatched``).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence, Set
from dataclasses import dataclass

from mabsa.data.formats import tokenize
from mabsa.data.records import Aspect, Polarity

POLARITY_WORDS = {
    "positive": Polarity.POS,
    "pos": Polarity.POS,
    "negative": Polarity.NEG,
    "neg": Polarity.NEG,
    "neutral": Polarity.NEU,
    "neu": Polarity.NEU,
}
POLARITY_NAMES = {Polarity.POS: "positive", Polarity.NEU: "neutral", Polarity.NEG: "negative"}
NONE_ANSWER = "none"
FUZZY_RATIO = 0.8

_PAIR = re.compile(r"\(\s*([^()]*?)\s*(?:,\s*([A-Za-z]+)\s*)?\)")
_LINE = re.compile(r"^\s*[-*\d.]*\s*(.+?)\s*[:=\-–]+\s*(positive|negative|neutral|pos|neg|neu)\b", re.I | re.M)


_POLARITY_WORD = re.compile(r"\b(" + "|".join(POLARITY_WORDS) + r")\b", re.I)


def parse_polarity(text: str) -> Polarity | None:
    """MASC answer: the first polarity word in ``text`` (``None``: unparseable)."""
    m = _POLARITY_WORD.search(text)
    return POLARITY_WORDS[m.group(1).lower()] if m else None


def format_target(aspects: Sequence[Aspect], with_polarity: bool = True) -> str:
    if not aspects:
        return NONE_ANSWER
    parts = []
    for a in sorted(aspects, key=lambda a: (a.start, a.end)):
        parts.append(f"({a.term}, {POLARITY_NAMES[a.polarity]})" if with_polarity and a.polarity else f"({a.term})")
    return "; ".join(parts)


@dataclass(frozen=True)
class Parsed:
    aspects: tuple[Aspect, ...]
    unparseable: bool = False
    unmatched: tuple[str, ...] = ()  # terms that are not in the post


def _norm(word: str) -> str:
    word = unicodedata.normalize("NFKC", word).lower()
    return re.sub(r"[^\w]", "", word)


def _pairs(text: str, with_polarity: bool) -> list[tuple[str, Polarity | None]]:
    out = []
    for term, pol in _PAIR.findall(text):
        polarity = POLARITY_WORDS.get(pol.lower()) if pol else None
        if pol and polarity is None:  # "(a, b)" whose second part is not a polarity
            term, polarity = f"{term}, {pol}", None
        if term.strip() and (polarity is not None or not with_polarity or not pol):
            out.append((term.strip(), polarity))
    if not out:
        out = [(t.strip().strip("\"'"), POLARITY_WORDS[p.lower()]) for t, p in _LINE.findall(text)]
    return out


def locate(tokens: Sequence[str], term: str, taken: Set[tuple[int, int]] = frozenset()) -> tuple[int, int] | None:
    """Token span of ``term`` in ``tokens``: exact, normalised, then fuzzy; an untaken span first."""
    words = tokenize(term)
    if not words:
        return None
    n = len(words)
    spans = [(i, i + n) for i in range(len(tokens) - n + 1)]
    for match in (
        lambda s: list(tokens[s[0] : s[1]]) == words,
        lambda s: [_norm(t) for t in tokens[s[0] : s[1]]] == [_norm(w) for w in words],
    ):
        hits = [s for s in spans if match(s)]
        free = [s for s in hits if s not in taken]
        if free or hits:
            return (free or hits)[0]
    target = "".join(_norm(w) for w in words)
    if not target:
        return None
    best, best_ratio = None, FUZZY_RATIO
    for size in {max(1, n - 1), n, n + 1}:
        for i in range(len(tokens) - size + 1):
            window = "".join(_norm(t) for t in tokens[i : i + size])
            if not window:
                continue
            ratio = difflib.SequenceMatcher(None, target, window).ratio()
            if ratio > best_ratio or (ratio == best_ratio and best is not None and size == n):
                best, best_ratio = (i, i + size), ratio
    if best is not None:  # trim edge tokens that carry no word (e.g. a trailing ':')
        s, e = best
        while s < e - 1 and not _norm(tokens[s]):
            s += 1
        while e > s + 1 and not _norm(tokens[e - 1]):
            e -= 1
        best = (s, e)
    return best


def parse_generation(
    text: str, tokens: Sequence[str], with_polarity: bool = True, score: float | None = None
) -> Parsed:
    """Aspects (spans over ``tokens``) read from generated ``text``."""
    clean = text.strip()
    pairs = _pairs(clean, with_polarity)
    if not pairs:
        is_none = _norm(clean.split("\n")[0]) in ("none", "noaspects", "nothing") or clean.lower().startswith(
            NONE_ANSWER
        )
        return Parsed((), unparseable=not is_none)
    aspects: list[Aspect] = []
    taken: set[tuple[int, int]] = set()
    unmatched = []
    for term, polarity in pairs:
        if with_polarity and polarity is None:
            unmatched.append(term)
            continue
        span = locate(tokens, term, taken)
        if span is None or span in taken or any(s < span[1] and span[0] < e for s, e in taken):
            if span is None:
                unmatched.append(term)
            continue
        taken.add(span)
        aspects.append(
            Aspect(
                span[0], span[1], " ".join(tokens[span[0] : span[1]]), polarity if with_polarity else None, score=score
            )
        )
    aspects.sort(key=lambda a: a.start)
    return Parsed(tuple(aspects), unmatched=tuple(unmatched))
