"""text-crf / text-cls on tiny random-init encoders (shapes, learning, save/load, leakage)."""

from dataclasses import replace

import pytest
import torch

from mabsa.data import load_dataset
from mabsa.data.records import Aspect, Polarity, Post, Rationale
from mabsa.engine import checkpoint as ckpt
from mabsa.engine.inference import predict_posts
from mabsa.models import available_models, get_model_class
from mabsa.models.saving import save_model
from mabsa.processing.errors import LeakageError
from mabsa.processing.processor import Processor
from model_support import train_steps

# A BERT with MiniLM's vocabulary, random weights (HF's tiny-config testing style).
TINY = {
    "encoder": "minilm",
    "random_init": True,
    "encoder_overrides": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37},
}


@pytest.fixture(scope="module")
def posts():
    return load_dataset("twitter2015", "train")[:12]


def tiny(model: str, task: str, **args):
    torch.manual_seed(0)
    return get_model_class(model).create({**TINY, **args}, task)


def test_registry_lists_baselines():
    assert {"text-crf", "text-cls"} <= set(available_models())
    with pytest.raises(Exception, match="does not do task"):
        tiny("text-cls", "jmasa")


@pytest.mark.parametrize("model,task", [("text-crf", "jmasa"), ("text-crf", "mate"), ("text-cls", "masc")])
def test_training_steps_reduce_loss_on_a_fixed_batch(posts, model, task):
    m = tiny(model, task, dropout=0.0)
    batch = m.processor.collate(m.processor.encode(posts[:8]))
    losses, _, _ = train_steps(m, batch, steps=8)
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("model,task", [("text-crf", "jmasa"), ("text-cls", "masc")])
def test_save_then_load_gives_identical_predictions(tmp_path, posts, model, task):
    m = tiny(model, task, image_text=["caption"])
    save_model(m, tmp_path)
    loaded, config = ckpt.load_model(tmp_path)
    assert config["task"] == task and loaded.processor.image_text == ("caption",)
    m.eval()
    a = predict_posts(m, posts).posts
    b = predict_posts(loaded, posts).posts
    assert [p.aspects for p in a] == [p.aspects for p in b]
    assert any(p.aspects for p in a)
    batch = m.processor.collate(m.processor.encode(posts))
    key = "emissions" if task != "masc" else "logits"
    assert torch.equal(getattr(m(batch), key), getattr(loaded(batch), key))


def test_jmasa_input_never_contains_per_aspect_texts(posts):
    """Leakage rule: gold-aspect-built texts must not reach a term extractor."""
    marker_face, marker_reason = "zzfacesecret", "zzreasonsecret"
    leaky = [
        replace(
            p,
            aspect_face_description=f"{marker_face} {p.aspects[0].term if p.aspects else ''}",
            aspects=tuple(replace(a, rationale=Rationale(description=marker_reason)) for a in p.aspects),
        )
        for p in posts
    ]
    m = tiny("text-crf", "jmasa", image_text=["caption", "faces"])
    features = m.processor.encode(leaky)
    vocab = m.processor.tokenizer
    for f, _p in zip(features, leaky):
        text = vocab.decode(f.input_ids)
        assert "zzface" not in text and "zzreason" not in text
        assert f.post.aspects == () and f.post.aspect_face_description is None
    # A caption does reach it, so the check above is not vacuous.
    assert any(
        "zz" not in vocab.decode(f.input_ids)
        and p.caption
        and p.caption.split()[-1].lower().strip(".") in vocab.decode(f.input_ids)
        for f, p in zip(features, leaky)
    )
    for source in ("aspect_face_description", "rationale"):
        with pytest.raises(LeakageError, match="gold aspects"):
            Processor(vocab, "jmasa", image_text=[source])
        with pytest.raises(LeakageError):
            Processor(vocab, "mate", image_text=["caption", source])
    # MASC (aspect given) may read them.
    masc = Processor(vocab, "masc", image_text=["aspect_face_description", "rationale"])
    text = vocab.decode(masc.encode(leaky)[0].input_ids)
    assert "zzfacesecret" in text.replace(" ", "") and "zzreasonsecret" in text.replace(" ", "")


def test_masc_feature_marks_the_aspect_and_hides_gold_polarity(posts):
    m = tiny("text-cls", "masc")
    feats = m.processor.encode(posts[:1])
    assert len(feats) == len(posts[0].aspects)
    for f, gold in zip(feats, posts[0].aspects):
        words = m.processor.tokenizer.decode([f.input_ids[i] for i in f.aspect_positions])
        assert words.replace(" ", "") == ("<" + gold.term + ">").replace(" ", "").lower()
        assert f.aspect.polarity is None and f.post.aspects == ()
        assert f.labels == [[Polarity.POS, Polarity.NEU, Polarity.NEG].index(gold.polarity)]


def test_truncation_keeps_whole_words_and_is_reported():
    m = tiny("text-crf", "jmasa", max_length=16, image_text=["caption"])
    long_post = Post(
        id="long",
        tokens=tuple(f"word{i}" for i in range(40)),
        caption="a long caption here",
        aspects=(Aspect(38, 39, "word38", Polarity.POS),),
    )
    short = Post(id="short", tokens=("hi", "there"), caption="a dog on grass")
    f_long, f_short = m.processor.encode([long_post, short])
    assert f_long.truncated and not f_short.truncated
    assert len(f_long.input_ids) <= 16 and len(f_long.labels) == len(f_long.word_positions)
    k = len(f_long.word_positions)  # words kept: the last one is whole, the next one absent
    kept = m.processor.tokenizer.decode(f_long.input_ids)
    post_part = kept.split(" [SEP]")[0]  # (a caption word may fill a slot too small for the next word)
    assert post_part.endswith(f" word{k - 1}") and f"word{k}" not in kept, kept
    pred = predict_posts(m, [long_post, short])
    assert pred.truncated == ["long"]
    # the caption is cut before any word of the post
    assert "dog" in m.processor.tokenizer.decode(f_short.input_ids)
    assert "caption" not in m.processor.tokenizer.decode(f_long.input_ids)


@pytest.mark.parametrize("image_text", [[], ["caption", "faces"]])
def test_processor_matches_the_tokenizers_own_pair_encoding(posts, image_text):
    """Our one-pass assembly equals the tokenizer's own [CLS] A [SEP] B [SEP] encoding."""
    m = tiny("text-crf", "jmasa", max_length=512, image_text=image_text)
    tok = m.processor.tokenizer
    for f, post in zip(m.processor.encode(posts), posts):
        second = m.processor.image_text_for(post).split()
        enc = tok([list(post.tokens)], [second] if second else None, is_split_into_words=True)
        assert f.input_ids == enc["input_ids"][0]
        assert f.token_type_ids == enc["token_type_ids"][0]
        first = {}
        for i, (w, s) in enumerate(zip(enc.word_ids(0), enc.sequence_ids(0))):
            if s == 0:
                first.setdefault(w, i)
        assert f.word_positions == [first[w] for w in range(len(post.tokens))]
        assert bool(second) == bool(image_text)
