"""Constrained decoding: every answer it lets the generator write parses, and names only spans
of the post; every gold answer stays writable."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iea_support import tiny_tokenizer
from mabsa.data import load_dataset
from mabsa.models.iea.constrained import START, AnswerGrammar, ConstrainedDecoding
from mabsa.models.iea.parser import format_target, parse_generation, parse_polarity

POSTS = [p for p in load_dataset("twitter2015", "dev")[:60] if p.text.isascii()]
TOKENIZER = tiny_tokenizer()


def test_the_grammar_accepts_the_parsers_answers_and_nothing_else():
    g = AnswerGrammar(("Chuck", "Bass", "is", "everything", "#", "MCM"), "jmasa")
    assert g.accepts(" (Chuck Bass, positive); (# MCM, neutral)")
    assert g.accepts(" none")
    for bad in (
        " (Chuck Bass, positive);",  # unfinished
        " (Blair, positive)",  # not in the post
        " (Bass Chuck, positive)",  # not a run of the post's words
        " (Chuck Bass, great)",  # not a polarity
        " (Chuck Bass)",  # jmasa needs the polarity
        "(Chuck Bass, positive)",  # no leading space
        " none; (Chuck, positive)",
    ):
        assert not g.accepts(bad), bad
    assert AnswerGrammar(("a", "b"), "mate").accepts(" (a b); (a)")
    masc = AnswerGrammar(("a", "b"), "masc")
    assert masc.accepts(" neutral") and not masc.accepts(" none") and not masc.accepts(" neutral; (a)")


def walk(decoding: ConstrainedDecoding, rng: random.Random, steps: int) -> list[int]:
    """A random generator under the constraint: any allowed token, until EOS or ``steps``."""
    generated: list[int] = []
    for _ in range(steps):
        allowed = decoding.allowed(0, generated)
        token = rng.choice(allowed)
        generated.append(token)
        if token == TOKENIZER.eos_token_id:
            break
    return generated


@settings(max_examples=40, deadline=None)
@given(post=st.sampled_from(POSTS), task=st.sampled_from(["jmasa", "mate", "masc"]), seed=st.integers(0, 10**6))
def test_every_constrained_answer_parses_to_spans_of_the_post(post, task, seed):
    decoding = ConstrainedDecoding([AnswerGrammar(post.tokens, task)], TOKENIZER, prompt_length=0)
    generated = walk(decoding, random.Random(seed), steps=60)
    ended = generated[-1] == TOKENIZER.eos_token_id
    text = TOKENIZER.decode([t for t in generated if t != TOKENIZER.eos_token_id])
    if not ended:  # cut by the token budget: a prefix of a valid answer
        assert decoding.grammars[0].walk(START, text)
        return
    assert decoding.grammars[0].accepts(text), text
    if task == "masc":
        assert parse_polarity(text) is not None
        return
    parsed = parse_generation(text.strip(), post.tokens, with_polarity=task == "jmasa")
    assert not parsed.unparseable and not parsed.unmatched, text
    for a in parsed.aspects:
        assert a.term == " ".join(post.tokens[a.start : a.end])


@pytest.mark.parametrize("task", ["jmasa", "mate"])
def test_every_gold_answer_stays_writable_token_by_token(task):
    """The gold target, tokenized as in training, is allowed at every step, and may end."""
    checked = 0
    for post in POSTS:
        if any(a.end - a.start > 8 for a in post.aspects):
            continue
        target = " " + format_target(post.aspects, with_polarity=task == "jmasa")
        ids = TOKENIZER(target, add_special_tokens=False)["input_ids"]
        decoding = ConstrainedDecoding([AnswerGrammar(post.tokens, task)], TOKENIZER, prompt_length=0)
        for k, token in enumerate(ids):
            assert token in decoding.allowed(0, ids[:k]), (target, k)
        assert TOKENIZER.eos_token_id in decoding.allowed(0, ids)
        checked += 1
    assert checked >= 20


def test_the_hugging_face_hook_reads_the_tokens_after_the_prompt():
    post = POSTS[0]
    decoding = ConstrainedDecoding([AnswerGrammar(post.tokens, "jmasa")], TOKENIZER, prompt_length=3)
    prompt = torch.tensor([5, 6, 7])
    assert sorted(decoding(0, prompt)) == sorted(decoding.allowed(0, []))
    finished = torch.tensor([5, 6, 7, TOKENIZER.eos_token_id, TOKENIZER.pad_token_id])
    assert decoding(0, finished) == [TOKENIZER.pad_token_id]


def test_no_span_holds_a_bracket():
    """The parser reads a pair as the text between "(" and ")": a post's bracket token cannot be
    part of a span (hypothesis found "(Andy and Novak (, negative)" allowed and unparseable)."""
    tokens = "Andy and Novak ( finally ) play".split()
    grammar = AnswerGrammar(tokens, "jmasa")
    assert not grammar.accepts(" (Andy and Novak (, negative)")
    assert not grammar.accepts(" (( finally ), positive)")
    assert grammar.accepts(" (Andy and Novak, negative); (finally, positive)")
    assert parse_generation("(Andy and Novak, negative); (finally, positive)", tokens).aspects[1].term == "finally"
