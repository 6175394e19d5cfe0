"""IEA's Fine-Grained Aligner: [instruction, region interpretation, text] -> phrase span or none.

The aligner is the engine's ``text-crf`` model on the ``mate`` scheme (O, B, I), reading the
post as its first segment and "instruction + region interpretation" as its second
(``image_text: ["caption"]``), trained on FGCA (:mod:`mabsa.models.iea.fgca`) with the one training
loop::

    mabsa iea make-fgca --output data/fgca
    mabsa train --preset iea-aligner --dataset data/fgca --task mate \\
        --output checkpoints/iea-aligner

At inference the region's phrase is the highest-scoring predicted span (mean CRF marginal), or
none when the CRF tags no span.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mabsa.data.records import Post
from mabsa.models.iea.fgca import FgcaSample, aligner_query
from mabsa.models.prediction import predict_posts
from mabsa.models.saving import load_model

Span = tuple[int, int]
#: What a checkpoint directory needs to be rebuilt (copied into an IEA checkpoint).
ALIGNER_FILES = (
    "config.json",
    "model.safetensors",
    "processor_config.json",
    "tokenizer",
    "text_encoder",
    "metrics.json",
)


class Aligner:
    def __init__(self, model: Any, batch_size: int = 64):
        self.model, self.batch_size = model, batch_size
        self._memo: dict[tuple[tuple[str, ...], str], Span | None] = {}

    @classmethod
    def from_checkpoint(cls, directory: str | Path, batch_size: int = 64) -> Aligner:
        model, _ = load_model(directory, task="mate")
        return cls(model, batch_size)

    def align(self, pairs: Sequence[tuple[Sequence[str], str]]) -> list[Span | None]:
        """For each (post tokens, region interpretation): the phrase span or None."""
        keys = [(tuple(tokens), interp) for tokens, interp in pairs]
        todo = sorted({k for k in keys if k not in self._memo})
        if todo:
            posts = [
                Post(id=f"q{i}", tokens=tokens, caption=aligner_query(interp))
                for i, (tokens, interp) in enumerate(todo)
            ]
            preds = predict_posts(self.model, posts, self.batch_size).posts
            for key, pred in zip(todo, preds):
                best = max(pred.aspects, key=lambda a: a.score or 0.0, default=None)
                self._memo[key] = None if best is None else best.span
        return [self._memo[k] for k in keys]

    def save(self, directory: str | Path, source: str | Path) -> None:
        """Copy the aligner checkpoint ``source`` (its weights and rebuild files) to ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name in ALIGNER_FILES:
            src = Path(source) / name
            if src.is_dir():
                shutil.copytree(src, directory / name, dirs_exist_ok=True)
            elif src.is_file():
                shutil.copy2(src, directory / name)


def span_accuracy(samples: Sequence[FgcaSample], predicted: Sequence[Span | None]) -> dict[str, Any]:
    """Exact-match accuracy of the region's span (none counts as a label)."""
    right = [
        tuple(p) == tuple(s.span) if (p and s.span) else (p is None and s.span is None)
        for s, p in zip(samples, predicted)
    ]
    pos = [r for r, s in zip(right, samples) if s.span is not None]
    neg = [r for r, s in zip(right, samples) if s.span is None]
    return {
        "span_accuracy": sum(right) / max(1, len(right)),
        "n": len(right),
        "accuracy_with_phrase": sum(pos) / max(1, len(pos)),
        "n_with_phrase": len(pos),
        "accuracy_none": sum(neg) / max(1, len(neg)),
        "n_none": len(neg),
    }


def evaluate_aligner(aligner: Aligner, samples: Sequence[FgcaSample]) -> dict[str, Any]:
    predicted = aligner.align([(s.tokens, s.interpretation) for s in samples])
    return span_accuracy(samples, predicted)
