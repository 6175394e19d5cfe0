"""Generated text -> aspect spans, on messy generations."""

from mabsa.data.records import Aspect, Polarity
from mabsa.models.iea.parser import format_target, locate, parse_generation

TOKENS = ("RT", "@", "ltsChuckBass", ":", "Chuck", "Bass", "is", "everything", "#", "MCM")


def spans(parsed):
    return [(a.start, a.end, a.polarity.value if a.polarity else None) for a in parsed.aspects]


def test_target_round_trip():
    gold = [Aspect(8, 10, "# MCM", Polarity.NEU), Aspect(4, 6, "Chuck Bass", Polarity.POS)]
    text = format_target(gold)
    assert text == "(Chuck Bass, positive); (# MCM, neutral)"
    assert spans(parse_generation(text, TOKENS)) == [(4, 6, "POS"), (8, 10, "NEU")]
    assert format_target([]) == "none"
    assert format_target(gold, with_polarity=False) == "(Chuck Bass); (# MCM)"
    assert spans(parse_generation("(Chuck Bass); (# MCM)", TOKENS, with_polarity=False)) == [
        (4, 6, None),
        (8, 10, None),
    ]


def test_messy_generations():
    cases = {
        "(chuck bass, Positive);(#MCM , NEU) trailing junk": [(4, 6, "POS"), (8, 10, "NEU")],
        "Sure! The answer is (Chuck Bass, pos)": [(4, 6, "POS")],
        "(Chuck Bas, positive)": [(4, 6, "POS")],  # fuzzy: a letter dropped
        "(Chuck  Bass ,negative); (Chuck Bass, positive)": [(4, 6, "NEG")],  # same span once
        "Chuck Bass: positive\nMCM - neutral": [(4, 6, "POS"), (9, 10, "NEU")],
        "(Blair Waldorf, positive)": [],  # not in the post: no prediction
        "(Chuck Bass, great)": [],  # no polarity
        "(Chuck Bass, positive); (# MC": [(4, 6, "POS")],  # cut off by max_new_tokens
    }
    for text, expected in cases.items():
        assert spans(parse_generation(text, TOKENS)) == expected, text


def test_none_and_unparseable():
    assert parse_generation("none", TOKENS).aspects == () and not parse_generation("none", TOKENS).unparseable
    assert not parse_generation("None.", TOKENS).unparseable
    for junk in ("tetin,nhe ever", "", "positive"):
        p = parse_generation(junk, TOKENS)
        assert p.aspects == () and p.unparseable
    assert parse_generation("(Blair, positive)", TOKENS).unmatched == ("Blair",)


def test_locate_prefers_exact_then_untaken_spans():
    tokens = ("a", "dog", "and", "a", "dog")
    assert locate(tokens, "dog") == (1, 2)
    assert locate(tokens, "dog", {(1, 2)}) == (4, 5)
    assert locate(tokens, "DOG") == (1, 2)
    assert locate(tokens, "cat") is None
    assert locate(("I", "love", "#", "NewYork"), "New York") == (2, 4) or locate(
        ("I", "love", "#", "NewYork"), "New York"
    ) == (3, 4)


def test_scores_are_attached():
    p = parse_generation("(Chuck Bass, positive)", TOKENS, score=0.7)
    assert p.aspects[0].score == 0.7 and p.aspects[0].term == "Chuck Bass"


def test_masc_answer_polarity_word():
    from mabsa.models.iea.parser import parse_polarity

    cases = {
        " positive": Polarity.POS,
        "Negative.": Polarity.NEG,
        "The sentiment is neu": Polarity.NEU,
        "neutral, maybe positive": Polarity.NEU,
        "I cannot tell": None,
        "positively": None,
        "": None,
    }
    for text, expected in cases.items():
        assert parse_polarity(text) == expected, text


def test_one_polarity_per_span_the_first_and_spans_without_one_dropped():
    """As the field's span metric (AoM's) counts: a span is predicted once, with the polarity
    the generator gave it first; a span given no polarity is no JMASA prediction."""
    text = "(Chuck Bass, positive); (Chuck Bass, negative); (# MCM); (# MCM, neutral)"
    parsed = parse_generation(text, TOKENS)
    assert spans(parsed) == [(4, 6, "POS"), (8, 10, "NEU")]
    assert parsed.unmatched == ("# MCM",)  # counted among the terms that gave no prediction
    # the same text for MATE: spans only, each once
    assert spans(parse_generation(text, TOKENS, with_polarity=False)) == [(4, 6, None), (8, 10, None)]
