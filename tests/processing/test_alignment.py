"""Word alignment with the real tokenizers: MiniLM (WordPiece, split words) and EmbeddingGemma
(SentencePiece, which loses word boundaries on pre-split input, so offsets are used)."""

import json

import pytest

from mabsa.data.records import Post
from mabsa.encoders.text import load_tokenizer
from mabsa.processing.alignment import detect_word_alignment, subwords_per_word
from mabsa.processing.processor import PROCESSOR_FILE, Processor

TWEETS = [
    "RT @ltsChuckBass : Chuck Bass is everything #MCM",
    "Watching #GameOfThrones with @jon_snow 😂😂 http://t.co/AbC123 !!",
    "Café au lait w/ Beyoncé 🇫🇷 ... #NYFW2015 @VogueMagazine",
    "$AAPL up 3 % — Tim Cook's keynote 👍🏽 https://apple.com/live?x=1&y=2",
]


@pytest.fixture(scope="module")
def gemma():
    return load_tokenizer("embeddinggemma-300m")


@pytest.fixture(scope="module")
def minilm():
    return load_tokenizer("minilm")


def test_each_tokenizer_gets_the_alignment_it_needs(gemma, minilm):
    assert detect_word_alignment(minilm) == "split"
    assert detect_word_alignment(gemma) == "offsets"


@pytest.mark.parametrize("text", TWEETS)
def test_gemma_words_get_the_subwords_of_running_text(gemma, text):
    words = text.split()
    per_word = subwords_per_word(gemma, [words], "offsets")[0]
    assert len(per_word) == len(words) and all(per_word)  # every word keeps a subword
    # together they are exactly the tokenization of the running text, in order ...
    running = gemma(text, add_special_tokens=False)["input_ids"]
    assert [t for w in per_word for t in w] == running
    # ... and each word's subwords decode back to that word
    assert [gemma.decode(ids).strip() for ids in per_word] == words


def test_split_alignment_is_unchanged_for_wordpiece(minilm):
    words = TWEETS[0].split()
    per_word = subwords_per_word(minilm, [words], "split")[0]
    assert [minilm.decode(ids).replace(" ", "") for ids in per_word] == [w.lower() for w in words]
    # a word whose characters the tokenizer drops keeps its slot, empty
    assert subwords_per_word(minilm, [["a", "\u200b", "b"]], "split")[0][1] == []


def test_gemma_processor_points_at_each_words_first_subword(gemma):
    words = TWEETS[1].split()
    post = Post(id="1", tokens=tuple(words))
    feature = Processor(gemma, "mate").encode([post], with_labels=False)[0]
    pieces = gemma.convert_ids_to_tokens(feature.input_ids)
    assert pieces[0] == gemma.bos_token and pieces[-1] == gemma.eos_token
    firsts = [pieces[i] for i in feature.word_positions]
    assert firsts[1] == "▁#" and firsts[2] == "▁with" and len(firsts) == len(words)


def test_alignment_is_saved_and_old_processors_keep_splitting(tmp_path, gemma, minilm):
    Processor(gemma, "jmasa").save_pretrained(tmp_path / "g")
    assert Processor.from_pretrained(tmp_path / "g").word_alignment == "offsets"
    Processor(minilm, "jmasa").save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / PROCESSOR_FILE).read_text())
    del cfg["word_alignment"]  # as written before the setting existed
    (tmp_path / "m" / PROCESSOR_FILE).write_text(json.dumps(cfg))
    assert Processor.from_pretrained(tmp_path / "m").word_alignment == "split"
