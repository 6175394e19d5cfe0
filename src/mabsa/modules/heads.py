"""The two output heads every method ends in, and the poolings they read.

* :class:`TaggingHead` (jmasa, mate): word states -> linear emissions -> BIO-constrained
  linear-chain CRF over the scheme's labels (7 for JMASA, 3 for MATE); decoded into spans.
* :class:`ClassificationHead` (masc): one pooled vector per given aspect -> polarity logits;
  decoded into the given aspect with its most probable polarity.

A model builds its representation (text-only, fused with the image, with a rationale...) and
hands it to one of these; an ensemble passes its members' mean emissions / probabilities to the
first member's head.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from mabsa.data.records import Aspect
from mabsa.modules.crf import CRF, bio_transition_constraints
from mabsa.modules.outputs import ModelOutput
from mabsa.processing.processor import POLARITIES
from mabsa.tagging import TagScheme, get_scheme, ids_to_tags, tags_to_aspects


def gather_positions(hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``hidden[b, positions[b, i]]`` -> ``(B, N, H)``."""
    index = positions.unsqueeze(-1).expand(-1, -1, hidden.size(-1))
    return hidden.gather(1, index)


def first_subwords(hidden: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
    """Each word's state: its first subword's (``batch["word_positions"]``), ``(B, N, H)``."""
    return gather_positions(hidden, batch["word_positions"])


def cls_and_aspect(hidden: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
    """``[h_CLS ; mean of the aspect's subword states]``, ``(B, 2H)``: the aspect's own states
    say which of several aspects is meant, which a small encoder's ``[CLS]`` alone blurs."""
    span = gather_positions(hidden, batch["aspect_positions"])
    mask = batch["aspect_mask"].unsqueeze(-1).to(span.dtype)
    span_mean = (span * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return torch.cat([hidden[:, 0], span_mean], dim=-1)


class TaggingHead(nn.Module):
    """Word states ``(B, N, width)`` -> dropout -> emissions -> CRF (loss and Viterbi spans) over
    the tag scheme of ``task`` (jmasa: BIO x polarity, 7 labels; mate: BIO, 3)."""

    def __init__(self, width: int, task: str, dropout: float):
        super().__init__()
        self.scheme = get_scheme(task)
        labels = list(self.scheme.labels)
        self.dropout = nn.Dropout(dropout)
        self.emissions = nn.Linear(width, len(labels))
        allowed, allowed_start = bio_transition_constraints(labels)
        self.crf = CRF(len(labels), allowed, allowed_start)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        return self.emissions(self.dropout(words))

    def loss(self, emissions: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        """The CRF's negative log-likelihood of ``batch["labels"]`` over its words."""
        return self.crf(emissions, batch["labels"], batch["word_mask"])

    def output(self, emissions: torch.Tensor, batch: Mapping[str, Any]) -> ModelOutput:
        """What a tagger's ``forward`` returns: the emissions, and the loss when labelled."""
        return ModelOutput(loss=self.loss(emissions, batch) if "labels" in batch else None, emissions=emissions)

    def aspects(
        self,
        emissions: torch.Tensor,
        batch: Mapping[str, Any],
        mask: torch.Tensor | None = None,
        crf: CRF | None = None,
    ) -> list[list[Aspect]]:
        """Viterbi spans of word ``emissions`` (under this head's CRF, or ``crf``: an ensemble
        passes its members' mean emissions and mean CRF), scored by their marginal probabilities."""
        crf = crf if crf is not None else self.crf
        mask = mask if mask is not None else batch["word_mask"]
        words = [(f.post.tokens, f.n_words) for f in batch["features"]]
        return viterbi_aspects(crf, emissions, mask, words, self.scheme)


def viterbi_aspects(
    crf: CRF, emissions: torch.Tensor, mask: torch.Tensor, words: Sequence[tuple[Sequence[str], int]], scheme: TagScheme
) -> list[list[Aspect]]:
    """The Viterbi spans of each row of word ``emissions`` ``(B, N, L)`` under ``crf``, scored by
    their marginal probabilities. ``words`` gives each row's post tokens and word count: words cut
    by truncation (beyond the row's unmasked length) are predicted ``O``."""
    paths = crf.decode(emissions, mask)
    probs = crf.marginals(emissions, mask)
    results = []
    for i, ((tokens, n_words), path) in enumerate(zip(words, paths)):
        chosen = probs[i, torch.arange(len(path)), torch.tensor(path, dtype=torch.long)].tolist()
        missing = n_words - len(path)
        tags = ids_to_tags(path, scheme) + ["O"] * missing
        results.append(tags_to_aspects(tokens, tags, scheme, chosen + [1.0] * missing))
    return results


def mean_word_scores(
    scores: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Several members' word scores ``(B, N_i, L)`` of the same posts, each word's averaged over
    the members whose mask ``(B, N_i)`` kept it (members may cut long posts at different
    lengths); with the mask of the words any member kept."""
    first = scores[0]
    width = max(s.shape[1] for s in scores)
    total = first.new_zeros(first.shape[0], width, first.shape[2])
    count = first.new_zeros(first.shape[0], width)
    for s, m in zip(scores, masks):
        m = m.to(s.dtype)
        total[:, : s.shape[1]] += s * m.unsqueeze(-1)
        count[:, : s.shape[1]] += m
    return total / count.clamp(min=1).unsqueeze(-1), count > 0


class ClassificationHead(nn.Module):
    """A pooled vector per given aspect ``(B, width)`` -> dropout -> polarity logits."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, len(POLARITIES))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(pooled))

    @staticmethod
    def output(logits: torch.Tensor, batch: Mapping[str, Any]) -> ModelOutput:
        """What a classifier's ``forward`` returns: the logits, and the loss when labelled."""
        loss = nn.functional.cross_entropy(logits, batch["labels"]) if "labels" in batch else None
        return ModelOutput(loss=loss, logits=logits)

    @staticmethod
    def aspects(probs: torch.Tensor, batch: Mapping[str, Any]) -> list[list[Aspect]]:
        """The given aspect of each feature with its most probable polarity (an ensemble passes
        the mean of its members' probabilities)."""
        best = probs.argmax(-1).tolist()
        results = []
        for feature, k, p in zip(batch["features"], best, probs.tolist()):
            a = feature.aspect
            results.append([Aspect(a.start, a.end, a.term, POLARITIES[k], score=float(p[k]))])
        return results
