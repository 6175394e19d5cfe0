import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage import data

from mabsa.cli.perceive import perceive
from mabsa.perception import Perceiver, PerceptionConfig
from mabsa.perception.cache import DiskCache
from mabsa.perception.records import Perception


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    Image.fromarray(data.astronaut()).save(d / "astronaut.png")
    Image.fromarray(data.chelsea()).save(d / "chelsea.jpg", quality=92)
    Image.new("RGBA", (30, 20), (0, 0, 0, 0)).save(d / "clear.png")
    return d


def test_perceive_real_photos_and_cache_hits(photos, tmp_path):
    perceiver = Perceiver(cache=tmp_path)
    astro = perceiver.perceive(photos / "astronaut.png")
    assert astro.size == (512, 512) and len(astro.faces) == 1 and astro.faces[0].emotion == "happy"
    assert astro.face_text.startswith("There is 1 person in the image. A ")
    assert astro.caption.label_derived and len(astro.labels) == 5
    assert astro.regions[-1].is_background and all(r.interpretation for r in astro.regions)
    assert 2 <= len(astro.regions) <= 5
    assert sum(r.area for r in astro.regions) == 512 * 512
    cat = perceiver.perceive(photos / "chelsea.jpg")
    assert cat.faces == () and any("cat" in label or label == "tabby" for label, _ in cat.labels)

    # a new Perceiver on the same cache recomputes nothing: its models are never even built
    again = Perceiver(cache=tmp_path)
    assert again.perceive(photos / "astronaut.png") == astro
    assert again.cache.misses == 0 and again.cache.hits > 0
    assert "faces" not in vars(again) and "segmenter" not in vars(again)
    restored = again.perceive(photos / "astronaut.png").regions
    assert all((a.mask == b.mask).all() for a, b in zip(restored, astro.regions))
    assert Perception.from_dict(json.loads(json.dumps(astro.to_dict()))) == astro


def test_changed_config_is_a_cache_miss(photos, tmp_path):
    Perceiver(PerceptionConfig(segmenter=None), cache=tmp_path).perceive(photos / "clear.png")
    p = Perceiver(PerceptionConfig(segmenter=None, face_detector="opencv"), cache=tmp_path)
    p.perceive(photos / "clear.png")
    assert p.cache.misses == 1  # faces only; caption and labels were shared


def test_features_are_cached(photos, tmp_path):
    perceiver = Perceiver(cache=tmp_path)
    tokens, pooled = perceiver.features(photos / "chelsea.jpg")
    assert tokens.shape == (49, 1280) and pooled.shape == (1280,)
    again = Perceiver(cache=tmp_path)
    t2, p2 = again.features(photos / "chelsea.jpg")
    assert np.allclose(t2, tokens) and "vision" not in vars(again)


def test_cli_prints_faces_caption_regions_and_reports_bad_files(photos, tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "empty.jpg").write_bytes(b"")
    result = CliRunner().invoke(
        perceive, [str(photos / "astronaut.png"), str(tmp_path / "imgs"), "--out", str(tmp_path / "cache")]
    )
    assert result.exit_code == 2
    out = result.output
    assert "faces (1): There is 1 person in the image." in out and "happy" in out
    assert "caption: An image of" in out and "[label-derived]" in out
    assert "regions (" in out and " bg box=[" in out
    assert "empty.jpg: cannot load image: file is empty (0 bytes)" in out


def test_cli_json_and_usage_errors(photos, tmp_path):
    r = CliRunner().invoke(
        perceive, [str(photos / "clear.png"), "--json", "--segmenter", "none", "--out", str(tmp_path)]
    )
    assert r.exit_code == 0 and json.loads(r.output)["regions"] is None
    assert CliRunner().invoke(perceive, []).exit_code == 2
    assert "--images" in CliRunner().invoke(perceive, ["--dataset", "twitter2015"]).output


