"""Batched prediction and evaluation shared by the trainer, ``mabsa evaluate/predict`` and the
Python API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import torch

from mabsa.data.records import Aspect, Post
from mabsa.processing.processor import EXTRACTION_TASKS
from mabsa.metrics import score


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
            out.append(post.with_aspects(
                [_with_prediction(a, given[j]) for j, a in enumerate(post.aspects)]
            ))
    return Predictions(out, truncated)


def _with_prediction(given: Aspect, predicted: Aspect) -> Aspect:
    """The given aspect with the model's polarity and score, and the per-aspect evidence the
    model read (``rationale``) when it reports one."""
    from dataclasses import replace

    rationale = predicted.rationale if predicted.rationale is not None else given.rationale
    return replace(given, polarity=predicted.polarity, score=predicted.score, rationale=rationale)


def iter_chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def task_scores(gold: Sequence[Post], pred: Sequence[Post], task: str) -> dict[str, Any]:
    """Scores of ``task``; a jmasa model's spans are also scored as mate."""
    tasks = ("jmasa", "mate") if task == "jmasa" else (task,)
    return {t: score(gold, pred, t) for t in tasks}


#: The dev metric that selects the best epoch.
SELECTION_METRIC = {"jmasa": ("jmasa", "f1"), "mate": ("mate", "f1"), "masc": ("masc", "accuracy")}


def selection_value(metrics: dict[str, Any], task: str) -> float:
    t, key = SELECTION_METRIC[task]
    return float(metrics[t][key])


def evaluate(model: Any, gold: Sequence[Post], batch_size: int = 64) -> dict[str, Any]:
    preds = predict_posts(model, gold, batch_size)
    metrics = task_scores(gold, preds.posts, model.task)
    metrics["n_posts"] = len(gold)
    metrics["n_truncated"] = len(preds.truncated)
    return metrics
