"""The images an evaluation scores: the first N of a dataset's split, as uint8 pixels with labels (and masks, for
shapes), so that every model sees the same images and normalises them its own way.

- ``shapes``: splits ``val`` (default, 2,000 images), ``test`` (2,000) and ``train`` (10,000), generated with the
  dataset seed 0 (the starter models trained on seed 0's train split); ground-truth masks included.
- ``cifar10`` / ``cifar100`` from a local root (``val`` and ``test`` are the official test set; ``train``).
- ``imagefolder``: a folder of class subfolders (``val`` and ``train``, the folder's stratified split); images are
  named by their path inside the folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import SHAPES_DATASETS, canonical_dataset_name, check_dataset
from ..data.cifar import CIFAR_NAMES, CIFAR_SIZE, CIFARDataset
from ..data.folder import ImageFolderDataset
from ..data.shapes import SPLIT_SIZES, ShapesDataset
from ..data.transforms import normalize, to_float_images
from ..errors import DataError

__all__ = ["EvaluationData", "SPLITS", "evaluation_data"]

SPLITS = ("val", "test", "train")


@dataclass(frozen=True)
class EvaluationData:
    """``images`` uint8 ``[N, H, W, 3]``, ``labels`` int64 ``[N]``, ``masks`` bool ``[N, H, W]`` or None, and an id per
    image (its index in the split, or its file name) that results.csv names it by."""

    dataset: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None
    ids: tuple[str, ...]
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    @property
    def has_masks(self) -> bool:
        return self.masks is not None

    def inputs(self, start: int, stop: int, mean, std, device: torch.device) -> torch.Tensor:  # type: ignore[no-untyped-def]
        """Images ``start:stop`` as a normalised float batch ``[B, 3, H, W]`` on ``device``."""
        x = to_float_images(torch.from_numpy(np.array(self.images[start:stop])))  # a writable copy
        return normalize(x, mean, std).to(device)


def _too_many(n: int, available: int, dataset: str, split: str) -> DataError:
    return DataError(f"N = {n} is larger than the {split} split of {dataset} ({available} images)")


def evaluation_data(
    dataset: str, split: str = "val", n: int = 100, image_size: int | None = None,
    root: str | os.PathLike[str] | None = None,
) -> EvaluationData:
    """The first ``n`` images of ``split`` of ``dataset`` at ``image_size`` (shapes and image folders; CIFAR is 32)."""
    name = canonical_dataset_name(dataset)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise DataError(f"N must be a positive whole number, got {n!r}")
    n = int(n)
    check_dataset(name, root)
    if name in SHAPES_DATASETS:
        available = SPLIT_SIZES[split]
        if n > available:
            raise _too_many(n, available, name, split)
        data = ShapesDataset(split, None, image_size or 32, seed=0, normalize=False,
                             difficulty=SHAPES_DATASETS[name])
        return EvaluationData(name, split, np.asarray(data.images[:n]), np.asarray(data.labels[:n]),
                              np.asarray(data.masks[:n], dtype=bool), tuple(str(i) for i in range(n)), data.info.class_names)
    if name in CIFAR_NAMES:
        if image_size not in (None, CIFAR_SIZE):
            raise DataError(f"CIFAR images are {CIFAR_SIZE} x {CIFAR_SIZE}; the models expect {image_size} x {image_size}")
        data = CIFARDataset(root, name, train=split == "train", normalize=False)  # type: ignore[arg-type]
        if n > len(data):
            raise _too_many(n, len(data), name, "train" if split == "train" else "test (val)")
        return EvaluationData(name, split, np.asarray(data.images[:n]), np.asarray(data.labels[:n]), None,
                              tuple(str(i) for i in range(n)), data.info.class_names)
    split_name = "train" if split == "train" else "val"
    data = ImageFolderDataset(root, image_size or 64, split_name, normalize=False)  # type: ignore[arg-type]
    if n > len(data):
        raise _too_many(n, len(data), f"the image folder {root}", split_name)
    base = Path(str(data.info.root))
    images = np.stack([data.load_uint8(index) for index in range(n)])
    ids = tuple(str(Path(path).relative_to(base)) if Path(path).is_relative_to(base) else Path(path).name
                for path in data.paths[:n])
    return EvaluationData(name, split_name, images, np.asarray(data.labels[:n]), None, ids, data.info.class_names)