def test_cli_precomputes_a_dataset_and_resumes(photos, tmp_path):
    root = tmp_path / "mini"
    (root / "jmasa_json").mkdir(parents=True)
    posts = [
        {"words": ["hello", "moon"], "image_id": "a.png", "aspects": [], "opinions": []},
        {"words": ["cat"], "image_id": "b.jpg", "aspects": [], "opinions": []},
        {"words": ["gone"], "image_id": "missing.jpg", "aspects": [], "opinions": []},
    ]
    for split in ("train", "dev", "test"):
        (root / "jmasa_json" / f"{split}.json").write_text(json.dumps(posts[:2] if split != "test" else posts))
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes((photos / "clear.png").read_bytes())
    (images / "b.jpg").write_bytes((photos / "chelsea.jpg").read_bytes())
    args = ["--dataset", str(root), "--images", str(images), "--out", str(tmp_path / "cache"), "--segmenter", "none"]
    first = CliRunner().invoke(perceive, args)
    assert first.exit_code == 0, first.output
    assert "2 of 3 images perceived (0 cache hits), 1 missing" in first.output
    second = CliRunner().invoke(perceive, args)
    assert (
        "2 of 3 images perceived (4 cache hits)" in second.output
    )  # faces, labels x 2 (the caption is made from the labels)
    assert DiskCache(tmp_path / "cache").clean() == 0


def test_rationale_through_an_endpoint_is_cached(photos, tmp_path):
    from perception_support import fake_chat_server

    with fake_chat_server() as server:
        config = PerceptionConfig(chat=f"openai:{server.url}#vlm")
        r = Perceiver(config, cache=tmp_path).rationale(photos / "chelsea.jpg", "My $T$ again", "cat")
        assert r.description == "reply 0 with 1 images" and r.reason == "reply 1 with 0 images"
        again = Perceiver(config, cache=tmp_path).rationale(photos / "chelsea.jpg", "My $T$ again", "cat")
        other = Perceiver(config, cache=tmp_path).rationale(photos / "chelsea.jpg", "My $T$ again", "dog")
    assert again == r and other != r and len(server.requests) == 4


def test_cli_workers_give_the_same_answers_in_the_same_order(photos, tmp_path):
    """--workers 2: two spawned processes, each with its own models; same output, same order."""
    args = [str(photos), "--json", "--segmenter", "none"]
    one = CliRunner().invoke(perceive, [*args, "--out", str(tmp_path / "a")])
    two = CliRunner().invoke(perceive, [*args, "--out", str(tmp_path / "b"), "--workers", "2"])
    assert one.exit_code == two.exit_code == 0, two.output
    answers = [json.loads(line) for line in two.output.splitlines()]
    assert [a["image"] for a in answers] == [str(photos / n) for n in ("astronaut.png", "chelsea.jpg", "clear.png")]
    assert answers == [json.loads(line) for line in one.output.splitlines()]


def test_one_batched_labeler_pass_gives_what_each_stage_gives_alone(photos):
    """perceive_batch labels images and region crops in one pass (the background's whole-image
    crop labelled once): it must say what the captioner and the interpreter say on their own."""
    from mabsa.perception.interpret import LabelRegionInterpreter
    from mabsa.perception.labels import shared_labeler

    perceiver = Perceiver(cache=None)
    images = [perceiver.load(photos / name) for name in ("astronaut.png", "chelsea.jpg", "clear.png")]
    batch = perceiver.perceive_batch(images)
    assert [p.image for p in batch] == [str(photos / n) for n in ("astronaut.png", "chelsea.jpg", "clear.png")]
    for image, seen in zip(images, batch):
        assert seen == perceiver.perceive(image)
        expected = [(n, pytest.approx(p, abs=1e-6)) for n, p in shared_labeler().top_labels([image.rgb], 5)[0]]
        assert list(seen.labels) == expected
        regions = perceiver.segment(image)
        alone = LabelRegionInterpreter().interpret(image.rgb, regions, seen.faces or ())
        assert [r.interpretation for r in seen.regions or ()] == alone
    assert any(r.is_background and r.box == (0, 0, *img.size) for img, p in zip(images, batch) for r in p.regions)
