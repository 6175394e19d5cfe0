"""JMASA as a two-stage pipeline: a term extractor (any mate/jmasa model, or an ensemble of them)
finds the aspect terms, then a polarity classifier (any masc model, or an ensemble) classifies
exactly those terms: it can never add, drop or move one.

Registered as ``pipeline`` (task ``jmasa``), so ``mabsa evaluate``, ``mabsa predict``,
``mabsa serve`` and :func:`mabsa.load` run both stages as one model. Build one from two trained
checkpoints (nothing is trained here)::

    mabsa pipeline --terms runs/t15-mate/seed1 --polarity runs/t15-fite/seed1 --output checkpoints/t15-jmasa

Leakage rule: the term stage reads ``Post.extraction_input()``; the polarity stage reads, by
default (``polarity_input="extraction"``), the same post view plus the terms found, so every
per-aspect text it uses is one the toolkit made for a *predicted* term (FITE's own face-to-aspect
matching, a rationale generator). A predicted aspect's ``score`` is the product of the
extractor's span confidence and the classifier's polarity probability; its ``rationale`` is
whatever evidence the classifier reports.

Checkpoint layout: ``config.json`` (``model_args`` = the two stages' run configs),
``model.safetensors`` (``terms.*`` and ``polarity.*`` weights) and each stage's components under
``terms/`` and ``polarity/``. ``fite-pipeline`` (checkpoints written before the generic pipeline)
is the same model reading the whole post (``polarity_input="post"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from mabsa.data.records import Aspect, Post
from mabsa.errors import ConfigError, MabsaError
from mabsa.models.base import MabsaModel, get_model_class, register
from mabsa.models.config import ModelConfig
from mabsa.models.pipeline.config import POLARITY_INPUTS, FitePipelineConfig, PipelineConfig
from mabsa.models.prediction import predict_posts
from mabsa.models.saving import load_model, save_model
from mabsa.modules.outputs import ModelOutput

TERM_TASKS = ("mate", "jmasa")
STAGES = ("terms", "polarity")


def polarity_view(post: Post, polarity_input: str) -> Post:
    """The post the polarity stage reads (before the found terms are added)."""
    return post.extraction_input() if polarity_input == "extraction" else post.with_aspects(())


def classify_terms(polarity: MabsaModel, posts: Sequence[Post]) -> list[list[Aspect]]:
    """The polarity model's aspect for each given term of each post (same order, same spans)."""
    features = polarity.processor.encode(posts, with_labels=False)
    classified: dict[tuple[int, int], Aspect] = {}
    if features:
        predicted = polarity.decode(polarity.processor.collate(features))
        classified = {(f.post_index, f.aspect_index): p[0] for f, p in zip(features, predicted)}
    return [[classified[(i, j)] for j in range(len(post.aspects))] for i, post in enumerate(posts)]


def combine(found: Aspect, classified: Aspect) -> Aspect:
    """The found span with the classifier's polarity; the two confidences multiplied."""
    score = (found.score if found.score is not None else 1.0) * (
        classified.score if classified.score is not None else 1.0
    )
    return replace(found, polarity=classified.polarity, score=score, rationale=classified.rationale)


class PipelineProcessor:
    """The term extractor's processor; each feature also keeps the post view the polarity stage
    reads (``Feature.polarity_input``)."""

    task = "jmasa"

    def __init__(self, terms: Any, polarity: Any, polarity_input: str):
        self.terms, self.polarity, self.polarity_input = terms, polarity, polarity_input
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
            f.polarity_input = polarity_view(posts[f.post_index], self.polarity_input)
        return features

    def collate(self, features: Sequence[Any]) -> dict[str, Any]:
        return self.terms.collate(features)


