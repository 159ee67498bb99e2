"""CIFAR-10 / CIFAR-100 from their official python pickles, read with an unpickler that can only rebuild numpy arrays.

On-disk layout (as extracted from the official archives)::

    ROOT/cifar-10-batches-py/{data_batch_1 .. data_batch_5, test_batch, batches.meta}
    ROOT/cifar-100-python/{train, test, meta}

Each batch is a pickled dict (Python 2 era, so keys may be bytes) with ``data`` uint8 [N, 3072] (the 1024 red, then
green, then blue values of each 32x32 image, row-major) and ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100).
"""

from __future__ import annotations

import codecs
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    from numpy.core.numeric import _frombuffer  # type: ignore[no-redef]

from ..errors import DataError, Remedy
from .base import ArrayDataset, check_count, seeded_subset
from .info import DEFAULT_AUGMENT, IDENTITY_MEAN, IDENTITY_STD, DataInfo

__all__ = [
    "CIFAR_NAMES",
    "CIFARDataset",
    "CIFARLayout",
    "RestrictedUnpickler",
    "cifar_info",
    "cifar_layout",
    "download_cifar",
    "load_cifar_arrays",
    "safe_unpickle",
]

CIFAR_SIZE = 32


@dataclass(frozen=True)
class CIFARLayout:
    """Where one CIFAR variant lives and what it is: folder, files, label keys, statistics and the official archive."""

    name: str
    title: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    url: str
    md5: str


_LAYOUTS: dict[str, CIFARLayout] = {
    "cifar10": CIFARLayout(
        name="cifar10",
        title="CIFAR-10",
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{k}" for k in range(1, 6)),
        test_files=("test_batch",),
        meta_file="batches.meta",
        label_key="labels",
        names_key="label_names",
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
    ),
    "cifar100": CIFARLayout(
        name="cifar100",
        title="CIFAR-100",
        folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        meta_file="meta",
        label_key="fine_labels",
        names_key="fine_label_names",
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
    ),
}
CIFAR_NAMES: tuple[str, ...] = tuple(_LAYOUTS)


def cifar_layout(name: str) -> CIFARLayout:
    """The layout of ``name`` ("cifar10" or "cifar100"), or a DataError naming the valid ones."""
    try:
        return _LAYOUTS[name]
    except (KeyError, TypeError):
        raise DataError(f"unknown CIFAR dataset {name!r}; valid names: {', '.join(CIFAR_NAMES)}") from None


# ---------------------------------------------------------------------------------------------------- safe unpickling


# numpy's own array-rebuilding helpers (the real CIFAR files name the numpy 1 module path; numpy 2 writes numpy._core;
# protocol 5 pickles use _frombuffer) and _codecs.encode (how Python 3 pickles bytes at protocol 2).
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild only plain containers and numpy arrays: every other global is refused, so a
    crafted file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"refusing to load {module}.{name} from a data pickle (only numpy arrays are allowed)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError("refusing a data pickle with persistent references")


def safe_unpickle(path: Path) -> Any:
    """The object pickled in ``path`` (bytes keys kept, ``encoding="bytes"``), via :class:`RestrictedUnpickler`."""
    try:
        with open(path, "rb") as file:
            return RestrictedUnpickler(file, encoding="bytes").load()
    except DataError as error:
        raise DataError(f"{path}: {error}") from None
    except Exception as error:  # noqa: BLE001 - any failure to unpickle means the file is corrupt
        raise DataError(f"{path} is corrupt or not a CIFAR python pickle ({type(error).__name__}: {error})") from None


def _field(batch: Any, key: str, path: Path) -> Any:
    """``batch[key]`` under a bytes or str key, or a DataError naming the file."""
    if not isinstance(batch, Mapping):
        raise DataError(f"{path} is not a CIFAR batch (expected a dict, found {type(batch).__name__})")
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise DataError(f"{path} is not a CIFAR batch: it has no {key!r} entry")


# ---------------------------------------------------------------------------------------------------- reading


