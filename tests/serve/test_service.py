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
    perceive = evidence.perceiver.perceive
    monkeypatch.setattr(evidence.perceiver, "perceive", lambda image: calls.append(image.digest) or perceive(image))
    pixels = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    first = evidence.perceive(evidence.perceiver.load(pixels, "a.png"))
    again = evidence.perceive(evidence.perceiver.load(pixels.copy(), "b.png"))
    assert len(calls) == 1 and again.image == "b.png" and again.digest == first.digest
    other = evidence.perceive(evidence.perceiver.load(pixels[::-1].copy(), "c.png"))
    assert len(calls) == 2 and other.digest != first.digest
