"""`truncated` means words were cut (issue #28 item 6): never for a post that fits, even when
its last word has no subword (a control character) or FITE's empty markers end the segment."""

from mabsa.data.records import Aspect, Polarity, Post
from mabsa.encoders.text import load_tokenizer
from mabsa.processing.processor import Processor


def test_a_trailing_word_without_subwords_is_not_truncation():
    tok = load_tokenizer("minilm")
    post = Post(id="1", tokens=("Chuck", "Bass", "is", "great", "\u200b"))
    (feature,) = Processor(tok, "mate").encode([post], with_labels=False)
    assert not feature.truncated and len(feature.word_positions) == 4  # the last word has no subword


def test_empty_aspect_markers_at_the_end_are_not_truncation():
    tok = load_tokenizer("minilm")
    post = Post(id="1", tokens=("I", "love", "Paris"), aspects=(Aspect(2, 3, "Paris", Polarity.POS),))
    (feature,) = Processor(tok, "masc", aspect_markers=("", "")).encode([post], with_labels=False)
    assert not feature.truncated


def test_a_real_cut_is_still_reported():
    tok = load_tokenizer("minilm")
    post = Post(id="1", tokens=tuple(f"word{i}" for i in range(60)))
    (feature,) = Processor(tok, "mate", max_length=16).encode([post], with_labels=False)
    assert feature.truncated and len(feature.word_positions) < 60


def test_terms_shown_to_users_drop_control_characters():
    from mabsa.engine.predictor import clean_term

    assert clean_term("Chuck\x00 Bass\u200b") == "Chuck Bass"
    assert clean_term("\x07") == ""
    assert clean_term("👩\u200d💻 coder") == "👩\u200d💻 coder"  # an emoji sequence stays whole
