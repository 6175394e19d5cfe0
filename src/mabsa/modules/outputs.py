"""What a model's ``forward`` hands the trainer: one typed record instead of a loose dict, so a
missing loss or a misspelt key is an error where it happens."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ModelOutput:
    #: The training objective; ``None`` when the batch has no labels.
    loss: torch.Tensor | None = None
    #: Taggers: each word's label scores ``(B, N, labels)``, before the CRF.
    emissions: torch.Tensor | None = None
    #: Classifiers: each given aspect's polarity scores ``(B, 3)``, before the softmax.
    logits: torch.Tensor | None = None
    #: The named parts of a composite loss (CLAMP's CRF, CLS, GCL, WRA), detached, for logs.
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
