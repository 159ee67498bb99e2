"""build_datasets: the one entry point that turns a dataset name and options into (train, val, DataInfo)."""

from __future__ import annotations

import os
from typing import Union

from ..errors import DataError, Remedy
from .cifar import CIFAR_NAMES, CIFAR_SIZE, CIFARDataset, cifar_layout, download_cifar, locate_cifar
from .folder import folder_splits
from .folder import ImageFolderDataset
from .info import DataInfo
from .shapes import ShapesDataset

__all__ = ["DATASETS", "SHAPES_DATASETS", "AnyDataset", "build_datasets", "canonical_dataset_name", "check_dataset",
           "has_masks"]

DATASETS: tuple[str, ...] = ("shapes", "shapes-hard", "cifar10", "cifar100", "imagefolder")
SHAPES_DATASETS: dict[str, str] = {"shapes": "standard", "shapes-hard": "hard"}
"""The synthetic datasets (they have ground-truth masks) and their generator difficulty."""
AnyDataset = Union[ShapesDataset, CIFARDataset, ImageFolderDataset]
PathLike = Union[str, os.PathLike]


def _name_key(name: str) -> str:
    return str(name).strip().lower().replace("-", "").replace("_", "")


_CANONICAL = {_name_key(name): name for name in DATASETS}


def canonical_dataset_name(name: str) -> str:
    """``name`` as one of DATASETS (case, '-' and '_' ignored: "CIFAR-10" -> "cifar10", "Shapes_Hard" ->
    "shapes-hard"), or a DataError listing them."""
    key = _name_key(name)
    if key not in _CANONICAL:
        raise DataError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return _CANONICAL[key]


def has_masks(name: str) -> bool:
    """Whether the dataset ``name`` has ground-truth object masks (the shapes datasets)."""
    return canonical_dataset_name(name) in SHAPES_DATASETS


def _need_root(root: PathLike | None, what: str) -> PathLike:
    """``root``, or a DataError saying that ``what`` needs a data root."""
    if root is None:
        raise DataError(f"{what} needs a data root", Remedy("set_data_root"))
    return root


def _build_cifar(
    name: str, root: PathLike | None, image_size: int | None, seed: int,
    n_train: int | None, n_val: int | None, normalize: bool, download: bool,
) -> tuple[CIFARDataset, CIFARDataset]:
    """CIFAR train split and, as validation, the official test split."""
    layout = cifar_layout(name)
    if image_size not in (None, CIFAR_SIZE):
        raise DataError(
            f"{layout.title} images are {CIFAR_SIZE}x{CIFAR_SIZE}; image_size={image_size} is not supported"
        )
    root = _need_root(root, f"{layout.title} (the folder that contains {layout.folder})")
    if download:
        download_cifar(root, name)
    train = CIFARDataset(root, name, train=True, normalize=normalize, n=n_train, seed=seed)
    val = CIFARDataset(root, name, train=False, normalize=normalize, n=n_val, seed=seed)
    return train, val


def build_datasets(
    name: str,
    *,
    root: PathLike | None = None,
    image_size: int | None = None,
    seed: int = 0,
    n_train: int | None = None,
    n_val: int | None = None,
    normalize: bool = True,
    cache_dir: PathLike | None = None,
    download: bool = False,
) -> tuple[AnyDataset, AnyDataset, DataInfo]:
    """(train dataset, val dataset, DataInfo) for ``name`` in DATASETS.

    shapes, shapes-hard: splits "train"/"val" (default 10,000 / 2,000 images, size 32, cached in ``cache_dir`` when
    given).
    cifar10/cifar100: read from ``root`` (fetched first only when ``download``); val is the official test set; the size
    is always 32. imagefolder: ``root`` with class subfolders (size 64 by default). ``n_train`` / ``n_val`` limit the
    splits (for CIFAR and image folders: the first n of a shuffle by ``seed``).
    """
    key = canonical_dataset_name(name)
    if key in SHAPES_DATASETS:
        size = 32 if image_size is None else image_size
        difficulty = SHAPES_DATASETS[key]
        train = ShapesDataset("train", n_train, size, seed, normalize, cache_dir, difficulty)
        val = ShapesDataset("val", n_val, size, seed, normalize, cache_dir, difficulty)
    elif key in CIFAR_NAMES:
        train, val = _build_cifar(key, root, image_size, seed, n_train, n_val, normalize, download)
    else:
        folder = _need_root(root, "imagefolder (a folder of class subfolders)")
        size = 64 if image_size is None else image_size
        train = ImageFolderDataset(folder, size, "train", seed=seed, normalize=normalize, n=n_train)
        val = ImageFolderDataset(folder, size, "val", seed=seed, normalize=normalize, n=n_val)
    return train, val, train.info


def check_dataset(name: str, root: PathLike | None = None, download: bool = False) -> None:
    """A quick DataError when ``name`` cannot be built from ``root`` (no data root, CIFAR files missing, not an image
    folder), without reading the images: what a launcher checks before starting a run in the background."""
    key = canonical_dataset_name(name)
    if key in CIFAR_NAMES:
        layout = cifar_layout(key)
        root = _need_root(root, f"{layout.title} (the folder that contains {layout.folder})")
        if not download:
            locate_cifar(root, layout)
    elif key == "imagefolder":
        folder_splits(_need_root(root, "imagefolder (a folder of class subfolders)"))
