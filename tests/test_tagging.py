import pytest
from hypothesis import given
from hypothesis import strategies as st

from mabsa.data.records import Aspect, Polarity
from mabsa.errors import MabsaError
from mabsa.tagging import (
    JMASA,
    MATE,
    align_labels_to_subwords,
    convert_scheme,
    first_subword_index,
    get_scheme,
    ids_to_tags,
    repair_tags,
    spans_to_tags,
    subword_to_word_predictions,
    tags_to_aspects,
    tags_to_ids,
)

# A real Twitter-2015 train tweet (image 1860693.jpg) whose user name and hashtag split into
# several MiniLM subwords; gold aspects "Chuck Bass" (POS) and "# MCM" (NEU).
TWEET = ["RT", "@", "ltsChuckBass", ":", "Chuck", "Bass", "is", "everything", "#", "MCM"]
TWEET_ASPECTS = [Aspect(4, 6, "Chuck Bass", Polarity.POS), Aspect(8, 10, "# MCM", Polarity.NEU)]
TWEET_TAGS = ["O", "O", "O", "O", "B-POS", "I-POS", "O", "O", "B-NEU", "I-NEU"]


# -- schemes ---------------------------------------------------------------------------
def test_scheme_label_sets_and_ids():
    assert JMASA.labels == ("O", "B-POS", "I-POS", "B-NEU", "I-NEU", "B-NEG", "I-NEG")
    assert MATE.labels == ("O", "B", "I")
    assert JMASA.num_labels == 7 and MATE.num_labels == 3
    assert JMASA.with_polarity and not MATE.with_polarity
    assert JMASA.label2id["I-NEG"] == 6 and JMASA.id2label[3] == "B-NEU"
    assert MATE.label2id == {"O": 0, "B": 1, "I": 2}
    assert MATE.id2label == {0: "O", 1: "B", 2: "I"}
    # the dicts are copies: editing one does not alter the shared scheme
    JMASA.label2id["O"] = 99
    assert JMASA.label2id["O"] == 0


def test_get_scheme():
    assert get_scheme("jmasa") is JMASA
    assert get_scheme(" MATE ") is MATE
    with pytest.raises(ValueError, match="unknown tag scheme 'bio'"):
        get_scheme("bio")


# -- round trip (property) -------------------------------------------------------------
@st.composite
def tokens_and_aspects(draw):
    n = draw(st.integers(min_value=0, max_value=25))
    tokens = [f"w{i}" for i in range(n)]
    # split points: cut [0, n) into segments and keep some of them as aspects
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=max(n - 1, 1)))))
    bounds = [0] + [c for c in cuts if c < n] + [n]
    aspects = []
    for start, end in zip(bounds, bounds[1:]):
        if start < end and draw(st.booleans()):
            polarity = draw(st.sampled_from(list(Polarity)))
            aspects.append(Aspect(start, end, " ".join(tokens[start:end]), polarity))
    return tokens, aspects


@given(tokens_and_aspects())
def test_round_trip_jmasa(case):
    tokens, aspects = case
    tags = spans_to_tags(len(tokens), aspects, JMASA)
    assert len(tags) == len(tokens)
    assert repair_tags(tags, JMASA) == tags  # encoded tags are already valid
    assert tags_to_aspects(tokens, tags, JMASA) == aspects
    assert ids_to_tags(tags_to_ids(tags, JMASA), JMASA) == tags


@given(tokens_and_aspects())
def test_round_trip_mate(case):
    tokens, aspects = case
    tags = spans_to_tags(len(tokens), aspects, MATE)
    assert set(tags) <= {"O", "B", "I"}
    expected = [Aspect(a.start, a.end, a.term) for a in aspects]
    assert tags_to_aspects(tokens, tags, MATE) == expected
    assert convert_scheme(spans_to_tags(len(tokens), aspects, JMASA), JMASA, MATE) == tags


@given(st.lists(st.sampled_from(JMASA.labels), max_size=30))
def test_repair_is_valid_idempotent_and_keeps_span_tokens(tags):
    repaired = repair_tags(tags)
    assert repair_tags(repaired) == repaired
    # repair never adds or removes aspect tokens
    assert [t == "O" for t in repaired] == [t == "O" for t in tags]
    for prev, cur in zip(["O"] + repaired, repaired):
        if cur.startswith("I-"):
            assert prev != "O" and prev[2:] == cur[2:]


def test_real_tweet_tags():
    assert spans_to_tags(len(TWEET), TWEET_ASPECTS) == TWEET_TAGS
    assert spans_to_tags(len(TWEET), TWEET_ASPECTS, "mate") == [
        "O",
        "O",
        "O",
        "O",
        "B",
        "I",
        "O",
        "O",
        "B",
        "I",
    ]
    assert tags_to_aspects(TWEET, TWEET_TAGS) == TWEET_ASPECTS


