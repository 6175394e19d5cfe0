import pytest

from mabsa.data.records import Aspect, Face, Polarity, Post, Rationale
from mabsa.errors import MabsaError
from mabsa.perception import StandInPerceiver
from mabsa.perception.standin import SHIPPED_CAPTION_SOURCE
from mabsa.processing.errors import LeakageError

FACE = Face(
    box=(0, 0, 43, 44),
    age=36.0,
    gender="man",
    race="white",
    emotion="fear",
    emotion_scores={"fear": 0.42, "sad": 0.35},
    race_scores={"white": 0.58},
)


def post():
    return Post(
        id="t15-test-1",
        tokens=("RT", "Chuck", "Bass", "is", "back"),
        image="1860693.jpg",
        aspects=(
            Aspect(1, 3, "Chuck Bass", Polarity.POS, rationale=Rationale("A man smiles.", "He looks happy.")),
            Aspect(0, 1, "RT", Polarity.NEU),
        ),
        caption="a man in a suit",
        faces=(FACE,),
        aspect_face_description="There are 1 people in the picture. Chuck Bass with a fear expression.",
    )


def test_per_image_perception_from_the_shipped_texts():
    p = StandInPerceiver().perceive(post())
    assert p.source == "stand-in" and p.image == "1860693.jpg"
    assert p.caption.text == "a man in a suit" and p.caption.source == SHIPPED_CAPTION_SOURCE
    assert not p.caption.label_derived
    assert p.faces == (FACE,)
    assert p.face_text == "There is 1 person in the image. A 36-year-old white man with a fear expression."
    assert "Chuck" not in str(p.to_dict())  # no per-aspect text leaks into per-image evidence
    assert p.regions is None and p.labels == ()


def test_missing_shipped_texts_stay_missing():
    bare = Post(id="x", tokens=("hi",))
    p = StandInPerceiver().perceive(bare)
    assert p.caption is None and p.faces is None and p.face_text is None and p.image == "x"
    assert (
        StandInPerceiver().perceive(Post(id="y", tokens=("a",), faces=())).face_text
        == "There are 0 people in the image."
    )


def test_aspect_evidence_only_for_a_given_aspect_of_the_post():
    sp, p = StandInPerceiver(), post()
    ev = sp.aspect_evidence(p, p.aspects[0])
    assert ev.term == "Chuck Bass" and ev.span == (1, 3)
    assert ev.rationale == Rationale("A man smiles.", "He looks happy.")
    assert ev.face_description.endswith("Chuck Bass with a fear expression.")
    assert sp.aspect_evidence(p, (0, 1)).rationale is None  # no rationale shipped for that one
    with pytest.raises(LeakageError, match="without an aspect") as e:
        sp.aspect_evidence(p, None)
    assert isinstance(e.value, MabsaError)
    with pytest.raises(LeakageError, match=r"aspect \(3, 5\) is not one of the post's aspects"):
        sp.aspect_evidence(p, Aspect(3, 5, "is back"))
    with pytest.raises(LeakageError):  # what a term extractor sees has no aspects to ask about
        sp.aspect_evidence(p.extraction_input(), p.aspects[0])


def test_perception_json_roundtrip():
    from mabsa.perception.records import Perception

    p = StandInPerceiver().perceive(post())
    assert Perception.from_dict(p.to_dict()) == p
