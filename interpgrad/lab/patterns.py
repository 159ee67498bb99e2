"""Patterns for "gradients are arbitrary": images ``[C, H, W]`` (float32, zero mean, unit L2 norm) that a logit
gradient can be made to show, either by adding an inner-product field to the logits (``InnerProductField``) or by
fine-tuning (the ``gradient_pattern`` regularizer).

``make_pattern(spec, size)`` builds one from a short text: ``text:HELLO``, ``shape:star`` (a shapes class), ``smooth:3``
(a random smooth field, seed 3) or ``image:PATH`` (any image file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError

__all__ = ["PATTERN_KINDS", "make_pattern", "pattern_from_image", "shape_pattern", "smooth_random_pattern",
           "standardise_pattern", "text_pattern"]

PATTERN_KINDS = ("text", "shape", "smooth", "image")


def standardise_pattern(pattern: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """``pattern`` ``[H, W]`` or ``[C, H, W]`` as float32 ``[channels, H, W]`` with zero mean and unit L2 norm (a
    constant pattern is a ConfigError: it has no shape to show)."""
    pattern = torch.as_tensor(pattern, dtype=torch.float32)
    if pattern.dim() == 2:
        pattern = pattern.unsqueeze(0)
    if pattern.shape[0] == 1:
        pattern = pattern.expand(channels, *pattern.shape[1:])
    centred = pattern - pattern.mean()
    norm = centred.norm()
    if not torch.isfinite(norm) or norm <= 0:
        raise ConfigError("the pattern is constant: it has nothing to show")
    return (centred / norm).contiguous()


def pattern_from_image(image: Any, size: int | None = None, channels: int = 3) -> torch.Tensor:
    """An image (a tensor ``[C, H, W]`` or ``[H, W]`` in [0, 1], a uint8 array ``[H, W, C]``, a PIL image or a file
    path), resized to ``size`` x ``size`` (bilinear) when given, standardised."""
    if isinstance(image, (str, Path)):
        from PIL import Image

        try:
            with Image.open(image) as opened:
                image = opened.convert("RGB")
        except (OSError, ValueError) as error:
            raise ConfigError(f"cannot read the pattern image {image}: {error}") from None
    if not isinstance(image, torch.Tensor):
        array = np.asarray(image)
        if array.ndim == 3:
            array = np.moveaxis(array, -1, 0)
        scale = 255.0 if array.dtype == np.uint8 else 1.0
        image = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32) / scale)
    image = image.float()
    if image.dim() == 2:
        image = image.unsqueeze(0)
    if size is not None and tuple(image.shape[-2:]) != (size, size):
        image = F.interpolate(image.unsqueeze(0), size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True).squeeze(0)
    if image.shape[0] not in (1, channels):
        image = image.mean(0, keepdim=True)
    return standardise_pattern(image, channels)


def text_pattern(text: str, size: int = 32, channels: int = 3) -> torch.Tensor:
    """``text`` rendered white on black with PIL's default font, scaled to fill the image width, standardised."""
    from PIL import Image, ImageDraw

    if not text.strip():
        raise ConfigError("the text pattern needs some text")
    canvas = Image.new("L", (8 * max(1, len(text)) + 8, 16), 0)
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), text)
    canvas = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(canvas).text((2 - left, 2 - top), text, fill=255)
    width, height = canvas.size
    factor = (size * 0.9) / max(width, height)
    resized = canvas.resize((max(1, round(width * factor)), max(1, round(height * factor))), Image.BILINEAR)
    image = Image.new("L", (size, size), 0)
    image.paste(resized, ((size - resized.width) // 2, (size - resized.height) // 2))
    return standardise_pattern(torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0), channels)


def shape_pattern(kind: str, size: int = 32, channels: int = 3, radius: float = 0.8) -> torch.Tensor:
    """A filled shape of the shapes dataset (``circle``, ``square``, ``star``, ``heart``, ...) centred, its enclosing
    disc ``radius`` x half the image, standardised; drawn with the dataset's own inside-tests."""
    from ..data.shapes import _SHAPE_TESTS, SHAPE_CLASSES

    if kind not in SHAPE_CLASSES:
        raise ConfigError(f"unknown shape {kind!r}; choose one of {', '.join(SHAPE_CLASSES)}")
    centres = (np.arange(size) + 0.5 - size / 2) / (radius * size / 2)
    u, v = np.meshgrid(centres, -centres)  # v points up
    inside = _SHAPE_TESTS[SHAPE_CLASSES.index(kind)](u, v)
    return standardise_pattern(torch.from_numpy(inside.astype(np.float32)), channels)


def smooth_random_pattern(seed: int = 0, size: int = 32, channels: int = 3, cells: int = 4) -> torch.Tensor:
    """A random smooth field: Gaussian noise on a ``cells`` x ``cells`` grid per channel, upsampled bicubically to
    the image size, standardised."""
    generator = torch.Generator().manual_seed(int(seed))
    coarse = torch.randn(1, channels, cells, cells, generator=generator)
    return standardise_pattern(F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0], channels)


def make_pattern(spec: str, size: int = 32, channels: int = 3) -> torch.Tensor:
    """The pattern a short text names: ``text:WORDS``, ``shape:NAME``, ``smooth:SEED`` or ``image:PATH``."""
    kind, separator, value = str(spec).partition(":")
    if not separator or kind not in PATTERN_KINDS:
        raise ConfigError(f"a pattern is KIND:VALUE with KIND one of {', '.join(PATTERN_KINDS)} "
                          f"(e.g. text:HI, shape:star, smooth:3, image:cat.png), got {spec!r}")
    if kind == "text":
        return text_pattern(value, size, channels)
    if kind == "shape":
        return shape_pattern(value, size, channels)
    if kind == "smooth":
        if not value.strip().isdigit():
            raise ConfigError(f"smooth:SEED needs a whole number seed, got {value!r}")
        return smooth_random_pattern(int(value), size, channels)
    if not Path(value).is_file():
        raise ConfigError(f"no pattern image at {value}")
    return pattern_from_image(value, size, channels)
