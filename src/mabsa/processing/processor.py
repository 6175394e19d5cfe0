"""Processor: turns :class:`~mabsa.data.Post` s into model features and batches (HF style).

One processor serves every task:

* **jmasa / mate** (sequence labelling): one feature per post, built from
  ``post.extraction_input()`` (no gold aspects, no per-aspect texts). Labels are per *word*
  (``Post.tokens``); the model reads the hidden state of each word's first subword.
* **masc** (aspect given): one feature per (post, aspect). The aspect is marked in the
  sentence and its subword positions are passed to the model.

An optional second segment holds *image-derived text* (the image's stand-in on this machine:
see ``docs/engine.md``). Sources and who may read them (leakage rule, ``DEVELOPERS.md``):

=========================  ==========  ===================================================
source                     kind        text
=========================  ==========  ===================================================
``caption``                per-image   ``Post.caption``
``faces``                  per-image   ``mabsa.perception.describe_faces(Post.faces)``
``aspect_face_description`` per-aspect ``Post.aspect_face_description`` (names gold aspects)
``rationale``              per-aspect  ``Aspect.rationale`` of the given aspect
=========================  ==========  ===================================================

Per-aspect sources are refused for jmasa/mate (:class:`LeakageError`).

Truncation keeps whole words: the second segment is cut first, then the post's last words.
Words that do not fit are reported (``Feature.truncated``) and predicted ``O``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import torch

from mabsa.data.records import Aspect, Polarity, Post
from mabsa.errors import MabsaError
from mabsa.processing.alignment import (
    WORD_ALIGNMENTS,
    detect_word_alignment,
    subwords_per_word,
)
from mabsa.processing.errors import InputError, LeakageError
from mabsa.processing.image_text import IMAGE_TEXT_SOURCES
from mabsa.tagging import get_scheme, spans_to_tags, tags_to_ids

TASKS = ("jmasa", "mate", "masc")
EXTRACTION_TASKS = ("jmasa", "mate")
POLARITIES = (Polarity.POS, Polarity.NEU, Polarity.NEG)
PROCESSOR_FILE = "processor_config.json"
P = TypeVar("P", bound="Processor")


@dataclass
class Feature:
    """Model input for one post (extraction) or one (post, aspect) pair (masc)."""

    input_ids: list[int]
    token_type_ids: list[int]
    post_index: int
    n_words: int  # words of the post
    word_positions: list[int]  # first-subword position of each kept word (a prefix of words)
    labels: list[int] | None = None  # per kept word (extraction) or [polarity id] (masc)
    aspect_index: int | None = None  # masc: index into post.aspects
    aspect_positions: list[int] = field(default_factory=list)  # masc: subwords of the aspect
    # What the model may read besides the tensors: the post as an extractor sees it
    # (``extraction_input()``) or, for masc, the post and the given aspect without its gold
    # polarity.
    post: Post | None = None
    aspect: Aspect | None = None

    #: words of the post that did not fit (a word the tokenizer gives no subword - a control
    #: character, FITE's empty aspect markers - is never counted as cut)
    cut_words: int = 0

    @property
    def truncated(self) -> bool:
        return self.cut_words > 0


class Processor:
    def __init__(
        self,
        tokenizer: Any,
        task: str,
        max_length: int = 128,
        image_text: Sequence[str] = (),
        aspect_markers: Sequence[str] = ("<", ">"),
        word_alignment: str | None = None,
    ):
        if task not in TASKS:
            raise MabsaError(f"unknown task {task!r}: use one of {', '.join(TASKS)}")
        unknown = [s for s in image_text if s not in IMAGE_TEXT_SOURCES]
        if unknown:
            raise MabsaError(f"unknown image_text source(s) {unknown}: use " + ", ".join(IMAGE_TEXT_SOURCES))
        leaking = [s for s in image_text if IMAGE_TEXT_SOURCES[s][0]]
        if task in EXTRACTION_TASKS and leaking:
            raise LeakageError(
                f"image_text source(s) {leaking} were built with the gold aspects and name them; "
                f"a {task} term extractor may read only per-image texts "
                f"({', '.join(k for k, v in IMAGE_TEXT_SOURCES.items() if not v[0])})"
            )
        if word_alignment is not None and word_alignment not in WORD_ALIGNMENTS:
            raise MabsaError(f"unknown word_alignment {word_alignment!r}: use one of {', '.join(WORD_ALIGNMENTS)}")
        self.tokenizer = tokenizer
        # None: read off the tokenizer (new models); a saved processor states its own
        self.word_alignment = word_alignment or detect_word_alignment(tokenizer)
        self.task = task
        self.max_length = int(max_length)
        self.image_text = tuple(image_text)
        self.aspect_markers = tuple(aspect_markers)
        self.scheme = get_scheme(task) if task in EXTRACTION_TASKS else None
        self._n_special = tokenizer.num_special_tokens_to_add(pair=True)
        self._template = SpecialTemplate(tokenizer)
        if self.max_length < self._n_special + 2:
            raise MabsaError(f"max_length={max_length} is too small")

    @property
    def reads_image_texts(self) -> bool:
        """Whether features include per-image texts (so prediction on a raw image perceives it)."""
        return bool(self.image_text)

    # -- labels --------------------------------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        if self.scheme is not None:
            return self.scheme.labels
        return tuple(p.value for p in POLARITIES)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    # -- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "max_length": self.max_length,
            "image_text": list(self.image_text),
            "aspect_markers": list(self.aspect_markers),
            "word_alignment": self.word_alignment,
            "labels": list(self.labels),
        }

    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        self.tokenizer.save_pretrained(str(directory / "tokenizer"))
        (directory / PROCESSOR_FILE).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_pretrained(cls: type[P], directory: str | Path) -> P:
        from transformers import AutoTokenizer

        directory = Path(directory)
        cfg = json.loads((directory / PROCESSOR_FILE).read_text())
        tok = AutoTokenizer.from_pretrained(str(directory / "tokenizer"), local_files_only=True)
        cfg.pop("labels", None)
        # processors saved before word alignment was a setting all split on word boundaries
        cfg.setdefault("word_alignment", "split")
        return cls(tok, **cfg)

    # -- encoding ------------------------------------------------------------------------
    def image_text_for(self, post: Post, aspect: Aspect | None = None) -> str:
        texts = [IMAGE_TEXT_SOURCES[s][1](post, aspect) for s in self.image_text]
        return " ".join(t.strip() for t in texts if t and t.strip())

    def encode(self, posts: Sequence[Post], with_labels: bool = True) -> list[Feature]:
        """Features for ``posts`` (indices into ``posts`` are kept in each feature)."""
        for i, post in enumerate(posts):
            if not post.tokens:
                raise InputError(f"post {post.id!r} (#{i}) has no tokens: empty text")
        if self.task in EXTRACTION_TASKS:
            return self._encode_extraction(posts, with_labels)
        return self._encode_masc(posts, with_labels)

    def _encode_extraction(self, posts: Sequence[Post], with_labels: bool) -> list[Feature]:
        inputs = [p.extraction_input() for p in posts]  # leakage rule: never the gold aspects
        firsts = [list(p.tokens) for p in inputs]
        seconds = [self.image_text_for(p).split() for p in inputs]
        features = self._build(firsts, seconds, [None] * len(posts))
        for feat, post, visible in zip(features, posts, inputs):
            feat.post = visible
            if with_labels:
                assert self.scheme is not None  # extraction tasks have one
                tags = spans_to_tags(len(post.tokens), post.aspects, self.scheme)
                feat.labels = tags_to_ids(tags, self.scheme)[: len(feat.word_positions)]
        return features

    def _encode_masc(self, posts: Sequence[Post], with_labels: bool) -> list[Feature]:
        firsts, seconds, spans, index = [], [], [], []
        left, right = self.aspect_markers
        for i, post in enumerate(posts):
            if not post.aspects:
                continue
            for j, a in enumerate(post.aspects):
                if with_labels and a.polarity is None:
                    raise InputError(f"post {post.id!r}: aspect {a.term!r} has no gold polarity")
                words = list(post.tokens)
                words = words[: a.start] + [left] + words[a.start : a.end] + [right] + words[a.end :]
                firsts.append(words)
                seconds.append(self.image_text_for(post, a).split())
                spans.append((a.start, a.end + 2))  # marked span, markers included
                index.append((i, j))
        features = self._build(firsts, seconds, spans)
        for feat, (i, j) in zip(features, index):
            feat.post_index, feat.aspect_index = i, j
            feat.post = posts[i].with_aspects(())
            feat.aspect = replace(posts[i].aspects[j], polarity=None)
            if with_labels:
                feat.labels = [POLARITIES.index(posts[i].aspects[j].polarity)]
        return features

    def _build(
        self,
        firsts: list[list[str]],
        seconds: list[list[str]],
        spans: Sequence[tuple[int, int] | None],
    ) -> list[Feature]:
        """One tokenizer pass over all words, then whole-word truncation and the model's
        special-token template (``[CLS] A [SEP] B [SEP]``, ``<s> A </s></s> B </s>``, ...)."""
        flat = firsts + [s for s in seconds if s]
        # per sequence: per word, its subword ids
        words_ids = subwords_per_word(self.tokenizer, flat, self.word_alignment)
        budget = self.max_length - self._n_special
        features = []
        second_index = iter(range(len(firsts), len(flat)))
        for k, (first, second) in enumerate(zip(firsts, seconds)):
            first_words = words_ids[k]
            second_words = words_ids[next(second_index)] if second else []
            n_first = max(1, _fit([len(w) for w in first_words], budget))
            span = spans[k]
            if span is not None and n_first < span[1]:
                # masc: the aspect lies past the window; keep it, cut subwords at the end
                n_first = len(first)
            a_ids = [t for w in first_words[:n_first] for t in w][:budget]
            n_second = _fit([len(w) for w in second_words], budget - len(a_ids))
            b_ids = [t for w in second_words[:n_second] for t in w]
            ids, types, a_offset = self._template.assemble(a_ids, b_ids or None)
            positions, cursor = [], a_offset
            for w in first_words[:n_first]:
                if cursor >= a_offset + len(a_ids):
                    break
                positions.append(cursor)
                cursor += len(w)
            cut_words = sum(1 for w in first_words[len(positions) :] if w)
            aspect_positions: list[int] = []
            if span is not None:
                s, e = span
                start = a_offset + sum(len(w) for w in first_words[:s])
                end = start + sum(len(w) for w in first_words[s:e])
                aspect_positions = list(range(start, min(end, a_offset + len(a_ids))))
            features.append(
                Feature(
                    input_ids=ids,
                    token_type_ids=types,
                    post_index=k,
                    n_words=len(first),
                    word_positions=positions,
                    aspect_positions=aspect_positions,
                    cut_words=cut_words,
                )
            )
        return features

    # -- batching ------------------------------------------------------------------------
    def collate(self, features: Sequence[Feature]) -> dict[str, Any]:
        """Pad a list of features into tensors; keeps the features under ``"features"``."""
        pad = self.tokenizer.pad_token_id or 0
        B = len(features)
        T = max(len(f.input_ids) for f in features)
        input_ids = torch.full((B, T), pad, dtype=torch.long)
        token_type_ids = torch.zeros((B, T), dtype=torch.long)
        attention_mask = torch.zeros((B, T), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f.input_ids)
            input_ids[i, :n] = torch.tensor(f.input_ids)
            token_type_ids[i, :n] = torch.tensor(f.token_type_ids)
            attention_mask[i, :n] = 1
        batch: dict[str, Any] = {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "attention_mask": attention_mask,
        }
        if self.task in EXTRACTION_TASKS:
            W = max(max(len(f.word_positions) for f in features), 1)
            word_positions = torch.zeros((B, W), dtype=torch.long)
            word_mask = torch.zeros((B, W), dtype=torch.bool)
            labels = torch.zeros((B, W), dtype=torch.long)
            for i, f in enumerate(features):
                n = len(f.word_positions)
                word_positions[i, :n] = torch.tensor(f.word_positions, dtype=torch.long)
                word_mask[i, :n] = True
                if f.labels is not None:
                    labels[i, :n] = torch.tensor(f.labels, dtype=torch.long)
            batch.update(word_positions=word_positions, word_mask=word_mask)
        else:
            S = max(len(f.aspect_positions) for f in features)
            aspect_positions = torch.zeros((B, S), dtype=torch.long)
            aspect_mask = torch.zeros((B, S), dtype=torch.bool)
            labels = torch.zeros((B,), dtype=torch.long)
            for i, f in enumerate(features):
                n = len(f.aspect_positions)
                aspect_positions[i, :n] = torch.tensor(f.aspect_positions, dtype=torch.long)
                aspect_mask[i, :n] = True
                if f.labels is not None:
                    labels[i] = f.labels[0]
            batch.update(aspect_positions=aspect_positions, aspect_mask=aspect_mask)
        if all(f.labels is not None for f in features):
            batch["labels"] = labels
        batch["features"] = list(features)
        return batch


def _fit(counts: Sequence[int], budget: int) -> int:
    """How many leading words fit in ``budget`` subwords."""
    total = 0
    for i, c in enumerate(counts):
        total += c
        if total > budget:
            return i
    return len(counts)


class SpecialTemplate:
    """Where a tokenizer puts its special tokens around one or two segments, read off once
    from the tokenizer itself (so any BERT/MPNet/RoBERTa-style model works)."""

    def __init__(self, tokenizer: Any):
        self.single = self._read(tokenizer, tokenizer([["a"]], is_split_into_words=True), 0)
        self.pair = self._read(tokenizer, tokenizer([["a"]], [["b"]], is_split_into_words=True), 0)

    @staticmethod
    def _read(tokenizer: Any, enc: Any, row: int) -> list[tuple[str, int, int]]:
        ids = enc["input_ids"][row]
        types = enc["token_type_ids"][row] if "token_type_ids" in enc else [0] * len(ids)
        slots: list[tuple[str, int, int]] = []
        for token_id, type_id, seq in zip(ids, types, enc.sequence_ids(row)):
            if seq is None:
                slots.append(("special", token_id, type_id))
            else:
                slot = ("A", -1, type_id) if seq == 0 else ("B", -1, type_id)
                if not slots or slots[-1][0] != slot[0]:
                    slots.append(slot)
        return slots

    def assemble(self, a: list[int], b: list[int] | None) -> tuple[list[int], list[int], int]:
        """(input ids, token type ids, position of the first token of ``a``)."""
        ids: list[int] = []
        types: list[int] = []
        a_offset = 0
        for kind, token_id, type_id in self.single if b is None else self.pair:
            if kind == "special":
                ids.append(token_id)
                types.append(type_id)
                continue
            segment = a if kind == "A" else (b or [])
            if kind == "A":
                a_offset = len(ids)
            ids.extend(segment)
            types.extend([type_id] * len(segment))
        return ids, types, a_offset
