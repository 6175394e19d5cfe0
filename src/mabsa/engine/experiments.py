"""Experiments as data: the datasets, the papers' numbers and the run grids the benchmark scripts
train, each declared once. ``benchmarks/*.py`` are thin command lines over these tables and the
engine; a new experiment is a new entry here, not a new script.

A run is ``(model, task, dataset, presets, --set items)``, exactly what ``mabsa train`` takes:
:func:`train_command` prints its command line, so every number in docs/results.md carries the
command that reproduces it.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

DATASETS = {"t15": "twitter2015", "t17": "twitter2017"}

#: Published JMASA / MATE / MASC numbers on (T15, T17) the quality work measures itself against.
PAPER_JMASA = {
    "CLAMP": (67.7, 68.9),
    "AoM": (68.6, 69.7),
    "IEA": (71.7, 72.1),
}
#: Issue #26's required and stretch targets (mean of 3 seeds, %).
QUALITY_TARGETS = {
    "jmasa_f1": {"required": (66.0, 66.0), "stretch": (68.9, 68.9)},
    "mate_f1": {"required": (85.0, 91.0)},
    "masc_acc": {"required": (80.5, 75.0)},
}


@dataclass(frozen=True)
class Run:
    """One trained configuration (any number of seeds)."""

    model: str
    task: str
    dataset: str
    presets: tuple[str, ...] = ()
    sets: tuple[str, ...] = ()
    #: what the run is for, in the report
    note: str = ""
    #: a dev-only sweep point (its test scores are never reported) or a final configuration
    sweep: bool = True
    tags: tuple[str, ...] = field(default_factory=tuple)

    def command(self, seeds: Sequence[int], output: str) -> str:
        return train_command(self.model, self.dataset, self.task, self.presets, self.sets, seeds, output)


def train_command(
    model: str,
    dataset: str,
    task: str,
    presets: Sequence[str],
    sets: Sequence[str],
    seeds: Sequence[int],
    output: str,
) -> str:
    """The ``mabsa train`` command line of a run."""
    parts = ["mabsa", "train", "--model", model, "--dataset", dataset, "--task", task]
    for preset in presets:
        parts += ["--preset", preset]
    for item in sets:
        parts += ["--set", item]
    parts += ["--seeds", *map(str, seeds), "--output", output]
    return shlex.join(parts)


GEMMA = "model_args.encoder=embeddinggemma-300m"
MPNET = "model_args.encoder=mpnet-base"
TEXT_ONLY = "model_args.image_text=[]"
CAPTION = 'model_args.image_text=["caption"]'
ONE_THREAD = "train.num_threads=1"
#: a base-size encoder's budget: early stopping picks the epoch, mid-epoch saves make it resumable
BASE_BUDGET = ("train.epochs=6", "train.patience=2", "train.save_every_steps=25", ONE_THREAD)

#: Issue #26's dev sweep (T15, seed 1): the recipe per encoder x task, chosen on dev and reused on
#: T17 unchanged. Names: dataset-task-encoder-recipe.
QUALITY_RUNS: dict[str, Run] = {
    "t15-jmasa-gemma-frozen-lr3e-5": Run(
        "text-crf",
        "jmasa",
        "twitter2015",
        sets=(GEMMA, TEXT_ONLY, "model_args.freeze_embeddings=true", "train.lr=3e-5", *BASE_BUDGET),
        note="EmbeddingGemma tagger, embedding table frozen, lr 3e-5",
    ),
    "t15-mate-gemma-frozen-lr3e-5": Run(
        "text-crf",
        "mate",
        "twitter2015",
        sets=(GEMMA, TEXT_ONLY, "model_args.freeze_embeddings=true", "train.lr=3e-5", *BASE_BUDGET),
        note="the term stage of a pipeline: same recipe, MATE labels",
    ),
    "t15-mate-gemma-lr3e-5": Run(
        "text-crf",
        "mate",
        "twitter2015",
        sets=(GEMMA, TEXT_ONLY, "train.lr=3e-5", *BASE_BUDGET),
        note="embedding table trained too",
    ),
    "t15-mate-gemma-frozen-lr5e-5-lld0.9": Run(
        "text-crf",
        "mate",
        "twitter2015",
        sets=(
            GEMMA,
            TEXT_ONLY,
            "model_args.freeze_embeddings=true",
            "train.lr=5e-5",
            "train.layer_decay=0.9",
            *BASE_BUDGET,
        ),
        note="higher top-layer rate, layer-wise decay 0.9",
    ),
    "t15-mate-gemma-frozen-lr3e-5-caption": Run(
        "text-crf",
        "mate",
        "twitter2015",
        sets=(GEMMA, CAPTION, "model_args.freeze_embeddings=true", "train.lr=3e-5", *BASE_BUDGET),
        note="the caption as a second segment (the image's stand-in)",
    ),
    "t15-masc-gemma-frozen-lr3e-5": Run(
        "text-cls",
        "masc",
        "twitter2015",
        sets=(GEMMA, TEXT_ONLY, "model_args.freeze_embeddings=true", "train.lr=3e-5", *BASE_BUDGET),
        note="the polarity stage: text-only classifier",
    ),
    "t15-masc-mpnet-lr8e-5": Run(
        "text-cls",
        "masc",
        "twitter2015",
        sets=(MPNET, TEXT_ONLY, "train.lr=8e-5", *BASE_BUDGET),
        note="the polarity stage on MPNet-base (Gemma's classifier trailed MiniLM on dev)",
    ),
    "t15-masc-mpnet-lr8e-5-caption": Run(
        "text-cls",
        "masc",
        "twitter2015",
        sets=(MPNET, CAPTION, "train.lr=8e-5", *BASE_BUDGET),
        note="MPNet polarity stage with the caption as a second segment (no gold-keyed text)",
    ),
}