@register("pipeline")
class Pipeline(MabsaModel):
    tasks = ("jmasa",)
    config_class = PipelineConfig
    composed = True

    def __init__(self, config: PipelineConfig, task: str, terms: MabsaModel, polarity: MabsaModel):
        if terms.task not in TERM_TASKS:
            raise MabsaError(
                f"{self.name}: the term stage must be a {' or '.join(TERM_TASKS)} model, got a {terms.task} model"
            )
        if polarity.task != "masc":
            raise MabsaError(f"{self.name}: the polarity stage must be a masc model, got {polarity.task}")
        if config.polarity_input not in POLARITY_INPUTS:
            raise ConfigError(
                f"model_args.polarity_input: expected one of {POLARITY_INPUTS}, got {config.polarity_input!r}"
            )
        processor = PipelineProcessor(terms.processor, polarity.processor, config.polarity_input)
        super().__init__(config, task, processor, None)
        self.terms, self.polarity = terms, polarity

    @classmethod
    def create(cls, args: Mapping[str, Any] | ModelConfig, task: str) -> Pipeline:
        raise MabsaError(
            f"{cls.name} is composed from two trained checkpoints, not trained: train a mate model "
            "(mabsa train --model text-crf --task mate) and a masc model (--task masc), then "
            "mabsa pipeline --terms DIR --polarity DIR --output DIR"
        )

    @classmethod
    def restore(cls, args: Mapping[str, Any] | ModelConfig, task: str, directory: str | Path) -> Pipeline:
        cls.check_task(task)
        config = cls.config_class.of(args)
        stages = []
        for s in STAGES:
            stage = getattr(config, s)
            stages.append(
                get_model_class(stage["model"]).restore(stage["model_args"], stage["task"], Path(directory) / s)
            )
        return cls(config, task, *stages)

    def save_components(self, directory: str | Path) -> None:
        for s in STAGES:
            getattr(self, s).save_components(Path(directory) / s)

    def forward(self, batch: Mapping[str, Any]) -> ModelOutput:
        raise MabsaError(f"{self.name} is not trained as one model; train its two stages")

    def decode(self, batch: Mapping[str, Any]) -> list[list[Aspect]]:
        found = [[replace(a, polarity=None) for a in aspects] for aspects in self.terms.decode(batch)]
        posts = [f.polarity_input.with_aspects(a) for f, a in zip(batch["features"], found)]
        return [
            [combine(a, c) for a, c in zip(row, classified)]
            for row, classified in zip(found, classify_terms(self.polarity, posts))
        ]


@register("fite-pipeline")
class FitePipeline(Pipeline):
    """Checkpoints composed before the generic pipeline (a MATE model, then FITE): the polarity
    stage reads the whole post, shipped per-aspect face description included."""

    config_class = FitePipelineConfig


def compose_pipeline(
    terms_dir: str | Path, polarity_dir: str | Path, output: str | Path, polarity_input: str = "extraction"
) -> Path:
    """Write a ``pipeline`` checkpoint from a mate/jmasa checkpoint and a masc checkpoint."""
    terms, terms_cfg = load_model(terms_dir)
    polarity, polarity_cfg = load_model(polarity_dir, task="masc")
    stages = {
        s: {k: cfg[k] for k in ("model", "task", "model_args")} | {"source": str(src)}
        for s, cfg, src in (("terms", terms_cfg, terms_dir), ("polarity", polarity_cfg, polarity_dir))
    }
    config = PipelineConfig.from_dict({**stages, "polarity_input": polarity_input})
    return save_model(Pipeline(config, "jmasa", terms, polarity), output)


def predict_two_stage(
    terms: MabsaModel,
    polarity: MabsaModel,
    posts: Sequence[Post],
    term_rationale: Callable[[Post, Aspect], Any] | None = None,
    batch_size: int = 64,
) -> tuple[list[Post], dict[str, int]]:
    """The pipeline over whole posts, with a hook the benchmarks use for their labelled rows:
    ``term_rationale(post, term)`` gives the polarity stage a rationale for a found term. Returns
    the predicted posts and counts (terms, terms given a rationale)."""
    found = predict_posts(terms, [p.extraction_input() for p in posts], batch_size).posts
    staged, n_terms, n_with = [], 0, 0
    for post, predicted in zip(posts, found):
        aspects = []
        for a in predicted.aspects:
            r = term_rationale(post, a) if term_rationale is not None else None
            n_terms += 1
            n_with += r is not None
            aspects.append(Aspect(a.start, a.end, a.term, score=a.score, rationale=r))
        staged.append(post.extraction_input().with_aspects(aspects))
    classified = predict_posts(polarity, staged, batch_size).posts
    out = [
        post.with_aspects([replace(combine(a, c), rationale=None) for a, c in zip(t.aspects, p.aspects)])
        for post, t, p in zip(posts, staged, classified)
    ]
    return out, {"terms": n_terms, "terms_with_rationale": n_with}
