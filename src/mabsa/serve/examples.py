"""Example posts for the page, with photos that scikit-image ships (no files of our own)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Example:
    name: str  # also the scikit-image photo: skimage.data.<name>()
    text: str


EXAMPLES = (
    Example("astronaut", "RT @ NASA : Eileen Collins smiles before the launch , so proud of her and # NASA today"),
    Example("coffee", "This espresso from Blue Bottle Coffee was awful and the service was slow"),
    Example("chelsea", "Chelsea the cat slept on my keyboard all day , best cat in London"),
)


@lru_cache(maxsize=len(EXAMPLES))
def example_jpeg(name: str) -> bytes | None:
    if name not in {e.name for e in EXAMPLES}:
        return None
    from PIL import Image
    from skimage import data

    out = io.BytesIO()
    Image.fromarray(getattr(data, name)()).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()
