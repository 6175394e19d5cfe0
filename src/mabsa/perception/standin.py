"""Stand-in perception for the shipped benchmarks, whose images are not available.

Same interface as :class:`~mabsa.perception.perceiver.Perceiver`, fed by the image-derived
texts a dataset post carries (``Post.caption``, ``Post.faces``, and the per-aspect
``Post.aspect_face_description`` / ``Aspect.rationale``). Face attributes become text through
the same :func:`~mabsa.processing.image_text.describe_faces` as real faces.

Leakage rule: :meth:`StandInPerceiver.perceive` returns per-image evidence only;
per-aspect texts come only from :meth:`StandInPerceiver.aspect_evidence`, which needs an aspect
of that post and raises :class:`LeakageError` otherwise.
"""

from __future__ import annotations

from mabsa.data.records import Aspect, Post
from mabsa.perception.records import AspectEvidence, Caption, Perception
from mabsa.processing.errors import LeakageError
from mabsa.processing.image_text import MIN_ATTRIBUTE_CONFIDENCE, describe_faces

SHIPPED_CAPTION_SOURCE = "shipped:CATR caption (FITE release)"


class StandInPerceiver:
    source = "stand-in"

    def __init__(self, min_attribute_confidence: float = MIN_ATTRIBUTE_CONFIDENCE):
        self.min_attribute_confidence = min_attribute_confidence

    def perceive(self, post: Post) -> Perception:
        return Perception(
            image=post.image or post.id,
            source=self.source,
            caption=Caption(post.caption, SHIPPED_CAPTION_SOURCE) if post.caption is not None else None,
            faces=post.faces,
            face_text=describe_faces(post.faces, self.min_attribute_confidence),
        )

    def aspect_evidence(self, post: Post, aspect: Aspect | tuple[int, int] | None) -> AspectEvidence:
        if aspect is None:
            raise LeakageError(
                f"post {post.id!r}: per-aspect evidence (face description, rationale) was requested "
                "without an aspect; it was built with the gold aspects and may only be read for an "
                "aspect the task gives (MASC, or the polarity stage of a two-stage JMASA)"
            )
        span = aspect.span if isinstance(aspect, Aspect) else tuple(aspect)
        match = next((a for a in post.aspects if a.span == span), None)
        if match is None:
            raise LeakageError(
                f"post {post.id!r}: aspect {span} is not one of the post's aspects "
                f"{[a.span for a in post.aspects]}; per-aspect evidence is only given for those"
            )
        return AspectEvidence(match.term, match.span, post.aspect_face_description, match.rationale)
