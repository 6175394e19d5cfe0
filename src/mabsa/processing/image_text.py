"""Image-derived text: what a model may read in the image's place, and FITE's face template.

:func:`describe_faces` is the *one* template used for real faces and for the shipped DeepFace
attributes alike (FITE: "There are N people in the image." + "A 25-year-old white man with a happy
expression."). Race and expression are only said when their probability reaches 0.4, and every
clause adapts to attributes a backend does not provide.

:data:`IMAGE_TEXT_SOURCES` names every text a processor can put in a second segment and whether
it is per-aspect (built with the gold aspects: the leakage rule lets only a model that is given
the aspect read it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mabsa.data.records import Aspect, Face, Post

#: FITE keeps race / expression only when the backend is at least this sure.
MIN_ATTRIBUTE_CONFIDENCE = 0.4


# -- the face template -------------------------------------------------------------------------------
def describe_face(face: Face, min_confidence: float = MIN_ATTRIBUTE_CONFIDENCE) -> str:
    """One face as FITE's sentence; attributes that are missing or unsure are left out."""
    words = []
    if face.age is not None:
        words.append(f"{int(round(face.age))}-year-old")
    if face.race and _sure(face.race_scores, face.race, min_confidence):
        words.append(face.race.lower())
    words.append(face.gender.lower() if face.gender else "person")
    sentence = _article(words[0]) + " " + " ".join(words)
    emotion = sure_expression(face, min_confidence)
    if emotion:
        # FITE's template word for word ("with a angry expression", as in the shipped
        # descriptions): models trained on those see the same wording from real photos.
        sentence += f" with a {emotion} expression"
    return sentence + "."


def sure_expression(face: Face, min_confidence: float = MIN_ATTRIBUTE_CONFIDENCE) -> str | None:
    """The face's expression in lower case, or ``None`` when missing or under the threshold."""
    if face.emotion and _sure(face.emotion_scores, face.emotion, min_confidence):
        return face.emotion.lower()
    return None


def people_sentence(n: int) -> str:
    """The template's first sentence: how many people the image shows."""
    return "There is 1 person in the image." if n == 1 else f"There are {n} people in the image."


def describe_faces(faces: Sequence[Face] | None, min_confidence: float = MIN_ATTRIBUTE_CONFIDENCE) -> str | None:
    """All faces of an image: the people count, then one sentence per face (``None`` if unknown)."""
    if faces is None:
        return None
    return " ".join([people_sentence(len(faces))] + [describe_face(f, min_confidence) for f in faces])


def _article(word: str) -> str:
    """'An' before a vowel sound: 'an asian man', 'an 8-year-old', 'an 11-year-old', 'an 18-...'."""
    vowel = word[0] in "aeiou8" or word.split("-")[0] in ("11", "18")
    return "An" if vowel else "A"


def _sure(scores, label: str, threshold: float) -> bool:
    """Unknown confidence counts as sure: a backend that gives no scores still names its label."""
    if not scores:
        return True
    return float(scores.get(label, 0.0)) >= threshold


# -- sources ---------------------------------------------------------------------------------
def _faces_text(post: Post, aspect: Aspect | None) -> str | None:
    return describe_faces(post.faces)


def _aspect_rationale(post: Post, aspect: Aspect | None) -> str | None:
    if aspect is None or aspect.rationale is None:
        return None
    return aspect.rationale.as_text() or None


#: source name -> (per_aspect, function(post, aspect) -> text or None)
IMAGE_TEXT_SOURCES: dict[str, tuple[bool, Callable[[Post, Aspect | None], str | None]]] = {
    "caption": (False, lambda post, aspect: post.caption),
    "faces": (False, _faces_text),
    "aspect_face_description": (True, lambda post, aspect: post.aspect_face_description),
    "rationale": (True, _aspect_rationale),
}
