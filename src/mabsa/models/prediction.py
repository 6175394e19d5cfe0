"""Running a model over posts: features in order of length, decode, aspects back on the posts.

Shared by the engine (evaluation, ``mabsa predict``, the Python API) and by models that call
other models (a pipeline's term stage, IEA's aligner).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from mabsa.data.records import Aspect, Post
from mabsa.processing.processor import EXTRACTION_TASKS


@dataclass
class Predictions:
    posts: list[Post]  # input posts with predicted aspects, same order
    truncated: list[str] = field(default_factory=list)  # ids of posts cut to max_length


def iter_batches(
    processor: Any, features: Sequence[Any], batch_size: int
) -> Iterator[tuple[list[Any], dict[str, Any]]]:
    """``(features, batch)`` in order of length (less padding); what prediction runs on."""
    order = sorted(range(len(features)), key=lambda k: len(features[k].input_ids))
    for start in range(0, len(order), batch_size):
        chunk = [features[k] for k in order[start : start + batch_size]]
        yield chunk, processor.collate(chunk)


def predict_posts(model: Any, posts: Sequence[Post], batch_size: int = 64) -> Predictions:
    """Predict aspects for ``posts``. Extraction tasks replace the aspects; masc fills in the
    polarity (and score) of each given aspect."""
    processor = model.processor
    features = processor.encode(posts, with_labels=False)
    found: dict[int, dict[int, Aspect]] = {}  # post index -> aspect index -> prediction
    extracted: dict[int, list[Aspect]] = {}
    truncated = sorted({posts[f.post_index].id for f in features if f.truncated})
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for chunk, batch in iter_batches(processor, features, batch_size):
                for feature, aspects in zip(chunk, model.decode(batch)):
                    if processor.task in EXTRACTION_TASKS:
                        extracted[feature.post_index] = aspects
                    else:
                        found.setdefault(feature.post_index, {})[feature.aspect_index] = aspects[0]
    finally:
        model.train(was_training)
    out = []
    for i, post in enumerate(posts):
        if processor.task in EXTRACTION_TASKS:
            out.append(post.with_aspects(extracted.get(i, [])))
        else:
            given = found.get(i, {})
            out.append(post.with_aspects([_with_prediction(a, given[j]) for j, a in enumerate(post.aspects)]))
    return Predictions(out, truncated)


def _with_prediction(given: Aspect, predicted: Aspect) -> Aspect:
    """The given aspect with the model's polarity and score, and the per-aspect evidence the
    model read (``rationale``) when it reports one."""
    rationale = predicted.rationale if predicted.rationale is not None else given.rationale
    return replace(given, polarity=predicted.polarity, score=predicted.score, rationale=rationale)
