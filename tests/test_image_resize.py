"""``resize_center_crop``: the model's view of an image (shorter side resized, centre square) — the same pixels as
resizing the whole image and cropping it, at the cost of the square for images of extreme aspect ratios."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from interpgrad.data import images
from interpgrad.data.images import resize_center_crop
from interpgrad.samples import PHOTOS, photo_sample, shapes_samples


def _whole_then_crop(rgb: np.ndarray, image_size: int) -> np.ndarray:
    """The definition: resize the whole image (bilinear, antialiased) so its shorter side is ``image_size``, crop."""
    height, width = rgb.shape[:2]
    scale = image_size / min(height, width)
    new_height, new_width = max(image_size, round(height * scale)), max(image_size, round(width * scale))
    resized = np.asarray(Image.fromarray(rgb).resize((new_width, new_height), Image.Resampling.BILINEAR, reducing_gap=3.0))
    top, left = (new_height - image_size) // 2, (new_width - image_size) // 2
    return resized[top : top + image_size, left : left + image_size]


def _ordinary_images() -> list[np.ndarray]:
    photos = [photo_sample(name).image for name in PHOTOS]
    rng = np.random.default_rng(0)
    crops = [photos[0][: int(h), : int(w)] for h, w in rng.integers(20, 400, size=(8, 2))]  # other aspect ratios
    return photos + crops + [shapes_samples()[0].image]


@pytest.mark.parametrize("image_size", [16, 32, 64, 224, 299])
def test_ordinary_images_are_exactly_the_whole_resize_cropped(image_size: int) -> None:
    for rgb in _ordinary_images():
        result = resize_center_crop(rgb, image_size)
        assert result.shape == (image_size, image_size, 3) and result.flags.c_contiguous
        np.testing.assert_array_equal(result, _whole_then_crop(rgb, image_size))


def test_resampling_only_the_centre_is_within_one_level(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path of extreme aspect ratios, forced on ordinary images (Pillow's box is single precision)."""
    monkeypatch.setattr(images, "WHOLE_RESIZE_PIXELS", 0)
    for rgb in _ordinary_images():
        for image_size in (32, 224):
            difference = resize_center_crop(rgb, image_size).astype(int) - _whole_then_crop(rgb, image_size)
            assert np.abs(difference).max() <= 1


_MEASURE = """
import io, resource, sys
import numpy as np
from PIL import Image
from interpgrad.data import load_image, resize_center_crop
data = sys.stdin.buffer.read()
rgb = load_image(data)
resize_center_crop(np.zeros((64, 48, 3), np.uint8), 32)  # warm up the code path's own allocations
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
crop = resize_center_crop(rgb, 32)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(crop.shape, (after - before) // 1024)
"""


def test_a_tiny_file_of_an_extreme_aspect_ratio_stays_small_in_memory() -> None:
    """A 100000x1 PNG is a few hundred bytes; resizing it whole to a shorter side of 32 would make 32x3200000 pixels
    (about 1 GB with Pillow's intermediates). Measured in a fresh process: the growth of its peak resident memory."""
    buffer = io.BytesIO()
    Image.fromarray((np.arange(100_000) % 256).astype(np.uint8).reshape(1, -1)).save(buffer, format="PNG")
    assert len(buffer.getvalue()) < 2000
    done = subprocess.run([sys.executable, "-c", _MEASURE], input=buffer.getvalue(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    shape, grown_mb = done.stdout.decode().rsplit(")", 1)
    assert shape + ")" == "(32, 32, 3)" and int(grown_mb) < 50, done.stdout.decode()


@pytest.mark.parametrize(
    ("height", "width", "image_size", "said"),
    [
        (1, 1, 32, "1x1 upscaled to 32x32"),
        (512, 512, 32, "512x512 downscaled to 32x32"),
        (32, 32, 32, "32x32, not resized"),
        (48, 40, 32, "40x48 downscaled to 32x38 (shorter side 32), centre 32x32 cropped"),
        (10, 20, 32, "20x10 upscaled to 64x32 (shorter side 32), centre 32x32 cropped"),
        (32, 48, 32, "48x32 (shorter side 32), centre 32x32 cropped"),
    ],
)
def test_how_an_image_was_resized_is_said_as_resize_center_crop_does_it(  # type: ignore[no-untyped-def]
    height, width, image_size, said
) -> None:
    from interpgrad.data import describe_resize

    assert describe_resize(height, width, image_size) == said
    scale = image_size / min(height, width)
    whole = (max(image_size, round(width * scale)), max(image_size, round(height * scale)))
    assert (f"to {whole[0]}x{whole[1]}" in said) == (whole != (width, height))  # the size resize_center_crop uses


def test_an_empty_file_says_it_is_empty_and_refusals_list_the_formats_asked_for(  # type: ignore[no-untyped-def]
    tmp_path,
) -> None:
    from interpgrad.data import load_image
    from interpgrad.errors import DataError

    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for source in (empty, b"", io.BytesIO(b"")):
        with pytest.raises(DataError, match=r"is empty \(0 bytes\)"):
            load_image(source)
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, format="GIF")
    assert load_image(gif.getvalue()).shape == (4, 4, 3)  # every readable format by default
    with pytest.raises(DataError, match=r"not an image in a supported format \(PNG, JPEG, WebP\) or is corrupt"):
        load_image(gif.getvalue(), formats=["PNG", "JPEG", "WEBP"])
    with pytest.raises(DataError, match=r"\(PNG, JPEG, TIFF, BMP, WebP, GIF, PPM, TGA, ICO\)"):
        load_image(b"not an image")
    with pytest.raises(DataError, match="image formats must be some of"):
        load_image(b"", formats=["EPS"])
