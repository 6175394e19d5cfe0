"""The pipeline's config: the two stages' run configs, and what the polarity stage reads."""

from __future__ import annotations

import dataclasses
from typing import Any

from mabsa.models.config import ModelConfig

#: What the polarity stage reads of a post besides the terms it is given:
#: "extraction" - the post without gold aspects and without shipped per-aspect texts (they were
#:     built with the gold aspects): only what the toolkit computes for the *predicted* terms;
#: "post" - the whole post, shipped per-aspect face description included (the old fite-pipeline
#:     rows; never a headline: that description names the gold aspect, not the found term).
POLARITY_INPUTS = ("extraction", "post")


@dataclasses.dataclass(frozen=True)
class PipelineConfig(ModelConfig):
    #: each stage's ``model``, ``task``, ``model_args`` and ``source`` (the checkpoint it came from)
    terms: dict[str, Any] = dataclasses.field(default_factory=dict)
    polarity: dict[str, Any] = dataclasses.field(default_factory=dict)
    polarity_input: str = "extraction"


@dataclasses.dataclass(frozen=True)
class FitePipelineConfig(PipelineConfig):
    """``fite-pipeline`` checkpoints (written before the generic pipeline) read the whole post."""

    polarity_input: str = "post"
