"""The images a GAD run trains and checks its support models on: the images of the strategy's classes from the
original model's own dataset, read with the project's loaders (``interpgrad.data.build_datasets``) as the trainer read
them — the same dataset, seed and image size, so "train" is the model's training split and "val" its validation split
— and normalised the model's way."""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np
import torch

from ..data import build_datasets, canonical_dataset_name, check_dataset
from ..data.cifar import CIFAR_NAMES
from ..errors import DataError
from ..training.checkpoint import class_names_of, input_normalisation
from .strategies import Strategy
from .support import StrategyImages

__all__ = ["dataset_of", "strategy_images"]


def dataset_of(metadata: Mapping[str, Any], data_root: str | os.PathLike[str] | None = None) -> tuple[str, str | None]:
    """(dataset name, data root) the checkpoint was trained on (``data_root`` given overrides the recorded one);
    a DataError when the checkpoint does not say."""
    data = metadata.get("data") or {}
    training = metadata.get("training") or {}
    name = data.get("name") or training.get("dataset")
    if not name:
        raise DataError("the checkpoint does not record the dataset it was trained on, so GAD cannot find its images")
    root = data_root or data.get("root") or training.get("data_root")
    return canonical_dataset_name(str(name)), (str(root) if root else None)


def strategy_images(
    metadata: Mapping[str, Any],
    strategy: Strategy,
    split: str,
    n: int,
    data_root: str | os.PathLike[str] | None = None,
) -> StrategyImages:
    """The first ``n`` images of ``split`` ("train" or "val") whose class takes part in ``strategy`` (resolved), from
    the dataset the checkpoint with ``metadata`` was trained on."""
    name, root = dataset_of(metadata, data_root)
    check_dataset(name, root)
    training = metadata.get("training") or {}
    seed = int(training.get("seed") or 0)
    size = int(metadata["model"]["image_size"])
    train, val, info = build_datasets(name, root=root, image_size=None if name in CIFAR_NAMES else size, seed=seed,
                                      normalize=False)
    if len(info.class_names) != len(class_names_of(metadata)):
        raise DataError(f"{name} has {len(info.class_names)} classes but the model has "
                        f"{metadata['model']['num_classes']}")
    dataset = train if split == "train" else val
    sides = strategy.sides(torch.tensor(np.asarray(dataset.labels)))
    chosen = torch.nonzero(sides >= 0).flatten()[:n]
    if len(chosen) < 2:
        raise DataError(f"the {split} split of {name} has {len(chosen)} images of "
                        f"{strategy.describe(info.class_names)}; GAD needs at least 2")
    indices = chosen.numpy()
    if hasattr(dataset, "load_uint8"):  # an image folder: decode only the chosen images
        pixels = np.stack([dataset.load_uint8(int(index)) for index in indices])
    else:
        pixels = np.asarray(dataset.images)[indices]
    mean, std = input_normalisation(metadata)
    return StrategyImages(torch.from_numpy(np.ascontiguousarray(pixels)), torch.as_tensor(dataset.labels[indices]),
                          sides[chosen], mean, std)
