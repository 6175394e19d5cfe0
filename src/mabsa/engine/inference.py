"""Batched prediction and evaluation shared by the trainer, ``mabsa evaluate/predict`` and the
Python API."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from mabsa.data.records import Post
from mabsa.metrics import score
from mabsa.models.prediction import Predictions, iter_batches, predict_posts

__all__ = ["Predictions", "evaluate", "iter_batches", "iter_chunks", "predict_posts", "selection_value", "task_scores"]


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
    """Scores of ``task``; a jmasa model's answer is also scored as mate and for its polarity
    accuracy on the spans it found (``polarity.sentiment_acc_on_found``: JMASA ~= MATE x that)."""
    if task == "jmasa":
        return score(gold, pred, "all")
    return {task: score(gold, pred, task)}


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
