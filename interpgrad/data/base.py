"""ArrayDataset: a labelled set of uint8 RGB images held in memory, served as normalised float tensors."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .info import DataInfo
from .transforms import normalize, to_float_images

__all__ = ["ArrayDataset", "check_count", "seeded_subset"]


def check_count(n: int | None, what: str) -> int | None:
    """``n`` as an int, or a DataError when it is not a positive whole number (None passes through)."""
    if n is None:
        return None
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise DataError(f"{what} must be a positive whole number, got {n!r}")
    return int(n)


def seeded_subset(total: int, n: int | None, seed: int) -> np.ndarray | None:
    """Indices of the first ``n`` items of a seeded shuffle of ``range(total)``, sorted; None when all are kept."""
    if n is None or n >= total:
        return None
    order = np.random.default_rng(seed).permutation(total)
    return np.sort(order[:n])


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    """A torch tensor with ``array``'s contents (copied when the array is read-only, e.g. a cached one)."""
    if array.flags.writeable:
        return torch.from_numpy(np.ascontiguousarray(array))
    return torch.tensor(array)


class ArrayDataset(Dataset):
    """Images uint8 [N, H, W, 3] with int64 labels [N]; item ``i`` is ``(x, y)`` with x float32 [3, H, W] normalised
    with ``info.mean`` / ``info.std`` (in [0, 1] when normalisation is off) and y an int."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, info: DataInfo) -> None:
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise DataError(f"images must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
        if labels.shape != (images.shape[0],):
            raise DataError(f"{labels.shape[0]} labels for {images.shape[0]} images")
        self.images = images
        self.labels = labels.astype(np.int64, copy=False)
        self.info = info

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise float images in [0, 1] with the dataset's mean/std (nothing to do for the identity)."""
        return normalize(x, self.info.mean, self.info.std, inplace=True) if self.info.normalized else x

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = to_float_images(_as_tensor(self.images[index]))
        return self._finish(x), int(self.labels[index])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split as ``(X float32 [N, 3, H, W], Y int64 [N])``, normalised like the items."""
        x = to_float_images(_as_tensor(self.images))
        return self._finish(x), torch.tensor(self.labels, dtype=torch.long)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.info.name!r}, n={len(self)}, image_size={self.info.image_size})"
