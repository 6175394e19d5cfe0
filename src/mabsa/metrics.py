"""JMASA, MATE and MASC scores over gold and predicted :class:`~mabsa.data.records.Post` s.

Predictions are matched to gold by ``Post.id``. A predicted id that is not in gold is an
error (it usually means the wrong split or a renumbering); a gold post with no prediction
counts as predicting nothing. Every number is a plain Python ``int`` / ``float`` so results
can be written with :func:`json.dump`. Definitions and edge cases: ``docs/tagging_and_metrics.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mabsa.data.records import Polarity, Post
from mabsa.errors import MabsaError

__all__ = ["ScoringError", "TASKS", "jmasa_scores", "masc_scores", "mate_scores", "polarity_scores", "score"]

TASKS = ("jmasa", "mate", "masc")

Span = tuple[str, int, int]  # (post id, start, end)


class ScoringError(MabsaError, ValueError):
    """Gold and predictions cannot be scored together; the message names the posts."""


def _by_id(posts: Iterable[Post], role: str) -> dict[str, Post]:
    out: dict[str, Post] = {}
    duplicates = []
    for post in posts:
        if post.id in out:
            duplicates.append(post.id)
        out[post.id] = post
    if duplicates:
        raise ScoringError(f"{role} has several posts with the same id: {_some(duplicates)}")
    return out


def _some(ids: list[str], most: int = 10) -> str:
    shown = ", ".join(repr(i) for i in ids[:most])
    return shown + (f" ... ({len(ids)} in all)" if len(ids) > most else "")


def _matched(gold: Iterable[Post], pred: Iterable[Post]) -> tuple[list[Post], list[Post]]:
    """Gold posts and the predicted posts whose ids are all in gold."""
    gold_by_id = _by_id(gold, "gold")
    pred_by_id = _by_id(pred, "predictions")
    unknown = [i for i in pred_by_id if i not in gold_by_id]
    if unknown:
        raise ScoringError(
            f"{len(unknown)} predicted post id(s) are not in gold: {_some(unknown)}; "
            "score predictions against the split they were made for"
        )
    return list(gold_by_id.values()), list(pred_by_id.values())


def _gold_polarities(posts: list[Post]) -> set[tuple[str, int, int, Polarity]]:
    out = set()
    for post in posts:
        for a in post.aspects:
            if a.polarity is None:
                raise ScoringError(
                    f"gold post {post.id!r}: aspect {a.term!r} [{a.start}, {a.end}) has no "
                    "polarity; JMASA and MASC gold needs one"
                )
            out.add((post.id, a.start, a.end, a.polarity))
    return out


def _spans(posts: list[Post]) -> set[Span]:
    return {(p.id, a.start, a.end) for p in posts for a in p.aspects}


def _prf(n_correct: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    """Precision, recall, F1; each 0.0 where its denominator is 0."""
    precision = n_correct / n_pred if n_pred else 0.0
    recall = n_correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)


def _set_scores(gold: set, pred: set) -> dict[str, Any]:
    n_correct = len(gold & pred)
    precision, recall, f1 = _prf(n_correct, len(pred), len(gold))
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "n_gold": len(gold),
        "n_pred": len(pred),
        "n_correct": n_correct,
    }


def jmasa_scores(gold: Iterable[Post], pred: Iterable[Post]) -> dict[str, Any]:
    """Micro P/R/F1 over exact ``(post id, start, end, polarity)`` tuples.

    Tuples are sets per post: a span repeated with the same polarity counts once; the same
    span with two polarities counts as two predictions (at most one correct). A predicted
    aspect without polarity is a prediction that is never correct.
    """
    gold_posts, pred_posts = _matched(gold, pred)
    predicted = {(p.id, a.start, a.end, a.polarity) for p in pred_posts for a in p.aspects}
    return _set_scores(_gold_polarities(gold_posts), predicted)


def mate_scores(gold: Iterable[Post], pred: Iterable[Post]) -> dict[str, Any]:
    """Micro P/R/F1 over exact ``(post id, start, end)`` spans; polarity is ignored."""
    gold_posts, pred_posts = _matched(gold, pred)
    return _set_scores(_spans(gold_posts), _spans(pred_posts))


def masc_scores(gold: Iterable[Post], pred: Iterable[Post]) -> dict[str, Any]:
    """Accuracy and macro-F1 of the polarity predicted for each gold aspect.

    The predicted polarity of a gold aspect is that of the predicted aspect with the same
    ``(post id, start, end)``. A gold aspect is wrong when no predicted aspect has its span,
    when that aspect has no polarity, or when several predicted aspects with that span
    disagree; such an aspect counts as a false negative of its gold class and as a
    prediction of no class. Predicted spans that match no gold aspect are ignored.

    Macro-F1 is the unweighted mean of per-class F1 over the polarities present in gold or
    in the predictions for gold aspects (scikit-learn's ``f1_score(average="macro")``),
    with a class's P, R or F1 = 0 where undefined. ``n`` is the number of distinct gold
    ``(id, start, end, polarity)`` tuples.
    """
    gold_posts, pred_posts = _matched(gold, pred)
    gold_items = _gold_polarities(gold_posts)

    predicted: dict[Span, set[Polarity | None]] = {}
    for post in pred_posts:
        for a in post.aspects:
            predicted.setdefault((post.id, a.start, a.end), set()).add(a.polarity)

    pairs: list[tuple[Polarity, Polarity | None]] = []
    for post_id, start, end, gold_polarity in gold_items:
        options = predicted.get((post_id, start, end), set())
        pairs.append((gold_polarity, next(iter(options)) if len(options) == 1 else None))

    n = len(pairs)
    n_right = sum(g == p for g, p in pairs)
    present = {g for g, _ in pairs} | {p for _, p in pairs if p is not None}
    per_class: dict[str, dict[str, Any]] = {}
    for polarity in sorted(present, key=list(Polarity).index):
        n_correct = sum(g == p == polarity for g, p in pairs)
        n_pred = sum(p == polarity for _, p in pairs)
        n_gold = sum(g == polarity for g, _ in pairs)
        precision, recall, f1 = _prf(n_correct, n_pred, n_gold)
        per_class[polarity.value] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": n_gold,
        }
    macro_f1 = sum(c["f1"] for c in per_class.values()) / len(per_class) if per_class else 0.0
    return {
        "accuracy": float(n_right / n) if n else 0.0,
        "macro_f1": float(macro_f1),
        "n": n,
        "per_class": per_class,
    }


def polarity_scores(gold: Iterable[Post], pred: Iterable[Post]) -> dict[str, Any]:
    """The polarity side of a JMASA prediction, two ways:

    * ``accuracy_over_gold_aspects``: right polarity over *all* gold aspects (a gold aspect whose
      span was not found counts as wrong). This is what :func:`masc_scores` computes, and on a
      MASC prediction (every gold span given) it is MASC accuracy; on a JMASA prediction it is
      JMASA recall.
    * ``sentiment_acc_on_found``: right polarity over the gold aspects whose span *was* found,
      the field's usual polarity accuracy of a joint model (JMASA ~= MATE F1 x this).
    """
    gold, pred = list(gold), list(pred)
    over_gold = masc_scores(gold, pred)
    gold_posts, pred_posts = _matched(gold, pred)
    predicted: dict[Span, set[Polarity | None]] = {}
    for post in pred_posts:
        for a in post.aspects:
            predicted.setdefault((post.id, a.start, a.end), set()).add(a.polarity)
    found = [(g, predicted[(i, s, e)]) for i, s, e, g in _gold_polarities(gold_posts) if (i, s, e) in predicted]
    n_right = sum(options == {g} for g, options in found)
    return {
        "accuracy_over_gold_aspects": over_gold["accuracy"],
        "macro_f1_over_gold_aspects": over_gold["macro_f1"],
        "n_gold": over_gold["n"],
        "sentiment_acc_on_found": float(n_right / len(found)) if found else 0.0,
        "n_found": len(found),
    }


_SCORERS = {"jmasa": jmasa_scores, "mate": mate_scores, "masc": masc_scores}


def score(gold: Iterable[Post], pred: Iterable[Post], task: str) -> dict[str, Any]:
    """Scores for ``task``: ``"jmasa"``, ``"mate"``, ``"masc"``, or ``"all"``: JMASA and MATE
    scores and the polarity scores of :func:`polarity_scores`, nested by name."""
    gold, pred = list(gold), list(pred)
    key = str(task).strip().lower()
    if key == "all":
        return {
            "jmasa": jmasa_scores(gold, pred),
            "mate": mate_scores(gold, pred),
            "polarity": polarity_scores(gold, pred),
        }
    try:
        scorer = _SCORERS[key]
    except KeyError:
        raise ScoringError(f"unknown task {task!r}; expected one of {', '.join(TASKS)} or 'all'") from None
    return scorer(gold, pred)
