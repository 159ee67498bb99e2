"""Reading user images safely as 8-bit RGB, and preparing them as model inputs."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DataError
from .transforms import normalize, to_float_images

__all__ = [
    "IMAGE_EXTENSIONS",
    "IMAGE_FORMATS",
    "MAX_IMAGE_PIXELS",
    "ImageSource",
    "describe_resize",
    "load_image",
    "prepare_image",
    "resize_center_crop",
]

MAX_IMAGE_PIXELS = 50_000_000
"""Largest image accepted (width x height), checked from the header before any pixel is decoded."""

IMAGE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "TIFF", "BMP", "DIB", "WEBP", "GIF", "PPM", "TGA", "ICO")
"""Pillow formats load_image accepts (no format that runs external programs, such as EPS)."""

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".ppm", ".pgm", ".pbm", ".tga", ".ico",
)
"""File extensions treated as images when listing folders."""

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def _describe(source: ImageSource) -> str:
    """How messages name the image: its file name, or 'the image data'."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    name = getattr(source, "name", None)
    return str(name) if isinstance(name, str) else "the image data"


def _is_empty(source: ImageSource) -> bool:
    """Whether ``source`` holds no bytes at all (a file of size 0, empty bytes, a stream at its end)."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source).stat().st_size == 0
    if isinstance(source, (bytes, bytearray, memoryview)):
        return len(source) == 0
    try:
        position = source.tell()
        end = source.seek(0, io.SEEK_END)
        source.seek(position)
        return end == position
    except (AttributeError, OSError, ValueError):  # not seekable: Pillow's own message stands
        return False


def _open(source: ImageSource, label: str, formats: Sequence[str] = IMAGE_FORMATS) -> Image.Image:
    """Open ``source`` lazily (header only) as one of ``formats``, or a DataError saying why it cannot be an image."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{label}: no such image file" if not path.exists() else f"{label} is not a file")
        stream: BinaryIO | Path = path
    elif isinstance(source, (bytes, bytearray, memoryview)):
        stream = io.BytesIO(bytes(source))
    else:
        stream = source
    if _is_empty(source):
        raise DataError(f"{label} is empty (0 bytes)")
    try:
        return Image.open(stream, formats=list(formats))
    except Image.DecompressionBombError:
        raise DataError(f"{label} is too large to decode safely (a decompression bomb?)") from None
    except UnidentifiedImageError:
        supported = _format_names(formats)
        raise DataError(f"{label} is not an image in a supported format ({supported}) or is corrupt") from None
    except OSError as error:
        raise DataError(f"cannot read {label}: {error}") from None


def _format_names(formats: Sequence[str]) -> str:
    """Pillow's format names as a reader knows them (``WEBP`` -> ``WebP``; ``DIB``, BMP's headerless form, unsaid)."""
    return ", ".join(dict.fromkeys({"WEBP": "WebP", "DIB": "BMP"}.get(name, name) for name in formats))


def _check_pixels(image: Image.Image, label: str, max_pixels: int) -> None:
    """Refuse empty images and images over ``max_pixels`` (from the header, before decoding)."""
    width, height = image.size
    if width < 1 or height < 1:
        raise DataError(f"{label} has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise DataError(
            f"{label} is {width}x{height} = {width * height / 1e6:.0f} megapixels, over the limit of "
            f"{max_pixels / 1e6:.0f} megapixels; resize it first"
        )


def _high_depth_to_uint8(image: Image.Image) -> np.ndarray:
    """A 16-bit, 32-bit integer or float single-channel image as uint8 [H, W], scaled by its real range, never clipped.

    16-bit: v * 255 / 65535. 32-bit integer: the same when all values fit 0..65535, else min-max. Float: v * 255 when
    all values are in [0, 1], else min-max.
    """
    values = np.asarray(image).astype(np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and high <= 65535):
        scaled = values * (255.0 / 65535.0)
    elif image.mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    elif high > low:
        scaled = (values - low) * (255.0 / (high - low))
    else:
        scaled = np.zeros_like(values)
    return np.rint(scaled).astype(np.uint8)


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow image as uint8 [H, W, 3]: transparency composited on white, 16-bit scaled, palettes expanded."""
    if image.mode in _HIGH_DEPTH_MODES:
        gray = _high_depth_to_uint8(image)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:] / 255.0
        rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
        return np.rint(rgb).astype(np.uint8)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _upright(image: Image.Image) -> Image.Image:
    """``image`` rotated as its EXIF orientation says (unchanged when there is none or it is unreadable)."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make a readable image unreadable
        return image


def load_image(
    source: ImageSource, *, max_pixels: int = MAX_IMAGE_PIXELS, formats: Sequence[str] = IMAGE_FORMATS
) -> np.ndarray:
    """Read an image file, bytes or binary stream as 8-bit RGB, uint8 [H, W, 3].

    Accepts PNG, JPEG, TIFF, BMP, WebP, GIF, PPM, TGA and ICO (``formats``: fewer of ``IMAGE_FORMATS``, e.g. those a
    file picker offers; the message for anything else lists them); 8- or 16-bit; grayscale, RGBA (composited on
    white), palette, CMYK. Raises DataError for a missing or empty file, a non-image, a truncated or corrupt file, or
    an image with more than ``max_pixels`` pixels (checked from the header before decoding).
    """
    unknown = [name for name in formats if name not in IMAGE_FORMATS]
    if unknown or not formats:
        raise DataError(f"image formats must be some of {', '.join(IMAGE_FORMATS)}, got {', '.join(formats) or 'none'}")
    label = _describe(source)
    image = _open(source, label, formats)
    try:
        _check_pixels(image, label, max_pixels)
        try:
            image.load()
            return np.ascontiguousarray(_to_rgb(_upright(image)))
        except DataError:
            raise
        except Exception as error:  # noqa: BLE001 - any decoder failure means the file is corrupt
            raise DataError(f"{label} is truncated or corrupt and cannot be decoded ({error})") from None
    finally:
        image.close()


