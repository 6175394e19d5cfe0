"""Word alignment: the subword ids of each word of a pre-split text.

Two ways, chosen once per tokenizer (:func:`detect_word_alignment`) and saved with the
processor so a checkpoint always aligns as it was trained:

* ``"split"``: ``tokenizer(words, is_split_into_words=True)`` and its ``word_ids``. Right for
  WordPiece (BERT, MiniLM, MPNet) and byte-level BPE, whose pre-tokenizers split on spaces
  anyway.
* ``"offsets"``: tokenize the words joined by single spaces with ``return_offsets_mapping`` and
  give each subword to the word its last character falls in. SentencePiece tokenizers such as
  Gemma's glue pre-split words together (``["Chuck", "Bass"]`` becomes ``Chuck`` + ``Bass``,
  not ``Chuck`` + ``▁Bass``), so the model would read text it never saw in pre-training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

WORD_ALIGNMENTS = ("split", "offsets")


def detect_word_alignment(tokenizer: Any) -> str:
    """``"split"`` when pre-split words tokenize as in running text, else ``"offsets"``."""
    probe = ["hello", "world"]
    split = tokenizer([probe], is_split_into_words=True, add_special_tokens=False)["input_ids"][0]
    joined = tokenizer([" ".join(probe)], add_special_tokens=False)["input_ids"][0]
    return "split" if split == joined else "offsets"


def subwords_per_word(tokenizer: Any, sequences: Sequence[Sequence[str]], alignment: str) -> list[list[list[int]]]:
    """For each sequence, for each of its words, the ids of its subwords (no special tokens)."""
    if not sequences:
        return []
    if alignment == "split":
        enc = tokenizer([list(s) for s in sequences], is_split_into_words=True, add_special_tokens=False)
        out = []
        for k, words in enumerate(sequences):
            per_word: list[list[int]] = [[] for _ in words]
            for token_id, w in zip(enc["input_ids"][k], enc.word_ids(k)):
                if w is not None:
                    per_word[w].append(token_id)
            out.append(per_word)
        return out
    if alignment != "offsets":
        raise ValueError(f"unknown word alignment {alignment!r}: use one of {WORD_ALIGNMENTS}")
    texts, owners = [], []
    for words in sequences:
        owner: list[int | None] = []  # character -> word index (None for the joining spaces)
        for w, word in enumerate(words):
            if w:
                owner.append(None)
            owner.extend([w] * len(word))
        texts.append(" ".join(words))
        owners.append(owner)
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for words, ids, offsets, owner in zip(sequences, enc["input_ids"], enc["offset_mapping"], owners):
        per_word = [[] for _ in words]
        for token_id, (start, end) in zip(ids, offsets):
            # a leading-space subword ("▁Bass", offsets over " Bass") belongs to the word its
            # last character is in; a subword of spaces only belongs to the next word
            w = next((owner[c] for c in range(end - 1, start - 1, -1) if owner[c] is not None), None)
            if w is None:
                w = next((owner[c] for c in range(end, len(owner)) if owner[c] is not None), None)
            if w is not None:
                per_word[w].append(token_id)
        out.append(per_word)
    return out