# -- repair on hand-written invalid sequences ------------------------------------------
@pytest.mark.parametrize(
    "tags, expected",
    [
        # leading I- (no B-) starts a span
        (["I-POS", "I-POS", "O"], ["B-POS", "I-POS", "O"]),
        # I- after O starts a new span
        (["B-NEG", "O", "I-NEU", "I-NEU"], ["B-NEG", "O", "B-NEU", "I-NEU"]),
        # mixed polarity, majority NEG (2 of 3) wins over the first token's POS
        (["B-POS", "I-NEG", "I-NEG"], ["B-NEG", "I-NEG", "I-NEG"]),
        # tie 1:1, the first token's polarity wins
        (["B-NEG", "I-POS", "O"], ["B-NEG", "I-NEG", "O"]),
        (["I-NEU", "I-POS"], ["B-NEU", "I-NEU"]),
        # tie 2:2 between POS and NEG, first token POS
        (["B-POS", "I-NEG", "I-NEG", "I-POS"], ["B-POS"] + ["I-POS"] * 3),
        # 1:1:1 ... the first token breaks a three-way tie too
        (["B-NEU", "I-NEG", "I-POS"], ["B-NEU", "I-NEU", "I-NEU"]),
        # tie NEG:NEU 2:2 with the first token (POS) not tied: the first tied one to occur wins
        (["B-POS", "I-NEG", "I-NEU", "I-NEU", "I-NEG"], ["B-NEG"] + ["I-NEG"] * 4),
        (["B-POS", "I-NEU", "I-NEG", "I-NEG", "I-NEU"], ["B-NEU"] + ["I-NEU"] * 4),
        # B- directly after a span starts a new span (no merging)
        (["B-POS", "I-POS", "B-POS", "B-NEG"], ["B-POS", "I-POS", "B-POS", "B-NEG"]),
        # valid sequences are untouched
        (["O", "B-NEU", "I-NEU", "O", "B-NEG"], ["O", "B-NEU", "I-NEU", "O", "B-NEG"]),
        ([], []),
    ],
)
def test_repair_jmasa(tags, expected):
    assert repair_tags(tags, JMASA) == expected


def test_repair_mate():
    assert repair_tags(["I", "I", "O", "I", "B", "B", "I"], MATE) == [
        "B",
        "I",
        "O",
        "B",
        "B",
        "B",
        "I",
    ]


def test_decode_invalid_sequence_uses_repair():
    tokens = ["a", "b", "c", "d", "e"]
    tags = ["I-POS", "I-NEG", "I-NEG", "O", "I-NEU"]
    assert tags_to_aspects(tokens, tags) == [
        Aspect(0, 3, "a b c", Polarity.NEG),
        Aspect(4, 5, "e", Polarity.NEU),
    ]
    assert tags_to_aspects(tokens, ["B", "I", "O", "I", "I"], "mate") == [
        Aspect(0, 2, "a b"),
        Aspect(3, 5, "d e"),
    ]


def test_scores_are_span_means():
    tokens = ["a", "b", "c", "d"]
    tags = ["B-POS", "I-POS", "O", "B-NEG"]
    got = tags_to_aspects(tokens, tags, scores=[0.9, 0.5, 0.1, 0.25])
    assert [a.score for a in got] == [pytest.approx(0.7), pytest.approx(0.25)]
    assert all(type(a.score) is float for a in got)
    assert all(a.score is None for a in tags_to_aspects(tokens, tags))


def test_convert_scheme():
    assert convert_scheme(["I-POS", "I-NEG", "O", "B-NEU"], "jmasa", "mate") == ["B", "I", "O", "B"]
    assert convert_scheme(["O", "I-NEG"], JMASA, JMASA) == ["O", "B-NEG"]
    with pytest.raises(ValueError, match="carry no polarity"):
        convert_scheme(["B", "I"], MATE, JMASA)


# -- errors ----------------------------------------------------------------------------
def test_spans_to_tags_errors():
    with pytest.raises(ValueError, match="overlap at token 2"):
        spans_to_tags(5, [Aspect(1, 3, "x", Polarity.POS), Aspect(2, 4, "y", Polarity.NEG)])
    with pytest.raises(ValueError, match="overlap"):  # the same span twice overlaps too
        spans_to_tags(5, [Aspect(1, 2, "x", Polarity.POS), Aspect(1, 2, "x", Polarity.POS)], MATE)
    with pytest.raises(ValueError, match=r"\[3, 6\) is out of range for 5 tokens"):
        spans_to_tags(5, [Aspect(3, 6, "x", Polarity.POS)])
    with pytest.raises(ValueError, match="has no polarity"):
        spans_to_tags(5, [Aspect(0, 1, "x")], JMASA)
    assert spans_to_tags(3, [Aspect(0, 1, "x")], MATE) == ["B", "O", "O"]


