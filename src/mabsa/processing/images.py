"""Load any image a user points us at into 8-bit RGB, or fail with one clear error.

Handles JPEG/PNG/WebP/GIF (first frame), EXIF orientation, palette/alpha/grayscale/16-bit/CMYK
modes, and refuses images above a pixel limit before decoding them (decompression bombs).
Every failure is an :class:`ImageLoadError` naming the file.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mabsa.data.records import Post
from mabsa.processing.errors import ImageLoadError

#: Default pixel limit (w*h): 64 MP covers any photo a phone makes and stops bombs early.
MAX_PIXELS = 64_000_000

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class LoadedImage:
    """An RGB image plus the hash of the bytes it came from (the cache key)."""

    rgb: Image.Image  # mode "RGB"
    digest: str  # sha256 hex of the encoded bytes (or of the raw pixels for arrays)
    name: str  # file name or "<bytes>" / "<array>", for messages and output

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.size

    def array(self) -> np.ndarray:
        """``[H, W, 3]`` uint8."""
        return np.asarray(self.rgb)


#: Anything :func:`load_image` takes (a loaded image passes through).
ImageSource = str | Path | bytes | Image.Image | np.ndarray | LoadedImage


def resolve_image(image: str | None, image_root: str | Path | None = None) -> Path | None:
    """A post's ``image`` field as an existing file: the path as given (``--image ./photo.jpg``),
    else a relative name under ``image_root`` (datasets store bare names such as
    ``1860693.jpg``); ``None`` when there is no such file."""
    if not image:
        return None
    path = Path(image).expanduser()
    if not path.is_file() and not path.is_absolute() and image_root:
        path = Path(image_root).expanduser() / path
    return path if path.is_file() else None


def post_image(post: Post, image_root: str | Path | None = None) -> LoadedImage | Path | None:
    """The image a post refers to, as ``load_image`` takes it: the decoded image the caller
    handed over (``Post.decoded_image``), else its file (:func:`resolve_image`); ``None``
    when it has neither."""
    if isinstance(post.decoded_image, LoadedImage):
        return post.decoded_image
    return resolve_image(post.image, image_root)


def bytes_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_image(source: ImageSource, max_pixels: int = MAX_PIXELS, name: str | None = None) -> LoadedImage:
    """Decode ``source`` (path, encoded bytes, PIL image or HxW[x3|4] uint8 array) to RGB."""
    if isinstance(source, LoadedImage):
        return source
    if isinstance(source, Image.Image):
        rgb = to_rgb(source, name or "<image>")
        return LoadedImage(rgb, bytes_digest(_pixel_bytes(rgb)), name or "<image>")
    if isinstance(source, np.ndarray):
        rgb = to_rgb(_array_to_pil(source, name or "<array>"), name or "<array>")
        return LoadedImage(rgb, bytes_digest(_pixel_bytes(rgb)), name or "<array>")
    if isinstance(source, (bytes, bytearray)):
        data, label = bytes(source), name or "<bytes>"
    else:
        path = Path(source)
        label = name or str(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageLoadError(label, "no such file") from None
        except IsADirectoryError:
            raise ImageLoadError(label, "is a directory, not an image file") from None
        except OSError as e:
            raise ImageLoadError(label, f"cannot read file ({e.strerror or e})") from None
    return LoadedImage(decode_image(data, label, max_pixels), bytes_digest(data), label)


def decode_image(data: bytes, label: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    if not data:
        raise ImageLoadError(label, "file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data))
            w, h = img.size  # header only: nothing is decoded yet
            if w * h > max_pixels:
                raise ImageLoadError(
                    label,
                    f"{w}x{h} = {w * h} pixels exceeds the limit of {max_pixels} "
                    "(raise max_pixels if the image is trusted)",
                )
            if getattr(img, "is_animated", False):
                img.seek(0)  # first frame of a GIF / animated WebP
            img.load()
            img = ImageOps.exif_transpose(img)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(label, "not a recognised image format (corrupt or not an image)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageLoadError(label, f"decompression bomb guard: {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageLoadError(label, f"corrupt or truncated image data ({e})") from None
    return to_rgb(img, label)


def to_rgb(img: Image.Image, label: str = "<image>") -> Image.Image:
    """Any PIL mode -> 8-bit RGB; transparency is composited on white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        scaled = np.zeros_like(a) if hi <= lo else (a - lo) * (255.0 / (hi - lo))
        img, mode = Image.fromarray(scaled.round().astype(np.uint8), "L"), "L"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    except (ValueError, OSError) as e:
        raise ImageLoadError(label, f"unsupported colour mode {mode!r} ({e})") from None


def _array_to_pil(a: np.ndarray, label: str) -> Image.Image:
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or 0 in a.shape:
        raise ImageLoadError(label, f"array of shape {a.shape} is not an HxW, HxWx3 or HxWx4 image")
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating) and a.size and a.min() >= 0 and a.max() <= 1:
            a = a * 255.0
        a = np.clip(a, 0, 255).round().astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(a))


def _pixel_bytes(rgb: Image.Image) -> bytes:
    return f"{rgb.size}".encode() + rgb.tobytes()


def iter_image_files(paths: list[str | Path]) -> list[Path]:
    """Expand files and folders (non-recursive into hidden entries) into image files, sorted."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(
                sorted(
                    f
                    for f in p.rglob("*")
                    if f.is_file()
                    and f.suffix.lower() in IMAGE_SUFFIXES
                    and not any(part.startswith(".") for part in f.relative_to(p).parts)
                )
            )
        else:
            out.append(p)
    return out
