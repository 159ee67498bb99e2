"""ImageFolder: any folder of class subfolders (``ROOT/<class>/<images>``), optionally split into train/ and val/."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .base import check_count, seeded_subset
from .images import IMAGE_EXTENSIONS, load_image, resize_center_crop
from .info import DEFAULT_AUGMENT, IDENTITY_MEAN, IDENTITY_STD, DataInfo
from .transforms import normalize, to_float_images

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageFolderDataset",
    "folder_splits",
    "list_class_folders",
    "list_images",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
_LAYOUT_HINT = "expected ROOT/<class name>/<image files>, or ROOT/train/<class name>/... and ROOT/val/<class name>/..."

Item = tuple[Path, int]


def _visible(name: str) -> bool:
    """Whether a file or folder name is not hidden (dot files, __MACOSX and the like)."""
    return not name.startswith((".", "__"))


def list_class_folders(directory: Path) -> list[str]:
    """Sorted names of the visible subfolders of ``directory``."""
    return sorted(entry.name for entry in directory.iterdir() if entry.is_dir() and _visible(entry.name))


def list_images(folder: Path) -> list[Path]:
    """Image files (by extension) anywhere under ``folder``, sorted by path."""
    found = []
    for current, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if _visible(name)]
        found.extend(
            Path(current) / name
            for name in files
            if _visible(name) and Path(name).suffix.lower() in IMAGE_EXTENSIONS
        )
    return sorted(found)


def _scan(directory: Path, class_names: list[str]) -> list[Item]:
    """(path, label) of every image in the class folders of ``directory`` that are named in ``class_names``."""
    items: list[Item] = []
    for label, name in enumerate(class_names):
        folder = directory / name
        if folder.is_dir():
            items.extend((path, label) for path in list_images(folder))
    return items


def _check_nonempty(directory: Path, class_names: list[str], items: list[Item]) -> None:
    """A DataError when there are no images at all, or some class folder has none."""
    if not items:
        extensions = ", ".join(extension.lstrip(".") for extension in IMAGE_EXTENSIONS)
        raise DataError(f"no images ({extensions}) found in the class folders of {directory}")
    counts = np.bincount([label for _, label in items], minlength=len(class_names))
    empty = [name for name, count in zip(class_names, counts) if count == 0]
    if empty:
        raise DataError(f"class folders without images in {directory}: {', '.join(empty)}; remove them or add images")


def _stratified(items: list[Item], num_classes: int, val_fraction: float, seed: int) -> dict[str, list[Item]]:
    """Split ``items`` per class by a seeded shuffle: about ``val_fraction`` of each class (at least one image when the
    class has two or more and the fraction is positive, never all of it) goes to val."""
    rng = np.random.default_rng(seed)
    by_class: list[list[Item]] = [[] for _ in range(num_classes)]
    for item in items:
        by_class[item[1]].append(item)
    splits: dict[str, list[Item]] = {"train": [], "val": []}
    for members in by_class:
        order = rng.permutation(len(members))
        n_val = round(val_fraction * len(members))
        if val_fraction > 0 and len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)
        splits["val"].extend(members[k] for k in sorted(order[:n_val]))
        splits["train"].extend(members[k] for k in sorted(order[n_val:]))
    return splits


def folder_splits(
    root: str | os.PathLike[str], val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[str], dict[str, list[Item]]]:
    """(class names, {split: [(path, label), ...]}) of an image folder: ROOT/train and ROOT/val (and ROOT/test) when
    they exist, else a stratified seeded split of ROOT's class folders."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(f"image folder {base} does not exist or is not a folder; {_LAYOUT_HINT}")
    if (base / "train").is_dir() and (base / "val").is_dir():
        class_names = list_class_folders(base / "train")
        if not class_names:
            raise DataError(f"{base / 'train'} has no class subfolders; {_LAYOUT_HINT}")
        splits = {}
        for split in ("train", "val", "test"):
            directory = base / split
            if not directory.is_dir():
                continue
            unknown = sorted(set(list_class_folders(directory)) - set(class_names))
            if unknown:
                raise DataError(f"{directory} has classes that train/ lacks: {', '.join(unknown)}")
            splits[split] = _scan(directory, class_names)
        _check_nonempty(base / "train", class_names, splits["train"])
        return class_names, splits
    if not 0 <= val_fraction < 1:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    class_names = list_class_folders(base)
    if not class_names:
        raise DataError(f"{base} has no class subfolders; {_LAYOUT_HINT}")
    items = _scan(base, class_names)
    _check_nonempty(base, class_names, items)
    return class_names, _stratified(items, len(class_names), val_fraction, seed)


class ImageFolderDataset(Dataset):
    """One split of an image folder, read with :func:`load_image`, shorter side resized to ``image_size`` and centre
    cropped; item ``i`` is ``(x float32 [3, S, S] normalised with ImageNet statistics, label int)``.

    Images are decoded on access; ``.images`` / ``.tensors()`` load the whole split (meant for small folders).
    ``n`` keeps the first n items of a shuffle by ``seed``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        image_size: int = 64,
        split: str = "train",
        val_fraction: float = 0.1,
        seed: int = 0,
        normalize: bool = True,
        n: int | None = None,
    ) -> None:
        size = check_count(image_size, "image_size") or 64
        count = check_count(n, f"the number of {split} images")
        class_names, splits = folder_splits(root, val_fraction, seed)
        if split not in splits:
            raise DataError(f"image folder {root} has no {split!r} split; available: {', '.join(splits)}")
        items = splits[split]
        if not items:
            raise DataError(f"the {split} split of {root} is empty; add images or raise val_fraction")
        keep = seeded_subset(len(items), count, seed)
        if keep is not None:
            items = [items[k] for k in keep]
        self.paths = [path for path, _ in items]
        self.labels = np.array([label for _, label in items], dtype=np.int64)
        self.split = split
        self.info = DataInfo(
            name="imagefolder",
            num_classes=len(class_names),
            class_names=tuple(class_names),
            image_size=size,
            mean=IMAGENET_MEAN if normalize else IDENTITY_MEAN,
            std=IMAGENET_STD if normalize else IDENTITY_STD,
            augment=DEFAULT_AUGMENT,
            root=str(Path(root).expanduser()),
        )
        self._images: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"ImageFolderDataset(root={self.info.root!r}, split={self.split!r}, n={len(self)})"

    def load_uint8(self, index: int) -> np.ndarray:
        """Item ``index`` as resized, centre-cropped uint8 [S, S, 3]."""
        if self._images is not None:
            return self._images[index]
        return resize_center_crop(load_image(self.paths[index]), self.info.image_size)

    @property
    def images(self) -> np.ndarray:
        """All items as uint8 [N, S, S, 3] (decoded once, then kept)."""
        if self._images is None:
            self._images = np.stack([self.load_uint8(index) for index in range(len(self))])
        return self._images

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise float images in [0, 1] with the dataset's mean/std."""
        return normalize(x, self.info.mean, self.info.std, inplace=True) if self.info.normalized else x

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = to_float_images(torch.from_numpy(np.array(self.load_uint8(index))))
        return self._finish(x), int(self.labels[index])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split as ``(X float32 [N, 3, S, S], Y int64 [N])``, normalised like the items."""
        x = to_float_images(torch.from_numpy(self.images))
        return self._finish(x), torch.tensor(self.labels, dtype=torch.long)
