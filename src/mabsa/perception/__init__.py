"""Perception: image -> faces, caption, labels, regions, interpretations, rationales (cached).

Methods consume images only through this layer: :class:`Perceiver` for real images,
:class:`StandInPerceiver` for the shipped benchmarks' image-derived texts. Both return a
:class:`Perception` (per-image evidence); per-aspect evidence is asked for separately.
"""

from mabsa.perception.errors import BackendSpecError, EndpointError, ImageLoadError, LeakageError
from mabsa.perception.faces import describe_face, describe_faces
from mabsa.perception.image import LoadedImage, load_image
from mabsa.perception.perceiver import PerceptionConfig, Perceiver
from mabsa.perception.records import AspectEvidence, Caption, Perception, Region
from mabsa.perception.regions import RegionConfig
from mabsa.perception.standin import StandInPerceiver

__all__ = [
    "AspectEvidence", "BackendSpecError", "Caption", "EndpointError", "ImageLoadError", "LeakageError",
    "LoadedImage", "Perception", "PerceptionConfig", "Perceiver", "Region", "RegionConfig",
    "StandInPerceiver", "describe_face", "describe_faces", "load_image",
]
