"""Nearest-to-Match Instructions, stand-in region interpretations (leakage rule), ablations."""

import pytest
from PIL import Image

from mabsa.data import load_dataset
from mabsa.data.records import Aspect, Face, Polarity, Post
from mabsa.models.iea.instructions import build_instruction
from mabsa.models.iea.interpretations import ImageView, RegionUnit, shuffled_views, stand_in_view

TOKENS = "RT @ ltsChuckBass : Chuck Bass is everything # MCM".split()
MAN = RegionUnit(1, "A 30-year-old white man with a happy expression.", "positive", (0, 0, 40, 40))
WOMAN = RegionUnit(2, "A woman.", None, (50, 0, 30, 30))
SIGN = RegionUnit(3, "This region shows a sign.", "neutral")
VIEW = ImageView("a man in a suit", (MAN, WOMAN, SIGN))


def kinds(instruction):
    return [(s.kind, s.text if s.kind != "interpretation" else s.region) for s in instruction.segments]


def test_unit_follows_its_phrase_and_unaligned_regions_go_last():
    x = build_instruction(TOKENS, VIEW, [(4, 6), None, (8, 10)])
    assert kinds(x) == [
        ("image", "a man in a suit"),
        ("text", "RT @ ltsChuckBass :"),
        ("phrase", "Chuck Bass"),
        ("region", ""),
        ("interpretation", 1),
        ("text", "is everything"),
        ("phrase", "# MCM"),
        ("region", ""),
        ("interpretation", 3),
        ("region", ""),
        ("interpretation", 2),
    ]
    assert [s.region for s in x.segments if s.kind == "region"] == [1, 3, 2]
    assert x.text().splitlines()[1:] == [
        "Image: a man in a suit",
        "Post: RT @ ltsChuckBass : Chuck Bass <region 1: A 30-year-old white man with a happy "
        "expression. Sentiment: positive.> is everything # MCM <region 3: This region shows a "
        "sign. Sentiment: neutral.> <region 2: A woman. Sentiment: not rated.>",
    ]


def test_order_follows_the_text_not_the_region_numbers():
    x = build_instruction(TOKENS, VIEW, [(8, 10), (4, 6), None])
    text = x.text()
    assert text.index("Bass <region 2") < text.index("MCM <region 1") < text.index("<region 3")


def test_two_regions_on_one_phrase_and_overlapping_phrases():
    x = build_instruction(TOKENS, VIEW, [(4, 6), (4, 6), (5, 7)])
    assert [s.text for s in x.segments if s.kind in ("text", "phrase")] == [
        "RT @ ltsChuckBass :",
        "Chuck Bass",
        "is",
        "everything # MCM",
    ]
    assert [s.region for s in x.segments if s.kind == "region"] == [1, 2, 3]
    words = " ".join(s.text for s in x.segments if s.kind in ("text", "phrase")).split()
    assert words == TOKENS  # the post is never changed, only annotated


def test_ablations():
    spans = [(4, 6), None, (8, 10)]
    end = build_instruction(TOKENS, VIEW, spans, "no_aligner").text()
    assert "Post: RT @ ltsChuckBass : Chuck Bass is everything # MCM <region 1:" in end
    bare = build_instruction(TOKENS, VIEW, spans, "no_interpretation").text()
    assert "Chuck Bass <region 1> is everything # MCM <region 3> <region 2>" in bare
    assert "expression" not in bare
    text_only = build_instruction(TOKENS, VIEW, spans, "text_only").text()
    assert text_only.endswith("Post: " + " ".join(TOKENS)) and "Image:" not in text_only
    with pytest.raises(ValueError):
        build_instruction(TOKENS, VIEW, spans, "bogus")


def test_content_parts_put_each_crop_after_its_phrase():
    whole, crop = Image.new("RGB", (64, 64)), Image.new("RGB", (20, 20), "red")
    view = ImageView("a man", (RegionUnit(1, "A man.", "positive", (0, 0, 20, 20), crop),), whole)
    x = build_instruction(TOKENS, view, [(4, 6)])
    parts = x.content_parts()
    assert [p["type"] for p in parts] == ["text", "image", "text", "image", "text"]
    assert parts[2]["text"].endswith("Chuck Bass <region 1>")
    assert parts[4]["text"].startswith(" (A man. Sentiment: positive.) is everything")
    assert x.images() == [whole, crop]


def test_stand_in_view_reads_per_image_texts_only(shared_datasets):
    posts = load_dataset("twitter2015", "test")
    with_faces = [p for p in posts if p.faces and p.aspect_face_description]
    assert with_faces
    for post in with_faces[:50]:
        visible = post.extraction_input()
        view = stand_in_view(visible)
        assert view.description == post.caption
        assert len(view.regions) == min(4, len(post.faces))
        assert all(u.box is not None for u in view.regions)
        text = build_instruction(visible.tokens, view).text()
        assert post.aspect_face_description not in text
        for a in post.aspects:
            if a.rationale is not None:
                assert (a.rationale.reason or "@@") not in text


def test_face_regions_largest_first_with_ratings():
    faces = (
        Face(box=(0, 0, 10, 10), age=20, gender="woman", emotion="sad"),
        Face(box=(0, 0, 50, 50), age=40, gender="man", emotion="happy"),
    )
    post = Post(
        id="p",
        tokens=("hi",),
        caption="two people",
        faces=faces,
        aspects=(Aspect(0, 1, "hi", Polarity.POS),),
        aspect_face_description="hi is sad",
    )
    view = stand_in_view(post)
    assert [u.rating for u in view.regions] == ["positive", "negative"]
    assert view.regions[0].content.startswith("A 40-year-old man")
    assert len(stand_in_view(post, max_regions=2).regions) == 1  # L includes the background


def test_shuffled_views_never_keep_their_own_regions():
    views = [ImageView(f"c{i}", (RegionUnit(1, f"r{i}", None),)) for i in range(7)]
    out = shuffled_views(views, seed=3)
    assert [v.description for v in out] == [v.description for v in views]
    assert all(o.regions != v.regions for o, v in zip(out, views))
    assert sorted(o.regions[0].content for o in out) == sorted(v.regions[0].content for v in views)
    assert shuffled_views(views, seed=3) == out


def test_real_photo_is_perceived_from_image_root(tmp_path):
    """The real-image path: a dataset post names its image relatively (``1860693.jpg``);
    ``image_root`` finds it, and the Perceiver's regions become the units (scikit-image photo)."""
    from skimage import data

    from mabsa.models.iea.interpretations import ImageViews
    from mabsa.processing.errors import ImageLoadError

    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    post = Post(id="a", tokens=("Eileen", "Collins", "smiles"), image="astronaut.png", caption="shipped caption")
    stand_in = ImageViews("auto")(post)  # no root: the relative name is not found here
    assert stand_in.source == "stand-in" and stand_in.description == "shipped caption"
    view = ImageViews("auto", image_root=str(tmp_path), max_regions=3)(post, with_images=True)
    assert view.source == "image" and view.description and view.description != "shipped caption"
    assert 1 <= len(view.regions) <= 2  # L = 3 includes the background
    assert all(u.box and u.interpretation and u.image is not None for u in view.regions)
    assert view.image.size == (512, 512)
    with pytest.raises(ImageLoadError, match="set model_args.image_root"):
        ImageViews("perceive")(post)
    with pytest.raises(ImageLoadError, match="under image_root"):
        ImageViews("perceive", image_root=str(tmp_path / "elsewhere"))(post)