def _check_rgb(rgb: np.ndarray) -> None:
    """A DataError unless ``rgb`` is a uint8 [H, W, 3] array."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise DataError(f"expected an RGB image as uint8 [H, W, 3], got {got}")
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise DataError(f"the image has no pixels ({rgb.shape[1]}x{rgb.shape[0]})")


_REDUCING_GAP = 3.0
"""Pillow's ``reducing_gap``: a large shrink first averages blocks of pixels (fast, and still antialiased)."""

WHOLE_RESIZE_PIXELS = 1 << 22
"""Largest resized image (4 megapixels, 12 MB) made whole before cropping its centre; beyond it only the centre
square is resampled. Every ordinary image is below it (224 px at an aspect ratio of 80:1)."""


def _resize_centre_only(image: Image.Image, new_size: tuple[int, int], crop: tuple[int, int], image_size: int) -> Image.Image:
    """The ``image_size`` square at ``crop`` (left, top) of ``image`` resized to ``new_size``, resampling only that
    square: the filter reads the same source pixels, and the integer reduction ``Image.resize(reducing_gap=...)``
    applies first is done on the whole image so that its blocks line up the same way. Pillow takes a box in single
    precision, so a pixel can differ by one level from the whole resize."""
    (width, height), (new_width, new_height), (left, top) = image.size, new_size, crop
    factor_x = int(width / new_width / _REDUCING_GAP) or 1
    factor_y = int(height / new_height / _REDUCING_GAP) or 1
    if factor_x > 1 or factor_y > 1:
        image = image.reduce((factor_x, factor_y))
    step_x = width / factor_x / new_width  # source pixels per output pixel
    step_y = height / factor_y / new_height
    box = (left * step_x, top * step_y, (left + image_size) * step_x, (top + image_size) * step_y)
    return image.resize((image_size, image_size), Image.Resampling.BILINEAR, box=box)


def resize_center_crop(rgb: np.ndarray, image_size: int) -> np.ndarray:
    """Resize (bilinear, antialiased) so the shorter side is ``image_size``, then crop the centre square; uint8.

    When the resized whole image would exceed ``WHOLE_RESIZE_PIXELS``, only the centre square is resampled
    (``_resize_centre_only``): a 100000x1 strip from a 377-byte PNG would otherwise become a 32x3200000 image and
    about 1 GB of intermediates.
    """
    _check_rgb(rgb)
    if image_size < 1:
        raise DataError(f"image_size must be positive, got {image_size}")
    height, width = rgb.shape[:2]
    scale = image_size / min(height, width)
    new_height = max(image_size, round(height * scale))
    new_width = max(image_size, round(width * scale))
    top = (new_height - image_size) // 2
    left = (new_width - image_size) // 2
    if (new_height, new_width) != (height, width):
        image = Image.fromarray(rgb)
        if new_width * new_height > WHOLE_RESIZE_PIXELS:
            square = _resize_centre_only(image, (new_width, new_height), (left, top), image_size)
            return np.ascontiguousarray(np.asarray(square))
        rgb = np.asarray(image.resize((new_width, new_height), Image.Resampling.BILINEAR, reducing_gap=_REDUCING_GAP))
    return np.ascontiguousarray(rgb[top : top + image_size, left : left + image_size])


def describe_resize(height: int, width: int, image_size: int) -> str:
    """How ``resize_center_crop`` makes a ``height x width`` image the model's ``image_size`` square, in words:
    ``"1x1 upscaled to 32x32"``, ``"512x384 downscaled to 43x32 (shorter side 32), centre 32x32 cropped"``."""
    if (height, width) == (image_size, image_size):
        return f"{width}x{height}, not resized"
    scale = image_size / min(height, width)
    new_height, new_width = max(image_size, round(height * scale)), max(image_size, round(width * scale))
    how = "upscaled" if scale > 1 else "downscaled" if scale < 1 else "kept at"
    if new_height == new_width:
        return f"{width}x{height} {how} to {image_size}x{image_size}"
    resized = f"{width}x{height} {how} to {new_width}x{new_height}" if scale != 1 else f"{width}x{height}"
    return f"{resized} (shorter side {image_size}), centre {image_size}x{image_size} cropped"


def prepare_image(
    rgb_uint8: np.ndarray, image_size: int, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """A model input float32 [1, 3, S, S]: shorter side resized to S, centre crop, scaled to [0, 1], normalised."""
    crop = resize_center_crop(rgb_uint8, image_size)
    x = to_float_images(torch.from_numpy(crop.copy()))
    return normalize(x, mean, std, inplace=True).unsqueeze(0)
