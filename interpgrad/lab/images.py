"""The images the lab measures on: the first N of a dataset split (``interpgrad.metrics.datasets``, the same images
the evaluations score), in pixel space [0, 1], with their labels and a description that keys the lab cache."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data.transforms import to_float_images
from ..metrics.datasets import evaluation_data

__all__ = ["LabImages", "lab_images"]


@dataclass(frozen=True)
class LabImages:
    """``images`` float32 ``[N, 3, H, W]`` in [0, 1], ``labels`` int64 ``[N]``, ``class_names``, and
    ``description`` (dataset, split, n, image_size: what the lab cache keys results by)."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    description: dict[str, Any]

    def __len__(self) -> int:
        return len(self.labels)


def lab_images(dataset: str = "shapes", n: int = 200, split: str = "val", image_size: int | None = None,
               root: str | os.PathLike[str] | None = None) -> LabImages:
    """The first ``n`` images of ``split`` of ``dataset`` (a DataError, one line, for a bad name, split or n)."""
    data = evaluation_data(dataset, split, n, image_size, root)
    images = to_float_images(torch.from_numpy(np.array(data.images)))
    return LabImages(images, torch.from_numpy(np.array(data.labels, dtype=np.int64)), tuple(data.class_names),
                     {"dataset": data.dataset, "split": data.split, "n": len(data), "image_size": data.image_size})
