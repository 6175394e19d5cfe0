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


#: scikit-image's colour photos that load offline (benchmarks draw distinct variants of them).
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")


def distinct_photos(n: int, seed: int = 0) -> list[bytes]:
    """``n`` JPEGs with pairwise different bytes, for benchmarks that must not hit a cache:
    random crops (50-100% of each side) of scikit-image's photos, flipped half the time, with the
    longer side resized to 400-800 px (the size of most social-media photos)."""
    import hashlib

    import numpy as np
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(seed)
    sources = [getattr(data, name)() for name in PHOTOS]
    out: list[bytes] = []
    seen: set[str] = set()
    while len(out) < n:
        pixels = sources[len(out) % len(sources)]
        h, w = pixels.shape[:2]
        ch, cw = int(h * rng.uniform(0.5, 1)), int(w * rng.uniform(0.5, 1))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        image = Image.fromarray(pixels[y : y + ch, x : x + cw])
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        scale = rng.uniform(400, 800) / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        digest = hashlib.sha256(buffer.getvalue()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            out.append(buffer.getvalue())
    return out
