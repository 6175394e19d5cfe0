import io

import numpy as np
import pytest
from PIL import Image

from mabsa.errors import MabsaError
from mabsa.processing.errors import ImageLoadError
from mabsa.processing.images import iter_image_files, load_image


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_formats_decode_to_rgb_of_the_right_colour(tmp_path, fmt):
    path = tmp_path / f"red.{fmt.lower()}"
    path.write_bytes(encode(Image.new("RGB", (40, 30), (220, 20, 20)), fmt))
    img = load_image(path)
    assert img.rgb.mode == "RGB" and img.size == (40, 30)
    r, g, b = img.array().reshape(-1, 3).mean(0)
    assert r > 180 and g < 60 and b < 60
    assert len(img.digest) == 64 and img.name == str(path)


def test_gif_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in [(0, 0, 255), (255, 255, 0)]]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    px = load_image(buf.getvalue()).array()
    assert px[..., 2].mean() > 200 and px[..., 0].mean() < 50  # blue, not yellow


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 20, 20))  # white left half
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    out = load_image(encode(img, "JPEG", exif=exif)).array()
    assert out.shape[:2] == (40, 20)  # now portrait
    assert out[:20].mean() > 200 and out[20:].mean() < 50  # white half on top


def test_modes_rgba_grayscale_cmyk_palette_16bit():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))  # fully transparent -> white
    assert (load_image(encode(rgba, "PNG")).array() == 255).all()
    gray = Image.new("L", (4, 4), 100)
    assert (load_image(encode(gray, "PNG")).array() == 100).all()
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # red
    px = load_image(encode(cmyk, "JPEG")).array()[0, 0]
    assert px[0] > 200 and px[1] < 60
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([0, 255, 0] + [0] * 765)
    assert tuple(load_image(encode(pal, "PNG")).array()[0, 0]) == (0, 255, 0)
    deep = Image.fromarray(np.array([[0, 65535]], dtype=np.uint16))
    assert load_image(encode(deep, "PNG")).array()[0].tolist() == [[0, 0, 0], [255, 255, 255]]


def test_tiny_and_arrays_and_pil():
    assert load_image(encode(Image.new("RGB", (1, 1), (5, 6, 7)), "PNG")).array().tolist() == [[[5, 6, 7]]]
    arr = np.zeros((3, 5, 4), np.uint8)
    assert load_image(arr).size == (5, 3)
    assert load_image(np.ones((2, 2), np.float32)).array().max() == 255
    assert load_image(Image.new("LA", (2, 2))).rgb.mode == "RGB"
    with pytest.raises(ImageLoadError, match="shape"):
        load_image(np.zeros((2, 2, 7), np.uint8))


def test_pixel_limit_refuses_before_decoding(tmp_path):
    big = encode(Image.new("RGB", (3000, 2000)), "PNG")  # compresses to a few KB
    with pytest.raises(ImageLoadError, match="6000000 pixels exceeds the limit of 1000000"):
        load_image(big, max_pixels=1_000_000, name="big.png")
    assert load_image(big).size == (3000, 2000)  # default limit allows it


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"hello, I am text", "not a recognised image"),
        (None, "truncated"),
    ],
)
def test_bad_files_raise_one_clear_error_naming_the_file(tmp_path, data, reason):
    if data is None:
        data = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "PNG")
        data = data[: len(data) // 2]
    path = tmp_path / "bad.png"
    path.write_bytes(data)
    with pytest.raises(ImageLoadError, match=reason) as e:
        load_image(path)
    assert str(path) in str(e.value) and isinstance(e.value, MabsaError)


def test_missing_and_directory(tmp_path):
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)


def test_digest_depends_on_bytes_only():
    a = encode(Image.new("RGB", (4, 4), (1, 2, 3)), "PNG")
    assert load_image(a).digest == load_image(a, name="x").digest
    assert load_image(a).digest != load_image(encode(Image.new("RGB", (4, 4), (1, 2, 4)), "PNG")).digest


def test_iter_image_files(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.PNG").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.jpg").write_bytes(b"x")
    names = [p.name for p in iter_image_files([tmp_path])]
    assert names == ["a.jpg", "b.PNG"]
