"""Regions drawn over an image or a map overlay: translucent hull fills and hull outlines (OpenCV)."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..errors import ConfigError
from ..viz import _check_image
from .hulls import Region, union_mask

__all__ = ["DEFAULT_COLOUR", "draw_regions"]

DEFAULT_COLOUR = (255, 0, 255)
"""Magenta: a hue that no sequential colormap of ``interpgrad.viz`` uses, so hulls stay visible over any overlay."""
_SHIFT = 4  # fractional bits of the outline's vertices (sub-pixel positions on an enlarged image)


def draw_regions(
    image: np.ndarray,
    regions: Sequence[Region],
    colour: tuple[int, int, int] = DEFAULT_COLOUR,
    alpha: float = 0.3,
    outline: int = 1,
) -> np.ndarray:
    """``image`` (uint8 RGB ``[H, W, 3]``: the image or any map overlay, ``interpgrad.viz.overlay``) with the regions
    drawn on it: the union of their hulls blended with ``colour`` (``(1 - alpha) * image + alpha * colour``) and each
    hull's outline drawn in ``colour``, ``outline`` pixels thick (0: none; ``cv2.polylines``, 8-connected). A new
    image; pixels outside the hulls keep their values (with ``outline`` 1; a thicker line spreads outside).

    The image may be larger than the maps the regions come from (``interpgrad.viz.enlarge``): the fill is resized
    nearest-neighbour and the outline joins the centres of the enlarged vertex pixels.
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
    rows, columns = regions[0].mask.shape
    fill = union_mask(regions, (rows, columns))
    if (rows, columns) != (height, width):
        fill = cv2.resize(fill.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)
    if alpha > 0:
        tint = np.asarray(colour, dtype=np.float32)
        drawn[fill] = np.clip(np.rint((1.0 - alpha) * drawn[fill].astype(np.float32) + alpha * tint), 0, 255)
    if outline > 0:
        scale = np.array([width / columns, height / rows])
        polygons = [np.rint(((region.polygon + 0.5) * scale - 0.5) * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)
                    for region in regions]
        cv2.polylines(drawn, polygons, isClosed=True, color=tuple(int(value) for value in colour),
                      thickness=int(outline), lineType=cv2.LINE_8, shift=_SHIFT)
    return drawn
