import numpy as np
import pytest
import torch
from skimage import data

from mabsa.data.records import Face
from mabsa.perception.errors import BackendSpecError
from mabsa.perception.faces import (
    EXPRESSIONS,
    ExpressionClassifier,
    FaceAnalyzer,
    _tf_same_pad,
    build_face_detector,
)
from mabsa.processing.image_text import describe_face, describe_faces

# Where the astronaut's face is (Haar: xywh [177, 66, 95, 95]; dlib ltrb (179, 83, 266, 170)).
FACE_CENTRE = (224, 120)


@pytest.fixture(scope="module")
def analyzer():
    return FaceAnalyzer()


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


def test_astronaut_one_face_plausible_box_and_happy(analyzer, astronaut):
    (face,) = analyzer.analyze(astronaut)
    x, y, w, h = face.box
    assert x <= FACE_CENTRE[0] <= x + w and y <= FACE_CENTRE[1] <= y + h
    assert 60 <= w <= 130 and 60 <= h <= 130
    assert face.emotion == "happy" and face.confidence > 0.9
    assert abs(sum(face.emotion_scores.values()) - 1) < 1e-4 and set(face.emotion_scores) == set(EXPRESSIONS)
    assert face.gender == "woman" and 20 <= face.age <= 50
    assert face.race is None  # no embedded backend estimates race


def test_opencv_detector_agrees(astronaut):
    (det,) = build_face_detector("opencv").detect(astronaut)
    x, y, w, h = det.box
    assert x <= FACE_CENTRE[0] <= x + w and y <= FACE_CENTRE[1] <= y + h


def test_no_faces_on_cat_and_flat_images(analyzer):
    assert analyzer.analyze(data.chelsea()) == ()
    assert analyzer.analyze(np.full((50, 50, 3), 128, np.uint8)) == ()
    assert analyzer.analyze(np.zeros((1, 1, 3), np.uint8)) == ()


def test_attribute_backends_can_be_switched_off(astronaut):
    (face,) = FaceAnalyzer(expression="none", age_gender=None).analyze(astronaut)
    assert face.box is not None and face.emotion is None and face.age is None and face.gender is None
    with pytest.raises(BackendSpecError, match="unknown face detector"):
        FaceAnalyzer(detector="mtcnn")


def test_expression_port_matches_keras_geometry():
    # TF 'same' padding of the 3x3/2 max-pools on 60, 30, 15, 8 px maps
    assert [_tf_same_pad(n, 3, 2) for n in (60, 30, 15, 8)] == [(0, 1), (0, 1), (1, 1), (0, 1)]
    clf = ExpressionClassifier()
    out = clf.model(torch.zeros(2, 1, 64, 64))
    assert out.shape == (2, 7)
    crops = clf.crops(np.zeros((100, 80, 3), np.uint8), [(10, 20, 30, 50), (70, 90, 5, 5)])
    assert crops.shape == (2, 1, 64, 64)  # boxes off the edge still give a crop


def test_template_fite_sentences():
    face = Face(
        age=25.0,
        gender="man",
        race="white",
        emotion="happy",
        emotion_scores={"happy": 0.9, "sad": 0.1},
        race_scores={"white": 0.8},
    )
    assert describe_face(face) == "A 25-year-old white man with a happy expression."
    assert describe_faces([face, face]) == (
        "There are 2 people in the image. A 25-year-old white man with a happy expression. "
        "A 25-year-old white man with a happy expression."
    )
    assert describe_faces([]) == "There are 0 people in the image."
    assert describe_faces(None) is None


def test_template_confidence_filter_and_missing_attributes():
    unsure = Face(
        age=29.4,
        gender="woman",
        race="latino hispanic",
        emotion="fear",
        emotion_scores={"fear": 0.35},
        race_scores={"latino hispanic": 0.217},
    )
    assert describe_face(unsure) == "A 29-year-old woman."
    assert describe_face(unsure, min_confidence=0.2) == "A 29-year-old latino hispanic woman with a fear expression."
    assert describe_face(Face(emotion="sad")) == "A person with a sad expression."
    assert describe_face(Face(race="asian", gender="man")) == "An asian man."
    assert describe_face(Face(age=8, gender="woman")) == "An 8-year-old woman."
    assert describe_face(Face(age=18, gender="woman")) == "An 18-year-old woman."
    assert describe_faces([Face()]) == "There is 1 person in the image. A person."


def test_template_on_shipped_deepface_record():
    from mabsa.data.registry import face_from_deepface

    record = {
        "age": 36,
        "region": {"x": 1, "y": 2, "w": 43, "h": 44},
        "gender": "Man",
        "dominant_race": "white",
        "race": {"white": 57.8, "asian": 42.2},
        "dominant_emotion": "fear",
        "emotion": {"fear": 42.07, "sad": 34.66, "neutral": 23.27},
    }
    face = face_from_deepface(record)
    assert face.box == (1, 2, 43, 44)
    text = describe_face(face)
    assert text.startswith("A 36-year-old") and text.endswith("man with a fear expression.")
