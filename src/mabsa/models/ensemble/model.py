"""An ensemble of N trained models of one task, usable wherever a checkpoint is.

* taggers (jmasa, mate): each member scores every word of the post with its own tokenizer and
  encoder; the scores are averaged per word (over the members that kept the word after
  truncation) and decoded by Viterbi under the members' averaged CRF, i.e. the path that
  maximises the members' mean path score;
* classifiers (masc): the members' polarity probabilities are averaged.

Every member encodes the same posts, so features line up one to one (one per post for taggers,
one per given aspect for classifiers). Build one from checkpoints (nothing is trained here)::

    mabsa ensemble runs/t15-mate/seed1 runs/t15-mate/seed2 runs/t15-mate/seed3 --output checkpoints/t15-mate-x3

Checkpoint layout: ``config.json`` (``model_args.members`` = the members' run configs),
``model.safetensors`` (``members.<i>.*``) and member ``i``'s components under ``member<i>/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mabsa.data.records import Aspect, Post
from mabsa.errors import MabsaError
from mabsa.models.base import MabsaModel, get_model_class, register
from mabsa.models.config import ModelConfig
from mabsa.models.ensemble.config import EnsembleConfig
from mabsa.models.saving import load_model, save_model
from mabsa.modules.crf import mean_crf
from mabsa.modules.heads import mean_word_scores
from mabsa.modules.outputs import ModelOutput
from mabsa.processing.processor import EXTRACTION_TASKS


class EnsembleProcessor:
    """The first member's processor for batching; every feature also carries the other members'
    features of the same post or aspect (``Feature.member_features``)."""

    def __init__(self, processors: Sequence[Any]):
        self.members = list(processors)
        first = self.members[0]
        self.task, self.labels, self.scheme = first.task, first.labels, getattr(first, "scheme", None)

    @property
    def max_length(self) -> int:
        return min(p.max_length for p in self.members)

    @property
    def image_text(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t for p in self.members for t in p.image_text))

    @property
    def reads_image_texts(self) -> bool:
        return any(p.reads_image_texts for p in self.members)

    def encode(self, posts: Sequence[Post], with_labels: bool = True) -> list[Any]:
        per_member = [p.encode(posts, with_labels=with_labels) for p in self.members]
        first = per_member[0]
        for others in per_member[1:]:
            if [(f.post_index, f.aspect_index) for f in others] != [(f.post_index, f.aspect_index) for f in first]:
                raise MabsaError("ensemble members disagree on the features of the same posts")
        for k, feature in enumerate(first):
            feature.member_features = [others[k] for others in per_member[1:]]
        return first

    def collate(self, features: Sequence[Any]) -> dict[str, Any]:
        batch = self.members[0].collate(features)
        batch["member_batches"] = [
            p.collate([f.member_features[m] for f in features]) for m, p in enumerate(self.members[1:])
        ]
        return batch


@register("ensemble")
class Ensemble(MabsaModel):
    tasks = ("jmasa", "mate", "masc")
    config_class = EnsembleConfig
    composed = True

    def __init__(self, config: EnsembleConfig, task: str, members: Sequence[MabsaModel]):
        if len(members) < 2:
            raise MabsaError(f"an ensemble needs at least two members, got {len(members)}")
        labels = {tuple(m.processor.labels) for m in members}
        tasks = {m.task for m in members}
        if tasks != {task} or len(labels) != 1:
            raise MabsaError(
                f"ensemble members must share one task and label set; got tasks {sorted(tasks)} for a {task} ensemble"
            )
        self.tagger = task in EXTRACTION_TASKS
        need = "word_emissions" if self.tagger else "logits"
        unfit = sorted({m.name for m in members if not hasattr(m, need)})
        if unfit:
            raise MabsaError(f"ensemble: {unfit} expose no {need}() to average")
        super().__init__(config, task, EnsembleProcessor([m.processor for m in members]), None)
        self.members = nn.ModuleList(members)

    @property
    def member_models(self) -> list[Any]:
        return list(self.members)

    @classmethod
    def create(cls, args: Mapping[str, Any] | ModelConfig, task: str) -> Ensemble:
        raise MabsaError(
            "an ensemble is composed from trained checkpoints, not trained: mabsa ensemble DIR DIR ... --output DIR"
        )

    @classmethod
    def restore(cls, args: Mapping[str, Any] | ModelConfig, task: str, directory: str | Path) -> Ensemble:
        cls.check_task(task)
        config = EnsembleConfig.of(args)
        members = [
            get_model_class(m["model"]).restore(m["model_args"], m["task"], Path(directory) / f"member{i}")
            for i, m in enumerate(config.members)
        ]
        return cls(config, task, members)

    def save_components(self, directory: str | Path) -> None:
        for i, member in enumerate(self.member_models):
            member.save_components(Path(directory) / f"member{i}")

    def forward(self, batch: Mapping[str, Any]) -> ModelOutput:
        raise MabsaError("an ensemble is not trained as one model; train its members")

    def member_batches(self, batch: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        return [batch, *batch["member_batches"]]

    @torch.no_grad()
    def decode(self, batch: Mapping[str, Any]) -> list[list[Aspect]]:
        first = self.member_models[0]
        pairs = list(zip(self.member_models, self.member_batches(batch)))
        if not self.tagger:
            probs = torch.stack([m.logits(b).softmax(-1) for m, b in pairs]).mean(0)
            return first.aspects_from_probs(probs, batch)
        emissions = [m.word_emissions(b) for m, b in pairs]
        mean, kept = mean_word_scores(emissions, [b["word_mask"] for _, b in pairs])
        crf = mean_crf([m.head.crf.state_dict() for m in self.member_models]).to(emissions[0].device)
        return first.head.aspects(mean, batch, mask=kept, crf=crf)


def compose_ensemble(directories: Sequence[str | Path], output: str | Path) -> Path:
    """Write an ``ensemble`` checkpoint from trained checkpoints of one task."""
    loaded = [load_model(d) for d in directories]
    task = loaded[0][1]["task"]
    members = {
        "members": [
            {k: cfg[k] for k in ("model", "task", "model_args")} | {"source": str(d)}
            for (_, cfg), d in zip(loaded, directories)
        ]
    }
    ensemble = Ensemble(EnsembleConfig.from_dict(members), task, [m for m, _ in loaded])
    return save_model(ensemble, output)
