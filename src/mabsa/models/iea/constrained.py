"""Constrained decoding: the generator can only write answers the parser reads, over the post.

For one post the answers are (see :mod:`mabsa.models.iea.parser`)::

    jmasa:  " none"  or  " (SPAN, POLARITY); (SPAN, POLARITY); ..."
    mate:   " none"  or  " (SPAN); (SPAN); ..."
    masc:   " positive" | " neutral" | " negative"

where SPAN is a run of the post's tokens joined by single spaces (as the targets write a term)
of at most :data:`MAX_SPAN_WORDS` words, none of them holding a bracket (the parser's
delimiter). :class:`AnswerGrammar` recognises these strings one character at a time;
:class:`ConstrainedDecoding` turns it into the token mask of Hugging Face's
``generate(prefix_allowed_tokens_fn=...)``: at each step only the tokens whose text keeps the
answer a prefix of a valid one (or EOS once it is complete) may be chosen. A token may cross the
grammar's joints (``");"``, ``" (#"``): the check walks its characters.

A span is any run of post words, so the generator can still choose wrong terms, but never one
that is not in the post, a malformed pair or a fourth polarity.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from mabsa.models.iea.parser import NONE_ANSWER, POLARITY_NAMES

#: Longest span a constrained answer may name (the benchmark gold aspects have at most 7 words).
MAX_SPAN_WORDS = 8
POLARITIES = tuple(POLARITY_NAMES.values())  # positive, neutral, negative
PAIR_SEPARATOR = "; "

# A grammar state is (phase, text read in this phase):
#   "lead"  before the answer's leading space
#   "first" the first item (or "none"), "next" a later item: text = the item read so far
#   "sep"   between items: text = the part of "; " read so far
State = tuple[str, str]
START: frozenset[State] = frozenset({("lead", "")})


class AnswerGrammar:
    """The valid answers for one post and ``task``, as a character-level recogniser."""

    def __init__(self, tokens: Sequence[str], task: str, max_span_words: int = MAX_SPAN_WORDS):
        if task == "masc":
            self.items = frozenset(POLARITIES)
            self.many = self.none = False
        else:
            # no span holds a bracket: the parser reads a pair as the text between "(" and ")"
            usable = [not ("(" in t or ")" in t) for t in tokens]
            spans = {
                " ".join(tokens[i:j])
                for i in range(len(tokens))
                for j in range(i + 1, min(len(tokens), i + max_span_words) + 1)
                if all(usable[i:j])
            }
            if task == "jmasa":
                self.items = frozenset(f"({s}, {p})" for s in spans for p in POLARITIES)
            else:
                self.items = frozenset(f"({s})" for s in spans)
            self.many = self.none = True
        self.prefixes = frozenset(item[:k] for item in self.items for k in range(len(item) + 1))

    def step(self, states: Iterable[State], char: str) -> frozenset[State]:
        """The states after reading ``char`` (empty: ``char`` cannot come next)."""
        out = set()
        for phase, text in states:
            if phase == "lead":
                if char == " ":
                    out.add(("first", ""))
            elif phase == "sep":
                read = text + char
                if PAIR_SEPARATOR.startswith(read):
                    out.add(("next", "") if read == PAIR_SEPARATOR else ("sep", read))
            else:
                read = text + char
                if read in self.prefixes or (phase == "first" and self.none and NONE_ANSWER.startswith(read)):
                    out.add((phase, read))
                if self.many and text in self.items and char == PAIR_SEPARATOR[0]:
                    out.add(("sep", char))
        return frozenset(out)

    def walk(self, states: frozenset[State], text: str) -> frozenset[State]:
        for char in text:
            states = self.step(states, char)
            if not states:
                break
        return states

    def complete(self, states: Iterable[State]) -> bool:
        """Whether the answer read so far may end here."""
        return any(
            (phase in ("first", "next") and text in self.items)
            or (phase == "first" and self.none and text == NONE_ANSWER)
            for phase, text in states
        )

    def accepts(self, text: str) -> bool:
        return self.complete(self.walk(START, text))


class TokenIndex:
    """Each token's text, indexed by its first two characters (one-character tokens by their
    one), so a step tries only the tokens that can start a valid continuation."""

    def __init__(self, tokenizer: Any):
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        self.texts: list[str] = texts
        self.by_start: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            if text and "\ufffd" not in text:  # a byte piece of a character: never a whole answer part
                self.by_start.setdefault(text[:2], []).append(i)


# weak keys: an index lives as long as its tokenizer (an id() key could be reused by another)
_INDEXES: weakref.WeakKeyDictionary[Any, TokenIndex] = weakref.WeakKeyDictionary()


def token_index(tokenizer: Any) -> TokenIndex:
    """One index per tokenizer object (building it decodes the whole vocabulary once)."""
    if tokenizer not in _INDEXES:
        _INDEXES[tokenizer] = TokenIndex(tokenizer)
    return _INDEXES[tokenizer]


class ConstrainedDecoding:
    """``prefix_allowed_tokens_fn`` for one batch of generation: row ``b`` may only continue its
    answer within ``grammars[b]``. ``prompt_length``: the (left-padded) prompt width, after which
    the generated tokens start."""

    def __init__(self, grammars: Sequence[AnswerGrammar], tokenizer: Any, prompt_length: int):
        self.grammars = list(grammars)
        self.index = token_index(tokenizer)
        self.eos, self.pad = tokenizer.eos_token_id, tokenizer.pad_token_id
        self.prompt_length = prompt_length
        self._states: dict[int, tuple[int, frozenset[State]]] = {}  # row -> (tokens read, states)

    def states(self, row: int, generated: list[int]) -> frozenset[State]:
        grammar = self.grammars[row]
        done, states = self._states.get(row, (0, START))
        if done > len(generated):  # a new generation with this object: start over
            done, states = 0, START
        for token in generated[done:]:
            states = grammar.walk(states, self.index.texts[token])
        self._states[row] = (len(generated), states)
        return states

    def allowed(self, row: int, generated: list[int]) -> list[int]:
        if self.eos in generated:  # finished: HF keeps padding the row
            return [self.pad if self.pad is not None else self.eos]
        grammar = self.grammars[row]
        states = self.states(row, generated)
        starts = self._next_chars(grammar, states)
        starts |= {a + b for a in list(starts) for b in self._next_chars(grammar, grammar.step(states, a))}
        allowed = [
            token
            for start in starts
            for token in self.index.by_start.get(start, ())
            if grammar.walk(states, self.index.texts[token])
        ]
        if grammar.complete(states) or not allowed:  # nothing fits (cannot happen): let it end
            allowed.append(self.eos)
        return allowed

    @staticmethod
    def _next_chars(grammar: AnswerGrammar, states: frozenset[State]) -> set[str]:
        candidates = {" ", PAIR_SEPARATOR[0], *NONE_ANSWER}
        for phase, text in states:
            if phase in ("first", "next"):
                candidates |= {item[len(text)] for item in _items_after(grammar, text)}
        return {c for c in candidates if grammar.step(states, c)}

    def __call__(self, row: int, input_ids: torch.Tensor) -> list[int]:
        return self.allowed(row, input_ids[self.prompt_length :].tolist())


def _items_after(grammar: AnswerGrammar, text: str) -> list[str]:
    """Items that continue ``text`` by at least one character."""
    return [item for item in grammar.items if len(item) > len(text) and item.startswith(text)]
