"""LRSA on tiny random-init encoders: with and without rationale (both injections), exact
rationale dropout, the leakage rule, the frozen-encoder cache, save/load, two-stage JMASA, and
what a prediction says about the rationale it read."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from mabsa.data import load_dataset
from mabsa.data.records import Aspect, Rationale
from mabsa.engine import checkpoint as ckpt
from mabsa.engine.inference import predict_posts
from mabsa.models import get_model_class
from mabsa.models.lrsa.model import (
    LRSA,
    LRSAProcessor,
    RationaleNotice,
    shipped_rationale_lookup,
)
from mabsa.models.pipeline.model import predict_two_stage
from mabsa.models.saving import save_model
from mabsa.modules.heads import ClassificationHead, TaggingHead
from mabsa.processing.errors import LeakageError
from mabsa.processing.images import load_image
from model_support import train_steps

TINY = {
    "encoder": "minilm",
    "random_init": True,
    "encoder_overrides": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 37,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    },
    "heads": 4,
    "dropout": 0.0,
    "visual_max_length": 24,
    "rationale_max_length": 24,
    "max_length": 72,
}


@pytest.fixture(scope="module")
def posts():
    return load_dataset("twitter2015", "train")[:6]


def tiny(task="masc", **args):
    torch.manual_seed(0)
    return get_model_class("lrsa").create({**TINY, **args}, task)


def batch_of(m, posts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RationaleNotice)
        return m.processor.collate(m.processor.encode(posts))


def without_rationales(posts):
    return [p.with_aspects([replace(a, rationale=None) for a in p.aspects]) for p in posts]


@pytest.mark.parametrize("injection", ["segment", "encoder"])
@pytest.mark.parametrize("dual", [True, False])
def test_masc_with_and_without_rationale(posts, injection, dual):
    m = tiny(injection=injection, dual=dual)
    assert isinstance(m, LRSA) and isinstance(m.head, ClassificationHead) and m.name == "lrsa"
    b = batch_of(m, posts)
    assert b["rationale_present"].all()  # every aspect of these posts has a shipped rationale
    if injection == "segment":
        assert b["input_ids"].shape[1] > b["plain_attention_mask"].sum(1).max()  # the rationale is in
    else:
        assert b["rationale_input_ids"].shape[0] == len(b["features"])
    losses, _, _ = train_steps(m, b, steps=6)
    assert losses[-1] < losses[0]
    m.eval()
    with_r = m.logits(b)
    plain = batch_of(m, without_rationales(posts))
    assert not plain["rationale_present"].any()
    without_r = m.logits(plain)
    assert with_r.shape == without_r.shape == (len(b["features"]), 3)
    assert not torch.allclose(with_r, without_r)  # the rationale is read ...
    assert all(a[0].polarity is not None for a in m.decode(plain))  # ... and not needed


@pytest.mark.parametrize("injection", ["segment", "encoder"])
def test_withheld_rationale_is_exactly_no_rationale(posts, injection):
    """Rationale dropout shows the model exactly the input it gets when no LLM is reachable."""
    m = tiny(injection=injection)
    b = batch_of(m, posts)
    m.eval()
    reference = m.logits(batch_of(m, without_rationales(posts)))
    m.train()
    m.rationale_dropout = 1.0
    assert torch.allclose(m.logits(b), reference, atol=1e-5)
    m.rationale_dropout = 0.0
    assert not torch.allclose(m.logits(b), reference, atol=1e-5)


def test_a_missing_rationale_is_handled(posts):
    m = tiny()
    some = list(posts)
    first = some[0]
    some[0] = first.with_aspects([replace(first.aspects[0], rationale=None)] + list(first.aspects[1:]))
    b = batch_of(m, some)
    present = b["rationale_present"].tolist()
    assert present[0] is False and all(present[1:])
    assert torch.isfinite(m(b).loss)


def test_rationale_text_is_cut_to_whole_words_reason_first(posts):
    m = tiny(rationale_max_length=12)
    proc = m.processor
    a = posts[0].aspects[0]
    text, r = proc.rationale_for(posts[0], a)
    assert r is a.rationale and text.split()[0] == a.rationale.reason.split()[0]
    assert len(proc.tokenizer(text, add_special_tokens=False)["input_ids"]) <= 12
    assert a.rationale.reason.startswith(text.rsplit(" ", 1)[0].split("\n")[0][:10])


@pytest.mark.parametrize("task", ["jmasa", "mate"])
def test_tagger_learns_and_refuses_per_aspect_rationales(posts, task):
    m = tiny(task)
    assert isinstance(m.head, TaggingHead) and m.processor.rationale == "none"
    b = batch_of(m, posts)
    losses, _, _ = train_steps(m, b, steps=6)
    assert losses[-1] < losses[0]
    with pytest.raises(LeakageError):
        tiny(task, rationale="aspect")


def test_per_post_rationales_reach_a_tagger_without_gold_aspects(posts):
    seen = []

    def per_post(post, aspect):
        seen.append((post, aspect))
        return Rationale(description="a crowd at a concert", reason="the post is cheerful")

    m = tiny("jmasa", rationale="post")
    m.processor.rationale_source = per_post
    b = batch_of(m, posts)
    assert b["rationale_present"].all() and len(seen) == len(posts)
    assert all(aspect is None and post.aspects == () for post, aspect in seen)
    decoded = m.processor.tokenizer.decode(b["input_ids"][0])
    assert "cheerful" in decoded and "concert" in decoded
    assert torch.isfinite(m(b).loss)


def test_frozen_encoder_is_cached_and_gets_no_gradient(posts):
    m = tiny(freeze_encoder=True, adapter_layers=1, injection="encoder")
    calls = []
    m.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    b = batch_of(m, posts)
    first = m(b)
    first.loss.backward()
    n = len(calls)
    assert n > 0
    assert all(p.grad is None for p in m.text_encoder.parameters())
    assert any(p.grad is not None for p in m.adapter.parameters())
    m.eval()
    cached = m.logits(b)
    assert len(calls) == n  # nothing re-encoded
    m.freeze_encoder = False  # the same function computed directly
    assert torch.allclose(cached, m.logits(b), atol=1e-5)


def test_frozen_cache_is_bounded_and_per_model(posts, monkeypatch):
    import mabsa.models.lrsa.model as lrsa

    m = tiny(freeze_encoder=True).eval()
    b = batch_of(m, posts)
    first = m.logits(b)
    assert m._frozen_cache  # the frozen path keeps the states it computed ...
    assert not tiny(freeze_encoder=True)._frozen_cache  # ... in this model only (no module global)
    monkeypatch.setattr(lrsa, "FROZEN_CACHE_MAX_ENTRIES", 0)
    bounded = tiny(freeze_encoder=True).eval()
    assert torch.equal(bounded.logits(b), first)
    assert not bounded._frozen_cache  # nothing kept past the bound, same answer


def test_save_then_load_gives_identical_predictions(tmp_path, posts):
    m = tiny(injection="encoder", dropout=0.1).eval()
    save_model(m, tmp_path)
    loaded, _ = ckpt.load_model(tmp_path)
    assert isinstance(loaded.head, ClassificationHead) and isinstance(loaded.processor, LRSAProcessor)
    assert loaded.processor.injection == "encoder" and loaded.processor.rationale_max_length == 24
    b = batch_of(m, posts)
    assert torch.equal(m.logits(b), loaded.logits(b))


def test_prediction_states_whether_a_rationale_was_used(posts):
    m = tiny().eval()
    some = without_rationales(posts[:2]) + list(posts[2:4])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = predict_posts(m, some).posts
    notes = [str(w.message) for w in caught if issubclass(w.category, RationaleNotice)]
    n_without = sum(len(p.aspects) for p in some[:2])
    n_all = sum(len(p.aspects) for p in some)
    assert notes == [
        f"LRSA: a rationale was used for {n_all - n_without} of {n_all} aspect(s) (source: aspect, "
        "0 generated by an LLM); no rationale given and no rationale backend configured"
    ]
    assert all(a.rationale is None for p in out[:2] for a in p.aspects)
    assert all(a.rationale is not None for p in out[2:] for a in p.aspects)


def test_two_stage_jmasa_keeps_the_terms_and_counts_rationales(posts):
    terms = tiny("mate").eval()
    polarity = tiny().eval()
    gold = list(posts)
    lookup = shipped_rationale_lookup(gold)
    found = predict_posts(terms, [p.extraction_input() for p in gold]).posts
    pred, counts = predict_two_stage(terms, polarity, gold, lookup)
    assert [[a.span for a in p.aspects] for p in pred] == [[a.span for a in p.aspects] for p in found]
    assert all(a.polarity is not None and a.rationale is None for p in pred for a in p.aspects)
    gold_spans = {(p.id, a.span) for p in gold for a in p.aspects}
    matching = sum((p.id, a.span) in gold_spans for p in found for a in p.aspects)
    assert counts == {"terms": sum(len(p.aspects) for p in found), "terms_with_rationale": matching}
    # the lookup answers only for an exact gold span of the same post
    a = gold[0].aspects[0]
    assert lookup(gold[0], Aspect(a.start, a.end, a.term)) is a.rationale
    assert lookup(gold[0], Aspect(a.start, a.end + 1, "x")) is None
    assert lookup(replace(gold[0], id=gold[0].id + "-other"), Aspect(a.start, a.end, a.term)) is None


def test_real_images_through_a_tiny_vit(posts, tmp_path):
    """visual_source=image: a scikit-image photo and a generated image; a missing file masks the
    post's visual tokens out."""
    from skimage import data
    from transformers import ViTConfig, ViTModel

    vit = tmp_path / "vit"
    ViTModel(
        ViTConfig(
            hidden_size=24,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            image_size=32,
            patch_size=8,
        )
    ).save_pretrained(vit)
    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(tmp_path / "grey.png")
    names = ["astronaut.png", "grey.png", "absent.png"]
    with_images = [replace(p, image=names[i % 3]) for i, p in enumerate(posts)]
    m = tiny(visual_source="image", vision_encoder=str(vit), image_root=str(tmp_path))
    b = batch_of(m, with_images)
    present = [names.index(with_images[f.post_index].image) < 2 for f in b["features"]]
    assert b["pixel_values"].shape[0] == len(b["features"]) and b["visual_present"].tolist() == present
    assert m.dual_attention.visual_in.in_features == 24  # the ViT width, projected to the text's
    # a decoded image handed over in memory (Post.decoded_image) is read instead of a file
    in_memory = [
        replace(p, image="not-on-disk.png", decoded_image=load_image(tmp_path / names[i % 3])) if i % 3 < 2 else p
        for i, p in enumerate(with_images)
    ]
    b_memory = batch_of(m, in_memory)
    assert torch.equal(b_memory["pixel_values"], b["pixel_values"])
    assert b_memory["visual_present"].tolist() == present
    losses, _, _ = train_steps(m, b, steps=6)
    assert losses[-1] < losses[0]
    assert any(p.grad is not None for p in m.vision.parameters())
