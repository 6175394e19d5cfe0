"""JMASA as a two-stage pipeline: a term extractor (any mate/jmasa checkpoint, e.g. ``text-crf``)
finds the aspect terms, then FITE classifies the polarity of each term.

Registered as the model ``fite-pipeline`` (task ``jmasa``), so ``mabsa evaluate`` and ``mabsa
predict`` / :func:`mabsa.load` run both stages as one predictor. Build one from two trained
checkpoints with :func:`compose_pipeline` (nothing is trained here)::

    from mabsa.models.fite.pipeline import compose_pipeline
    compose_pipeline("runs/t15-mate/seed1", "runs/t15-fite/seed1", "checkpoints/t15-fite-jmasa")

Leakage rule: the term stage reads ``Post.extraction_input()`` (the engine's extraction
processor: no per-aspect text); the polarity stage reads the whole post (its shipped per-aspect
face description included, as FITE does for MASC) but only for the terms the first stage found,
and cannot add or drop a term. A predicted aspect's ``score`` is the product of the extractor's
span confidence and FITE's polarity probability; its ``rationale`` is the face description FITE
read.

Checkpoint layout: the usual ``config.json`` (``model_args`` = the two stages' run configs) and
``model.safetensors`` (``terms.*`` and ``polarity.*`` weights), and each stage's components
under ``terms/`` and ``polarity/``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from mabsa.data.records import Aspect, Post
from mabsa.errors import MabsaError
from mabsa.models import saving as ckpt
from mabsa.models.base import MabsaModel, get_model_class, register
from mabsa.models.config import ModelConfig

TERM_TASKS = ("mate", "jmasa")
STAGES = ("terms", "polarity")


class PipelineProcessor:
    """The term extractor's processor; each feature also keeps the post the polarity stage
    reads (``Feature.polarity_input``: the input post without aspects)."""

    task = "jmasa"

    def __init__(self, terms: Any, polarity: Any):
        self.terms, self.polarity = terms, polarity
        self.scheme = terms.scheme

    @property
    def max_length(self) -> int:
        return self.terms.max_length

    @property
    def image_text(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.terms.image_text + self.polarity.image_text))

    @property
    def reads_image_texts(self) -> bool:  # a predictor perceives a raw image for either stage
        return self.terms.reads_image_texts or self.polarity.reads_image_texts

    @property
    def labels(self) -> tuple[str, ...]:
        return self.terms.labels

    def encode(self, posts: Sequence[Post], with_labels: bool = True) -> list[Any]:
        features = self.terms.encode(posts, with_labels=with_labels)
        for f in features:
            f.polarity_input = posts[f.post_index].with_aspects(())
        return features

    def collate(self, features: Sequence[Any]) -> dict[str, Any]:
        return self.terms.collate(features)


@dataclasses.dataclass(frozen=True)
class PipelineConfig(ModelConfig):
    """The two stages' run configs (``model``, ``task``, ``model_args``, ``source``)."""

    terms: dict[str, Any] = dataclasses.field(default_factory=dict)
    polarity: dict[str, Any] = dataclasses.field(default_factory=dict)


@register("fite-pipeline")
class FitePipeline(MabsaModel):
    tasks = ("jmasa",)
    config_class = PipelineConfig

    def __init__(self, config: PipelineConfig, task: str, terms: MabsaModel, polarity: MabsaModel):
        if terms.task not in TERM_TASKS:
            raise MabsaError(
                f"fite-pipeline: the term stage must be a {' or '.join(TERM_TASKS)} model, got a {terms.task} model"
            )
        if polarity.task != "masc":
            raise MabsaError(f"fite-pipeline: the polarity stage must be a masc model, got {polarity.task}")
        super().__init__(config, task, PipelineProcessor(terms.processor, polarity.processor), None)
        self.terms, self.polarity = terms, polarity

    @classmethod
    def create(cls, args: Mapping[str, Any] | ModelConfig, task: str) -> FitePipeline:
        raise MabsaError(
            "fite-pipeline is composed from two trained checkpoints, not trained: train "
            "a mate model (mabsa train --model text-crf --task mate) and a fite model "
            "(--task masc), then mabsa.models.fite.pipeline.compose_pipeline(...)"
        )

    @classmethod
    def restore(cls, args: Mapping[str, Any] | ModelConfig, task: str, directory: str | Path) -> FitePipeline:
        cls.check_task(task)
        config = PipelineConfig.of(args)
        stages = [
            get_model_class(getattr(config, s)["model"]).restore(
                getattr(config, s)["model_args"], getattr(config, s)["task"], Path(directory) / s
            )
            for s in STAGES
        ]
        return cls(config, task, *stages)

    def save_components(self, directory: str | Path) -> None:
        for s in STAGES:
            getattr(self, s).save_components(Path(directory) / s)

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        raise MabsaError("fite-pipeline is not trained as one model; train its two stages")

    def decode(self, batch: Mapping[str, Any]) -> list[list[Aspect]]:
        found = [[replace(a, polarity=None) for a in aspects] for aspects in self.terms.decode(batch)]
        posts = [f.polarity_input.with_aspects(a) for f, a in zip(batch["features"], found)]
        classified = {}  # (post, aspect) -> FITE's aspect
        features = self.polarity.processor.encode(posts, with_labels=False)
        if features:
            predicted = self.polarity.decode(self.polarity.processor.collate(features))
            classified = {(f.post_index, f.aspect_index): p[0] for f, p in zip(features, predicted)}
        out = []
        for i, aspects in enumerate(found):
            row = []
            for j, a in enumerate(aspects):
                p = classified[(i, j)]
                score = (a.score if a.score is not None else 1.0) * (p.score if p.score is not None else 1.0)
                row.append(replace(a, polarity=p.polarity, score=score, rationale=p.rationale))
            out.append(row)
        return out


def compose_pipeline(terms_dir: str | Path, polarity_dir: str | Path, output: str | Path) -> Path:
    """Write a ``fite-pipeline`` checkpoint from a mate/jmasa checkpoint and a fite checkpoint."""
    terms, terms_cfg = ckpt.load_model(terms_dir)
    polarity, polarity_cfg = ckpt.load_model(polarity_dir, task="masc")
    args = {
        s: {k: cfg[k] for k in ("model", "task", "model_args")} | {"source": str(src)}
        for s, cfg, src in (("terms", terms_cfg, terms_dir), ("polarity", polarity_cfg, polarity_dir))
    }
    model = FitePipeline(PipelineConfig.from_dict(args), "jmasa", terms, polarity)
    return ckpt.save_model(model, output)
