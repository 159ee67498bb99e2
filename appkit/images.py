"""Image display helpers for the pages."""

from __future__ import annotations

import numpy as np

__all__ = ["crisp"]


def crisp(image: np.ndarray, size: int = 192) -> np.ndarray:
    """A small image enlarged by an integer factor with nearest neighbour (the browser would blur a 32x32 model
    input shown at 192 px); larger images are returned as they are."""
    factor = size // max(image.shape[:2])
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
