"""Recorded stage outputs: what a trained pipeline stage computes on an evaluation split, kept as
a small file, so that pipelines and ensembles of stages trained in different sessions (or on
different machines) can be scored after the checkpoints are gone.

* a term stage (a ``word_emissions()`` tagger: ``text-crf``...) records each post's word
  emissions and its CRF;
* a polarity stage (a ``logits()`` classifier: ``text-cls``...) records its polarity
  probabilities for a set of (post, span) queries: the gold aspects and every term a recorded
  term stage of the same split finds.

Composing records gives exactly what the composed checkpoints give: one record or the mean of
several (an :mod:`~mabsa.models.ensemble`: mean emissions under the mean CRF, mean
probabilities), then the polarity of each found term (:mod:`~mabsa.models.pipeline`).
``tests/engine/test_stage_outputs.py`` checks both against the models themselves.

A polarity record answers for a span only if the span was queried: a text classifier reads one
(post, aspect) pair at a time, so the probabilities of a span do not depend on the other spans
asked about with it. A file holds one split per key prefix (``dev/...``, ``test/...``) and the
post ids it was computed on, checked when it is read.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mabsa.data.records import Aspect, Post
from mabsa.errors import MabsaError
from mabsa.models.pipeline.model import combine
from mabsa.models.prediction import iter_batches
from mabsa.models.saving import default_file_mode
from mabsa.modules.crf import CRF, mean_crf
from mabsa.modules.heads import mean_word_scores, viterbi_aspects
from mabsa.processing.processor import POLARITIES
from mabsa.tagging import get_scheme

Span = tuple[int, int, int]  # post index, start, end


@dataclass
class TermRecord:
    """A term stage's word emissions on one split: ``emissions[k]`` is post ``k``'s ``(kept
    words, labels)`` array (words past the model's length limit were cut, and are ``O``)."""

    ids: list[str]
    emissions: list[np.ndarray]
    crf: dict[str, np.ndarray]  # the CRF's state dict
    scheme: str


@dataclass
class PolarityRecord:
    """A polarity stage's probabilities (in ``POLARITIES`` order) for (post, span) queries."""

    ids: list[str]
    probs: dict[Span, np.ndarray]


def _check_ids(ids: Sequence[str], posts: Sequence[Post], what: str) -> None:
    if list(ids) != [p.id for p in posts]:
        raise MabsaError(f"{what} was recorded on other posts than the {len(posts)} given (ids differ)")


@torch.inference_mode()
def record_terms(model: Any, posts: Sequence[Post], batch_size: int = 64) -> TermRecord:
    """The word emissions a tagger computes for ``posts`` (read as an extractor reads them)."""
    if not hasattr(model, "word_emissions"):
        raise MabsaError(f"{model.name} exposes no word_emissions() to record")
    model.eval()
    processor = model.processor
    emissions: dict[int, np.ndarray] = {}
    features = processor.encode([p.extraction_input() for p in posts], with_labels=False)
    for chunk, batch in iter_batches(processor, features, batch_size):
        scores = model.word_emissions(batch)
        for k, f in enumerate(chunk):
            kept = int(batch["word_mask"][k].sum())
            emissions[f.post_index] = scores[k, :kept].float().numpy().copy()
    crf = {k: v.detach().float().numpy().copy() for k, v in model.head.crf.state_dict().items()}
    return TermRecord([p.id for p in posts], [emissions[i] for i in range(len(posts))], crf, processor.task)


@torch.inference_mode()
def record_polarity(model: Any, posts: Sequence[Post], batch_size: int = 64) -> PolarityRecord:
    """A classifier's polarity probabilities for every aspect of ``posts`` (the spans to ask
    about; their polarities are not read)."""
    if not hasattr(model, "logits"):
        raise MabsaError(f"{model.name} exposes no logits() to record")
    model.eval()
    processor = model.processor
    queried = [p.extraction_input().with_aspects([replace(a, polarity=None) for a in p.aspects]) for p in posts]
    probs: dict[Span, np.ndarray] = {}
    for chunk, batch in iter_batches(processor, processor.encode(queried, with_labels=False), batch_size):
        for f, p in zip(chunk, model.logits(batch).softmax(-1).float().numpy()):
            probs[(f.post_index, f.aspect.start, f.aspect.end)] = p.copy()
    return PolarityRecord([p.id for p in posts], probs)


def polarity_queries(posts: Sequence[Post], term_records: Sequence[TermRecord]) -> list[Post]:
    """``posts`` with every span a polarity record of them must answer for as aspects: the gold
    aspects (MASC), the terms each term record finds, and those of their ensemble."""
    found = [decode_terms([r], posts) for r in term_records]
    if len(term_records) > 1:
        found.append(decode_terms(term_records, posts))
    queries = []
    for i, post in enumerate(posts):
        spans = {a.span: a for a in post.aspects}
        for terms in found:
            spans.update({a.span: a for a in terms[i] if a.span not in spans})
        queries.append(post.with_aspects(list(spans.values())))
    return queries


def mean_emissions(records: Sequence[TermRecord], posts: Sequence[Post]) -> tuple[CRF, torch.Tensor, torch.Tensor]:
    """The records' mean CRF, and their word emissions ``(posts, words, labels)`` averaged over
    the records that kept each word, with the mask of the words any record kept: as an
    ensemble of the recorded models averages them."""
    for r in records:
        _check_ids(r.ids, posts, "a term record")
    width = max(1, max((len(e) for r in records for e in r.emissions), default=1))
    scores = torch.zeros(len(records), len(posts), width, len(get_scheme(records[0].scheme).labels))
    masks = torch.zeros(len(records), len(posts), width, dtype=torch.bool)
    for k, r in enumerate(records):
        for i, e in enumerate(r.emissions):
            scores[k, i, : len(e)] = torch.from_numpy(e)
            masks[k, i, : len(e)] = True
    mean, kept = mean_word_scores(list(scores), list(masks))
    return mean_crf([r.crf for r in records]), mean, kept


def decode_terms(records: Sequence[TermRecord], posts: Sequence[Post]) -> list[list[Aspect]]:
    """The terms of one record, or of several as an ensemble does it: each word's emissions
    averaged over the records that kept it, Viterbi under the mean CRF."""
    crf, mean, mask = mean_emissions(records, posts)
    words = [(p.tokens, len(p.tokens)) for p in posts]
    return viterbi_aspects(crf, mean, mask, words, get_scheme(records[0].scheme))


def span_probs(records: Sequence[PolarityRecord], post: Post, index: int, span: Aspect) -> np.ndarray:
    """The records' mean polarity probabilities (``POLARITIES`` order) for ``span`` of ``post``
    (the ``index``-th post of the records)."""
    key = (index, span.start, span.end)
    if any(key not in r.probs for r in records):
        raise MabsaError(
            f"a polarity record has no probabilities for {span.term!r} (post {post.id}, words "
            f"{span.start}-{span.end}): record the polarity stage after the term stages it classifies"
        )
    return np.mean([r.probs[key] for r in records], axis=0)


def classify(records: Sequence[PolarityRecord], posts: Sequence[Post], terms: Sequence[Sequence[Aspect]]) -> list[Post]:
    """``posts`` with ``terms`` as their aspects, each with the polarity of the records' mean
    probabilities (its score: the term's times the polarity's, as a pipeline scores it)."""
    for r in records:
        _check_ids(r.ids, posts, "a polarity record")
    out = []
    for i, (post, found) in enumerate(zip(posts, terms)):
        aspects = []
        for a in found:
            probs = span_probs(records, post, i, a)
            k = int(probs.argmax())
            classified = Aspect(a.start, a.end, a.term, POLARITIES[k], score=float(probs[k]))
            aspects.append(combine(replace(a, polarity=None), classified))
        out.append(post.with_aspects(aspects))
    return out


def pipeline_posts(
    terms: Sequence[TermRecord], polarity: Sequence[PolarityRecord], posts: Sequence[Post]
) -> list[Post]:
    """What the pipeline of the recorded stages (each one record or an ensemble of several)
    predicts for ``posts``."""
    return classify(polarity, posts, decode_terms(terms, posts))


# -- files ---------------------------------------------------------------------------------------


def atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``path`` (a compressed ``.npz``) whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    named: dict[str, Any] = arrays  # numpy's stubs type **kwds as its allow_pickle flag
    np.savez_compressed(buffer, **named)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(buffer.getvalue())
    os.chmod(tmp, default_file_mode())  # mkstemp makes it private; a record is shared like any file
    os.replace(tmp, path)
    return path


def save_records(path: str | Path, records: dict[str, TermRecord | PolarityRecord], **meta: Any) -> Path:
    """One file of records per split name (``{"dev": ..., "test": ...}``) and JSON ``meta``."""
    arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta))}
    for split, r in records.items():
        arrays[f"{split}/ids"] = np.array(r.ids)
        if isinstance(r, TermRecord):
            arrays[f"{split}/scheme"] = np.array(r.scheme)
            arrays[f"{split}/lengths"] = np.array([len(e) for e in r.emissions], dtype=np.int64)
            arrays[f"{split}/emissions"] = np.concatenate(r.emissions).astype(np.float32)
            arrays.update({f"{split}/crf/{k}": v for k, v in r.crf.items()})
        else:
            keys = sorted(r.probs)
            arrays[f"{split}/spans"] = np.array(keys, dtype=np.int64).reshape(-1, 3)
            arrays[f"{split}/probs"] = np.array([r.probs[k] for k in keys], dtype=np.float32).reshape(-1, 3)
    return atomic_savez(Path(path), arrays)


def load_records(path: str | Path) -> tuple[dict[str, TermRecord | PolarityRecord], dict[str, Any]]:
    """The records of :func:`save_records` by split, and its meta."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    records: dict[str, TermRecord | PolarityRecord] = {}
    for split in sorted({k.split("/")[0] for k in arrays if "/" in k}):
        ids = [str(i) for i in arrays[f"{split}/ids"]]
        if f"{split}/emissions" in arrays:
            cuts = np.cumsum(arrays[f"{split}/lengths"])[:-1]
            crf = {k.split("/")[-1]: v for k, v in arrays.items() if k.startswith(f"{split}/crf/")}
            emissions = np.split(arrays[f"{split}/emissions"], cuts) if len(ids) else []
            records[split] = TermRecord(ids, emissions, crf, str(arrays[f"{split}/scheme"]))
        else:
            spans = arrays[f"{split}/spans"]
            probs = {(int(a), int(b), int(c)): p for (a, b, c), p in zip(spans, arrays[f"{split}/probs"])}
            records[split] = PolarityRecord(ids, probs)
    return records, json.loads(str(arrays["meta"]))
