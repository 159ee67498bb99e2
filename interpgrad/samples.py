"""Bundled sample images, available offline: shapes test images (with their ground-truth masks) and real photos
shipped inside scikit-image (``skimage.data``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .data import SHAPE_CLASSES, generate_shapes

__all__ = ["PHOTOS", "Sample", "photo_sample", "sample_images", "shapes_samples"]

# skimage.data names of photos that need no download
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")

_SHAPES_SEED = 20241


@dataclass(frozen=True)
class Sample:
    name: str
    image: np.ndarray  # uint8 RGB [H, W, 3]
    mask: np.ndarray | None = None  # bool [H, W] ground truth (shapes only)
    label: str | None = None
    dataset: str | None = None  # where the image comes from ("shapes", "photo"): models trained on it are in domain


@lru_cache(maxsize=4)
def shapes_samples(per_class: int = 1, image_size: int = 32) -> tuple[Sample, ...]:
    """``per_class`` test images of every shape class (a fixed seed, never used for training splits)."""
    arrays = generate_shapes(per_class * len(SHAPE_CLASSES) * 2, image_size=image_size, seed=_SHAPES_SEED)
    samples, counts = [], {name: 0 for name in SHAPE_CLASSES}
    for image, mask, label in zip(arrays.images, arrays.masks, arrays.labels):
        name = SHAPE_CLASSES[int(label)]
        if counts[name] < per_class:
            counts[name] += 1
            samples.append(Sample(f"shapes: {name} #{counts[name]}", np.array(image), np.array(mask), name, "shapes"))
    return tuple(sorted(samples, key=lambda s: (SHAPE_CLASSES.index(s.label), s.name)))


@lru_cache(maxsize=len(PHOTOS))
def photo_sample(name: str) -> Sample:
    """A photo from ``skimage.data`` as uint8 RGB (grayscale ones are replicated to three channels)."""
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose one of {', '.join(PHOTOS)}")
    from skimage import data

    image = np.asarray(getattr(data, name)())
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return Sample(f"photo: {name}", np.ascontiguousarray(image[..., :3]).astype(np.uint8), dataset="photo")


def sample_images() -> list[Sample]:
    """All bundled samples: the shapes first, then the photos."""
    return [*shapes_samples(), *(photo_sample(name) for name in PHOTOS)]
