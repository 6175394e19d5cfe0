"""CLAMP assembled on tiny random-init encoders: both visual sources, ablations, learning,
save/load, and the leakage rule of the visual stream."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from mabsa.data import load_dataset
from mabsa.data.records import Rationale
from mabsa.engine import checkpoint as ckpt
from mabsa.engine.inference import predict_posts
from mabsa.models import get_model_class
from mabsa.models.saving import save_model
from mabsa.processing.errors import LeakageError
from mabsa.processing.visual import MultimodalProcessor
from model_support import train_steps

TINY = {
    "encoder": "minilm",
    "random_init": True,
    "encoder_overrides": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37},
    "heads": 4,
    "align_dim": 16,
    "dropout": 0.0,
    "ipot_iterations": 10,
    "visual_max_length": 24,
}


@pytest.fixture(scope="module")
def posts():
    return load_dataset("twitter2015", "train")[:8]


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    from transformers import ViTConfig, ViTModel

    path = tmp_path_factory.mktemp("vit")
    ViTModel(
        ViTConfig(
            hidden_size=24,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            image_size=32,
            patch_size=8,
        )
    ).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def image_posts(posts, tmp_path_factory):
    """The same posts with real files: a scikit-image photo and generated images; one missing."""
    from skimage import data

    root = tmp_path_factory.mktemp("images")
    Image.fromarray(data.astronaut()).save(root / "astronaut.png")
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(root / "grey.png")
    names = ["astronaut.png", "grey.png", "absent.png"]
    return [replace(p, image=names[i % 3]) for i, p in enumerate(posts)], str(root)


def tiny(task="jmasa", **args):
    torch.manual_seed(0)
    return get_model_class("clamp").create({**TINY, **args}, task)


@pytest.mark.parametrize("task", ["jmasa", "mate"])
def test_image_text_stream_learns_and_every_loss_is_present(posts, task):
    m = tiny(task)
    batch = m.processor.collate(m.processor.encode(posts))
    assert batch["visual_input_ids"].shape[0] == len(posts) and batch["visual_present"].all()
    losses, _, out = train_steps(m, batch, steps=8)
    assert set(out.losses) == {"crf", "cls", "gcl", "wra"}
    assert losses[-1] < 0.7 * losses[0]
    # every parameter took part: the graph reaches PAF, both heads, MCL projections and AMA's sigma
    unused = [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, unused


def test_real_image_stream_with_a_tiny_vit(image_posts, tiny_vit):
    posts, root = image_posts
    m = tiny(visual_source="image", vision_encoder=tiny_vit, image_root=root)
    with pytest.warns(UserWarning, match=r"no image file for .* \(looked under image_root"):  # said once
        batch = m.processor.collate(m.processor.encode(posts))
    assert batch["pixel_values"].shape[:2] == (len(posts), 3)
    assert batch["visual_present"].tolist() == [i % 3 != 2 for i in range(len(posts))]
    losses, _, out = train_steps(m, batch, steps=6)
    assert losses[-1] < losses[0]
    assert m.vision.model.embeddings.patch_embeddings.projection.weight.grad is not None
    # the pretrained vision tower trains at the encoder rate, not the heads' rate
    vision = {id(p) for p in m.vision.parameters()}
    rates = {g["lr"] for g in m.parameter_groups(1e-5, 1e-3, 0.0) if any(id(p) in vision for p in g["params"])}
    assert rates == {1e-5}


def test_a_post_without_image_evidence_ignores_the_visual_tokens(posts):
    m = tiny().eval()
    batch = m.processor.collate(m.processor.encode(posts[:2]))
    batch["visual_present"] = torch.tensor([True, False])
    before = m(batch).emissions
    batch["visual_input_ids"] = batch["visual_input_ids"].flip(0)  # swap the visual texts
    after = m(batch).emissions
    assert torch.allclose(before[1], after[1], atol=1e-5)  # no evidence: nothing changes
    assert not torch.allclose(before[0], after[0])  # with evidence: the image matters


@pytest.mark.parametrize(
    "ablation,losses",
    [
        ({"paf": False}, {"crf", "cls", "gcl", "wra"}),
        ({"gcl": False, "wra": False}, {"crf", "cls"}),
        ({"wra": False}, {"crf", "cls", "gcl"}),
        ({"ama": False}, {"crf", "cls", "gcl", "wra"}),
    ],
)
def test_ablation_switches(posts, ablation, losses):
    m = tiny(**ablation)
    batch = m.processor.collate(m.processor.encode(posts[:4]))
    out = m(batch)
    assert set(out.losses) == losses
    assert hasattr(m, "paf") == ablation.get("paf", True)
    if ablation.get("ama") is False:  # w/o AMA: L is the plain sum
        assert out.loss.item() == pytest.approx(sum(v.item() for v in out.losses.values()), rel=1e-5)


def test_save_then_load_gives_identical_predictions(tmp_path, posts):
    m = tiny(dropout=0.1).eval()
    save_model(m, tmp_path)
    loaded, _ = ckpt.load_model(tmp_path)
    assert isinstance(loaded.processor, MultimodalProcessor)
    assert loaded.processor.visual_text == ("caption", "faces")
    batch = m.processor.collate(m.processor.encode(posts))
    assert torch.equal(m(batch).emissions, loaded(batch).emissions)
    a, b = predict_posts(m, posts).posts, predict_posts(loaded, posts).posts
    assert [p.aspects for p in a] == [p.aspects for p in b]


def test_visual_stream_never_carries_per_aspect_texts(posts):
    secret = "zzsecret"
    leaky = [
        replace(
            p,
            aspect_face_description=secret,
            aspects=tuple(replace(a, rationale=Rationale(description=secret)) for a in p.aspects),
        )
        for p in posts
    ]
    m = tiny()
    batch = m.processor.collate(m.processor.encode(leaky))
    decoded = m.processor.tokenizer.batch_decode(batch["visual_input_ids"])
    assert all("zz" not in d for d in decoded)
    assert any(p.caption.split()[0].lower() in d for p, d in zip(posts, decoded))  # captions do arrive
    with pytest.raises(LeakageError):
        tiny(visual_text=["caption", "aspect_face_description"])


def test_predict_on_a_real_photo_perceives_the_visual_text(tmp_path):
    """`mabsa.load(...).predict(text, image)` on an image-text CLAMP runs Perception on the photo."""
    from skimage import data

    import mabsa

    m = tiny().eval()
    save_model(m, tmp_path)
    photo = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    predictor = mabsa.load(tmp_path)
    assert predictor.model.processor.reads_image_texts
    post = predictor._post(0, "Eileen Collins waves", str(photo), None, None)
    assert post.faces and len(post.faces) == 1 and post.caption  # one face found, a caption made
    result = predictor.predict("Eileen Collins waves", image=str(photo))
    assert result.tokens == ("Eileen", "Collins", "waves")
    assert all(a.polarity is not None and 0.0 <= a.score <= 1.0 for a in result.aspects)
