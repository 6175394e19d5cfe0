"""Distilling a pipeline into one fast JMASA tagger (issue #26 item 6).

The teacher is a recorded pipeline (:mod:`mabsa.engine.stage_outputs`: a term stage, or an
ensemble of term stages, and a polarity stage) on the **training** posts. Its soft labels give
each word a distribution over the JMASA tags::

    q(O) = m(O)        q(B-p) = m(B) * pi(p)        q(I-p) = m(I) * pi(p)

where ``m`` are the term stage's CRF marginals of the word and ``pi`` the polarity stage's
probabilities for the span that holds the word: the span the teacher finds there, else the gold
span there (a training label), else uniform. Words the teacher's encoder cut are ``O``.

The student (any CRF tagger, e.g. the MiniLM ``text-crf`` default) trains on
``(1 - w) * NLL(gold tags) + w * CRF.soft_nll(q)`` with ``train.teacher=<targets file>`` and
``train.distill_weight=w``. Only training posts are read; dev selects, test is scored once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mabsa.data.records import Post
from mabsa.engine.stage_outputs import PolarityRecord, TermRecord, atomic_savez, mean_emissions, span_probs
from mabsa.errors import ConfigError, MabsaError
from mabsa.modules.heads import viterbi_aspects
from mabsa.processing.processor import POLARITIES
from mabsa.tagging import JMASA, get_scheme


def teacher_targets(
    terms: Sequence[TermRecord], polarity: Sequence[PolarityRecord], posts: Sequence[Post]
) -> dict[str, np.ndarray]:
    """Each post's ``(words, 7)`` JMASA tag distribution (``JMASA.labels`` order), by post id."""
    crf, emissions, mask = mean_emissions(terms, posts)
    marginals = crf.marginals(emissions, mask).numpy()  # (posts, width, O/B/I)
    found = viterbi_aspects(
        crf, emissions, mask, [(p.tokens, len(p.tokens)) for p in posts], get_scheme(terms[0].scheme)
    )
    uniform = np.full(len(POLARITIES), 1 / len(POLARITIES))
    out = {}
    for i, post in enumerate(posts):
        n = len(post.tokens)
        pi = np.tile(uniform, (n, 1))
        for spans in (post.aspects, found[i]):  # the teacher's own spans win over the gold
            for a in spans:
                pi[a.start : a.end] = span_probs(polarity, post, i, a)
        kept = int(mask[i].sum())
        m = np.zeros((n, 3))
        m[:, 0] = 1.0  # words the teacher's encoder cut: O
        m[:kept] = marginals[i, :kept]
        q = np.zeros((n, len(JMASA.labels)))
        q[:, JMASA.label2id["O"]] = m[:, 0]
        for k, polarity_k in enumerate(POLARITIES):
            q[:, JMASA.label2id[f"B-{polarity_k.value}"]] = m[:, 1] * pi[:, k]
            q[:, JMASA.label2id[f"I-{polarity_k.value}"]] = m[:, 2] * pi[:, k]
        out[post.id] = (q / q.sum(1, keepdims=True)).astype(np.float32)
    return out


def save_targets(path: str | Path, targets: Mapping[str, np.ndarray], **meta: Any) -> Path:
    ids = list(targets)
    arrays = {
        "ids": np.array(ids),
        "lengths": np.array([len(targets[i]) for i in ids], dtype=np.int64),
        "targets": np.concatenate([targets[i] for i in ids]) if ids else np.zeros((0, len(JMASA.labels))),
        "labels": np.array(JMASA.labels),
        "meta": np.array(json.dumps(meta)),
    }
    return atomic_savez(Path(path), arrays)


def load_targets(path: str | Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as data:
            ids, lengths, targets, labels = (data[k] for k in ("ids", "lengths", "targets", "labels"))
    except (OSError, KeyError, ValueError) as e:
        raise ConfigError(f"train.teacher: {path} is not a teacher targets file ({e})") from None
    if tuple(str(label) for label in labels) != JMASA.labels:
        raise ConfigError(f"train.teacher: {path} holds targets over {list(labels)}, not the JMASA tags")
    parts = np.split(targets, np.cumsum(lengths)[:-1]) if len(ids) else []
    return {str(i): t for i, t in zip(ids, parts)}


class Teacher:
    """The distillation term of a student's loss (the trainer's ``train.teacher``)."""

    def __init__(self, path: str | Path, weight: float, model: Any, posts: Sequence[Post]):
        if model.task != "jmasa" or not hasattr(getattr(model, "head", None), "crf"):
            raise ConfigError(
                f"train.teacher: a pipeline is distilled into a JMASA CRF tagger, not a {model.task} {model.name} model"
            )
        if not 0.0 <= weight <= 1.0:
            raise ConfigError(f"train.distill_weight must be in [0, 1], not {weight}")
        self.weight, self.targets = weight, load_targets(path)
        missing = [p.id for p in posts if p.id not in self.targets]
        if missing:
            raise ConfigError(
                f"train.teacher: {path} has no targets for {len(missing)} training posts ({missing[0]}, ...)"
            )
        wrong = [p.id for p in posts if len(self.targets[p.id]) != len(p.tokens)]
        if wrong:
            raise MabsaError(f"train.teacher: {path} has targets of another length than post {wrong[0]}'s words")

    def batch_targets(self, batch: Mapping[str, Any], width: int) -> torch.Tensor:
        """``(B, width, 7)``: each feature's post targets over its kept words (O past them)."""
        out = torch.zeros(len(batch["features"]), width, len(JMASA.labels))
        out[:, :, JMASA.label2id["O"]] = 1.0
        for k, f in enumerate(batch["features"]):
            q = torch.from_numpy(self.targets[f.post.id][:width])
            out[k, : len(q)] = q
        return out

    def loss(
        self, gold_loss: torch.Tensor, emissions: torch.Tensor, batch: Mapping[str, Any], crf: Any
    ) -> torch.Tensor:
        soft = crf.soft_nll(emissions, self.batch_targets(batch, emissions.shape[1]).to(emissions), batch["word_mask"])
        return (1 - self.weight) * gold_loss + self.weight * soft