def test_tag_errors():
    with pytest.raises(ValueError, match="unknown jmasa tag 'B-MIX'"):
        repair_tags(["O", "B-MIX"])
    with pytest.raises(ValueError, match="unknown mate tag 'B-POS'"):
        repair_tags(["B-POS"], MATE)
    with pytest.raises(ValueError, match="unknown jmasa tag 'B'"):
        tags_to_ids(["B"], JMASA)
    with pytest.raises(ValueError, match="label id 7 out of range"):
        ids_to_tags([0, 7], JMASA)
    with pytest.raises(ValueError, match="2 tags for 3 tokens"):
        tags_to_aspects(["a", "b", "c"], ["O", "O"])
    with pytest.raises(ValueError, match="1 scores for 2 tokens"):
        tags_to_aspects(["a", "b"], ["O", "O"], scores=[1.0])
    # user mistakes are MabsaErrors too (the CLI prints them without a traceback)
    with pytest.raises(MabsaError):
        get_scheme("nope")


# -- subword alignment with the real MiniLM tokenizer ----------------------------------
@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from mabsa.embedded import embedded_path

    return AutoTokenizer.from_pretrained(str(embedded_path("minilm")))


def test_align_labels_on_first_subwords(tokenizer):
    enc = tokenizer(TWEET, is_split_into_words=True)
    word_ids = enc.word_ids()
    pieces = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    # the case this test is about: these words split into several subwords
    for word in (2, 9):  # "ltsChuckBass", "MCM"
        assert word_ids.count(word) > 1
    first = first_subword_index(word_ids)
    assert sorted(first) == list(range(len(TWEET)))
    for word, position in first.items():
        assert word_ids[position] == word and word not in word_ids[:position]
        assert not pieces[position].startswith("##")

    labels = tags_to_ids(TWEET_TAGS)
    aligned = align_labels_to_subwords(word_ids, labels)
    assert len(aligned) == len(word_ids)
    for position, (word, label) in enumerate(zip(word_ids, aligned)):
        if word is not None and first[word] == position:
            assert label == labels[word]
        else:  # special tokens and continuation subwords
            assert label == -100
    assert aligned[0] == aligned[-1] == -100  # [CLS], [SEP]
    assert sum(label != -100 for label in aligned) == len(TWEET)
    assert align_labels_to_subwords(word_ids, labels, ignore_index=-1).count(-1) == (len(word_ids) - len(TWEET))

    # a model that predicts the aligned labels on first subwords and garbage elsewhere
    # gets the words' tags back
    preds = [label if label != -100 else JMASA.label2id["I-NEG"] for label in aligned]
    words_back = subword_to_word_predictions(word_ids, preds, len(TWEET), fill=0)
    assert ids_to_tags(words_back) == TWEET_TAGS
    assert tags_to_aspects(TWEET, ids_to_tags(words_back)) == TWEET_ASPECTS


def test_truncation_reports_dropped_words(tokenizer):
    enc = tokenizer(TWEET, is_split_into_words=True, truncation=True, max_length=8)
    word_ids = enc.word_ids()
    assert len(word_ids) == 8
    first = first_subword_index(word_ids)
    kept = sorted(first)
    dropped = sorted(set(range(len(TWEET))) - set(first))
    # [CLS] rt @ lt ##sch ##uck ##bas [SEP]: "ltsChuckBass" is kept (cut inside), the rest dropped
    assert kept == [0, 1, 2]
    assert dropped == list(range(3, len(TWEET)))
    tags = [t if t != "O" else "B-POS" for t in TWEET_TAGS]  # so "O" can only come from fill
    subword_tags = ["O" if w is None else tags[w] for w in word_ids]
    back = subword_to_word_predictions(word_ids, subword_tags, len(TWEET))
    assert back[:3] == tags[:3]
    assert back[3:] == ["O"] * len(dropped)
    aligned = align_labels_to_subwords(word_ids, tags_to_ids(TWEET_TAGS))
    assert sum(label != -100 for label in aligned) == 3


def test_alignment_errors():
    with pytest.raises(ValueError, match="word 2 but only 2 word labels"):
        align_labels_to_subwords([None, 0, 1, 2, None], [0, 0])
    with pytest.raises(ValueError, match="must be aligned"):
        subword_to_word_predictions([None, 0, None], ["O", "O"], 1)
    with pytest.raises(ValueError, match="n_words=1"):
        subword_to_word_predictions([None, 0, 1, None], ["O"] * 4, 1)
