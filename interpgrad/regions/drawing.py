"""Regions drawn over an image or a map overlay: translucent hull fills and hull borders (OpenCV)."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..errors import ConfigError
from ..viz import _check_image
from .hulls import Region, union_mask

__all__ = ["DEFAULT_COLOUR", "draw_regions"]

DEFAULT_COLOUR = (255, 0, 255)
"""Magenta: a colour the default colormap (jet) never takes, so hulls stay visible over its overlays."""


def _enlarged(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A bool mask resized to ``[height, width]``, nearest neighbour (as ``interpgrad.viz.enlarge``)."""
    if mask.shape == (height, width):
        return mask
    return cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)


def draw_regions(
    image: np.ndarray,
    regions: Sequence[Region],
    colour: tuple[int, int, int] = DEFAULT_COLOUR,
    alpha: float = 0.3,
    outline: int = 1,
) -> np.ndarray:
    """``image`` (uint8 RGB ``[H, W, 3]``: the image or any map overlay, ``interpgrad.viz.overlay``) with the regions
    drawn on it: the union of their hulls blended with ``colour`` (``(1 - alpha) * image + alpha * colour``) and the
    border of each hull, ``outline`` pixels thick (0: none), in ``colour``. A new image.

    What is drawn is exactly each region's ``mask``, the pixels RS occludes: the outline is the inner border of the
    filled hull (its pixels with a neighbour outside it, ``cv2.erode``), not a polygon through the vertices (a
    rasterised polygon differs from ``cv2.fillPoly``'s fill by a pixel here and there), so nothing outside the hulls
    changes. The image may be larger than the maps the regions come from (``interpgrad.viz.enlarge``): the masks
    are resized nearest-neighbour first, and the outline keeps its thickness in the image's pixels.
    """
    _check_image(image)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
    if outline < 0:
        raise ConfigError(f"outline must be >= 0 pixels, got {outline}")
    if len(colour) != 3 or not all(0 <= int(value) <= 255 for value in colour):
        raise ConfigError(f"colour must be (r, g, b) in 0..255, got {colour}")
    drawn = image.copy()
    if not regions:
        return drawn
    height, width = image.shape[:2]
    tint = np.asarray(colour, dtype=np.float32)
    if alpha > 0:
        fill = _enlarged(union_mask(regions, regions[0].mask.shape), height, width)
        drawn[fill] = np.clip(np.rint((1.0 - alpha) * drawn[fill].astype(np.float32) + alpha * tint), 0, 255)
    if outline > 0:
        kernel = np.ones((2 * outline + 1, 2 * outline + 1), np.uint8)
        for region in regions:
            hull = _enlarged(region.mask, height, width).astype(np.uint8)
            inside = cv2.erode(hull, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
            drawn[(hull > 0) & (inside == 0)] = tint.astype(np.uint8)
    return drawn
