"""The ensemble's config: its members' run configs."""

from __future__ import annotations

import dataclasses
from typing import Any

from mabsa.models.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class EnsembleConfig(ModelConfig):
    #: each member's ``model``, ``task``, ``model_args`` and ``source`` (its checkpoint)
    members: tuple[dict[str, Any], ...] = ()