def locate_cifar(root: str | os.PathLike[str], layout: CIFARLayout) -> Path:
    """The folder holding ``layout``'s files: ROOT/<folder>, or ROOT itself when it is that folder."""
    base = Path(root).expanduser()
    for folder in (base / layout.folder, base):
        if all((folder / file).is_file() for file in (*layout.train_files, *layout.test_files, layout.meta_file)):
            return folder
    folder = base / layout.folder
    expected = (*layout.train_files, *layout.test_files, layout.meta_file)
    missing = [file for file in expected if not (folder / file).is_file()]
    raise DataError(
        f"{layout.title} not found under {base}: expected {folder / missing[0]}"
        f"{f' (and {len(missing) - 1} more files)' if len(missing) > 1 else ''}",
        Remedy("download_or_set_data_root", {"folder": layout.folder}),
    )


def _read_batch(path: Path, layout: CIFARLayout, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 32, 32, 3], labels int64 [N]) of one batch file, validated."""
    batch = safe_unpickle(path)
    data = _field(batch, "data", path)
    labels = _field(batch, layout.label_key, path)
    pixels = 3 * CIFAR_SIZE * CIFAR_SIZE
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != pixels:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' must be uint8 [N, {pixels}], found {got}")
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{path}: {layout.label_key!r} is not a list of class indices") from None
    if labels.shape[0] != data.shape[0]:
        raise DataError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{path}: labels must lie in 0..{num_classes - 1}, found {labels.min()}..{labels.max()}")
    images = data.reshape(-1, 3, CIFAR_SIZE, CIFAR_SIZE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _read_class_names(path: Path, layout: CIFARLayout) -> tuple[str, ...]:
    """The class names stored in the meta file."""
    names = _field(safe_unpickle(path), layout.names_key, path)
    if not isinstance(names, (list, tuple)) or not names:
        raise DataError(f"{path}: {layout.names_key!r} must be a non-empty list of names")
    return tuple(name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name) for name in names)


def load_cifar_arrays(
    root: str | os.PathLike[str], name: str = "cifar10", train: bool = True
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(images uint8 [N, 32, 32, 3], labels int64 [N], class names) of the train or test split under ``root``."""
    layout = cifar_layout(name)
    folder = locate_cifar(root, layout)
    class_names = _read_class_names(folder / layout.meta_file, layout)
    batches = [
        _read_batch(folder / file, layout, len(class_names))
        for file in (layout.train_files if train else layout.test_files)
    ]
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    return images, labels, class_names


def download_cifar(root: str | os.PathLike[str], name: str = "cifar10") -> Path:
    """Fetch and extract the official archive of ``name`` into ``root`` (only on the user's explicit request); returns
    the dataset folder. Does nothing when the files are already there."""
    layout = cifar_layout(name)
    base = Path(root).expanduser()
    try:
        return locate_cifar(base, layout)
    except DataError:
        pass
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(layout.url, download_root=str(base), md5=layout.md5)
    except Exception as error:  # noqa: BLE001 - network, disk and checksum failures all mean "no dataset"
        raise DataError(f"could not download {layout.title} from {layout.url} into {base}: {error}") from None
    return locate_cifar(base, layout)


# ---------------------------------------------------------------------------------------------------- dataset


def cifar_info(name: str, class_names: tuple[str, ...], root: str | None = None, normalize: bool = True) -> DataInfo:
    """The DataInfo of CIFAR-10/100 (standard per-channel statistics when ``normalize``)."""
    layout = cifar_layout(name)
    return DataInfo(
        name=layout.name,
        num_classes=len(class_names),
        class_names=class_names,
        image_size=CIFAR_SIZE,
        mean=layout.mean if normalize else IDENTITY_MEAN,
        std=layout.std if normalize else IDENTITY_STD,
        augment=DEFAULT_AUGMENT,
        root=root,
    )


class CIFARDataset(ArrayDataset):
    """The train or test split of CIFAR-10/100 read from ``root``; ``n`` keeps the first n images of a shuffle by
    ``seed`` (all when None or larger than the split)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        name: str = "cifar10",
        train: bool = True,
        normalize: bool = True,
        n: int | None = None,
        seed: int = 0,
    ) -> None:
        count = check_count(n, "the number of CIFAR images")
        images, labels, class_names = load_cifar_arrays(root, name, train)
        keep = seeded_subset(len(labels), count, seed)
        if keep is not None:
            images, labels = images[keep], labels[keep]
        root_text = str(Path(root).expanduser())
        super().__init__(images, labels, cifar_info(name, class_names, root_text, normalize))
        self.train = bool(train)
