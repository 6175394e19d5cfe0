"""Perception: image -> faces, caption, labels, regions, interpretations, rationales (cached).

Methods consume images only through this layer: :class:`Perceiver` for real images,
:class:`StandInPerceiver` for the shipped benchmarks' image-derived texts. Both return a
:class:`Perception` (per-image evidence); per-aspect evidence is asked for separately.
"""

from mabsa.perception.errors import BackendSpecError, EndpointError
from mabsa.perception.perceiver import Perceiver, PerceptionConfig, use_threads
from mabsa.perception.records import AspectEvidence, Caption, Perception, Region
from mabsa.perception.regions import RegionConfig
from mabsa.perception.standin import StandInPerceiver

__all__ = [
    "AspectEvidence",
    "BackendSpecError",
    "Caption",
    "EndpointError",
    "Perception",
    "PerceptionConfig",
    "Perceiver",
    "Region",
    "RegionConfig",
    "StandInPerceiver",
    "use_threads",
]
