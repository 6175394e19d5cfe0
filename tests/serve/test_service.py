"""The service's lifecycle as an operator sees it: one log line once it is ready (issue #28 item 14)."""

import logging

import pytest

from mabsa.serve import ServeConfig, create_app
from serve_support import running_server, tiny_checkpoint


def test_ready_is_logged_once_with_the_url_when_readyz_turns_200(tmp_path_factory, caplog):
    caplog.set_level(logging.INFO, logger="mabsa.serve")
    config = ServeConfig(checkpoints={"tiny": str(tiny_checkpoint(tmp_path_factory))}, evidence=None, url="http://h:1/")
    with running_server(create_app(config)):  # returns once /readyz answers 200
        ready = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ready")]
    assert ready == ["ready at http://h:1/ (models: tiny)"]


@pytest.fixture(scope="module")
def evidence():
    from mabsa.serve.evidence import EvidenceBuilder, EvidenceConfig

    return EvidenceBuilder(EvidenceConfig())


def test_evidence_names_the_person_and_shows_only_near_alignments(evidence):
    """The astronaut photo's caption names the woman found; a cat photo is no evidence for
    "Obama"; an image with nothing recognised says so."""
    import numpy as np
    from skimage import data

    from mabsa.serve.evidence import ALIGNMENT_FLOOR, image_summary

    astronaut = evidence.perceive(evidence.perceiver.load(data.astronaut(), "astronaut"))
    assert astronaut.faces and "woman" in astronaut.caption.text.split(";")[0]
    assert "helmet" not in astronaut.caption.text  # its best label guesses are under the floor
    assert astronaut.regions and all(r.mask is None for r in astronaut.regions)  # boxes are enough
    cat = evidence.perceive(evidence.perceiver.load(data.chelsea(), "chelsea"))
    obama, kitten = evidence.align(cat, ["Obama", "kitten"])
    assert obama is None
    assert kitten is not None and kitten["similarity"] >= ALIGNMENT_FLOOR
    assert image_summary(cat)["confident"]
    grey = evidence.perceive(evidence.perceiver.load(np.full((64, 64, 3), 128, np.uint8), "grey"))
    summary = image_summary(grey)
    assert not summary["confident"] and "nothing recognised with confidence" in summary["caption"]
    assert evidence.align(grey, ["Obama"]) == [None]


def test_the_same_photo_posted_again_is_not_perceived_again(evidence, monkeypatch):
    import numpy as np

    calls = []
    perceive = evidence.perceiver.perceive_batch
    monkeypatch.setattr(
        evidence.perceiver, "perceive_batch", lambda images: calls.extend(i.digest for i in images) or perceive(images)
    )
    pixels = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    first = evidence.perceive(evidence.perceiver.load(pixels, "a.png"))
    again = evidence.perceive(evidence.perceiver.load(pixels.copy(), "b.png"))
    assert len(calls) == 1 and again.image == "b.png" and again.digest == first.digest
    other = evidence.perceive(evidence.perceiver.load(pixels[::-1].copy(), "c.png"))
    assert len(calls) == 2 and other.digest != first.digest


def test_a_bad_image_fails_alone_in_a_perception_batch():
    """perceive_each: when the batched pass fails, each image is perceived alone, so only the
    bad one gets an error, and that error is a plain RuntimeError (it crosses processes)."""
    from types import SimpleNamespace

    from mabsa.serve.evidence import perceive_each

    class Perceiver:
        def __init__(self):
            self.calls = []

        def perceive_batch(self, images):
            self.calls.append(list(images))
            if "bad" in images:
                raise ValueError("cannot read")
            return [SimpleNamespace(regions=None, seen=i) for i in images]

    p = Perceiver()
    assert [x.seen for x in perceive_each(p, ["a", "b"])] == ["a", "b"] and p.calls == [["a", "b"]]
    p.calls.clear()
    out = perceive_each(p, ["a", "bad", "b"])
    assert out[0].seen == "a" and out[2].seen == "b"
    assert type(out[1]) is RuntimeError and str(out[1]) == "ValueError: cannot read"
    assert p.calls == [["a", "bad", "b"], ["a"], ["bad"], ["b"]]


def test_alignment_encodes_each_text_once(evidence, monkeypatch):
    import numpy as np

    from mabsa.serve import evidence as evidence_module

    encoded = []
    encode = evidence.encode
    monkeypatch.setattr(evidence, "encode", lambda texts: encoded.extend(texts) or encode(texts))
    monkeypatch.setattr(evidence_module, "EMBEDDINGS_KEPT", 3)
    evidence._vectors.clear()
    first = evidence.embed(["cat", "The background shows a tabby.", "cat"])
    assert encoded == ["cat", "The background shows a tabby."]
    assert np.allclose(first[0], first[2]) and np.allclose(
        first, encode(["cat", "The background shows a tabby.", "cat"]), atol=1e-5
    )
    again = evidence.embed(["The background shows a tabby.", "dog", "Obama"])
    assert encoded[2:] == ["dog", "Obama"] and np.allclose(again[0], first[1])
    assert list(evidence._vectors) == ["The background shows a tabby.", "dog", "Obama"]  # "cat" was the oldest


def test_distinct_photos_for_load_benchmarks():
    """Benchmarks that must not hit a cache get photos whose bytes all differ, 400-800 px on the
    longer side, the same ones for the same seed."""
    import hashlib
    import io

    from PIL import Image

    from mabsa.serve.examples import distinct_photos

    photos = distinct_photos(9, seed=3)
    assert len({hashlib.sha256(p).hexdigest() for p in photos}) == 9
    for p in photos:
        with Image.open(io.BytesIO(p)) as image:
            assert image.format == "JPEG" and 400 <= max(image.size) <= 800
    assert distinct_photos(2, seed=3) == photos[:2] and distinct_photos(2, seed=4) != photos[:2]
