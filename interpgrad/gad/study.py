"""A GAD run's regions over a set of images: the table behind ``python -m interpgrad gad explain``'s ``regions.csv``,
the GAD & regions page's dataset view and the shipped runs' ``study/`` (our reading of Mazini Rodrigues, Boutry &
Najman 2024; PAPERS.md section 2; no number it gives is the paper's).

    x, labels, names = study_images(run, split="val", n=500)      # the first 500 validation images of its classes
    table = region_study(run, x, labels, names=names)              # image, label + interpgrad.regions.COLUMNS
    interpgrad.regions.summarise_regions(table)                    # means with CIs, shares
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..data import build_datasets, check_dataset
from ..data.cifar import CIFAR_NAMES
from ..data.transforms import normalize, to_float_images
from ..errors import ConfigError, DataError
from ..training.checkpoint import input_normalisation
from .combination import gad_explanation
from .data import dataset_of
from .run import GadRun

__all__ = ["STUDY_COLUMNS", "region_study", "study_images"]

STUDY_COLUMNS = ("image", "label", "regions_original", "regions_gad", "area_original", "area_gad", "rc", "rs_gad",
                 "rs_removed", "rs_random")
"""The columns of ``region_study`` and of ``regions.csv`` (DESIGN.md): ``image, label`` then
``interpgrad.regions.COLUMNS`` (written out: interpgrad.regions imports OpenCV, only when regions are computed)."""

Progress = Callable[[int, int, str], None]  # (images done, images in all, message), as train_gad's


def _device_of(model: torch.nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def study_images(
    run: GadRun, split: str = "val", n: int = 500, data_root: str | os.PathLike[str] | None = None
) -> tuple[torch.Tensor, list[str], list[str]]:
    """The first ``n`` images of ``split`` ("train" or "val") whose class takes part in the run's strategy, from the
    dataset the original was trained on (``interpgrad.gad.data.dataset_of``, as the support models were trained and
    checked): ``(x, labels, names)`` with ``x`` float ``[N, 3, H, W]`` normalised as the original expects (on the
    CPU), ``labels`` the class names and ``names`` the index of each image in the split (as ``results.csv``'s
    ``image``) or its file name for an image folder."""
    if split not in ("train", "val"):
        raise ConfigError(f"split must be train or val, not {split!r}")
    if n < 1:
        raise ConfigError(f"n must be >= 1, not {n}")
    metadata = run.metadata
    name, root = dataset_of(metadata, data_root)
    check_dataset(name, root)
    seed = int((metadata.get("training") or {}).get("seed") or 0)
    size = int(metadata["model"]["image_size"])
    train, val, info = build_datasets(name, root=root, image_size=None if name in CIFAR_NAMES else size, seed=seed,
                                      normalize=False)
    dataset = train if split == "train" else val
    all_labels = torch.as_tensor(np.array(dataset.labels))
    chosen = torch.nonzero(run.strategy.sides(all_labels) >= 0).flatten()[:n].numpy()
    if len(chosen) == 0:
        raise DataError(f"the {split} split of {name} has no image of "
                        f"{run.strategy.describe(run.class_names)}")
    if hasattr(dataset, "load_uint8"):  # an image folder: decode only the chosen images
        pixels = np.stack([dataset.load_uint8(int(index)) for index in chosen])
    else:
        pixels = np.asarray(dataset.images)[chosen]
    paths = getattr(dataset, "paths", None)
    names = [os.path.basename(str(paths[index])) if paths is not None else str(int(index)) for index in chosen]
    mean, std = input_normalisation(metadata)
    x = normalize(to_float_images(torch.from_numpy(np.ascontiguousarray(pixels))), mean, std)
    classes = run.class_names
    return x, [classes[int(all_labels[index])] for index in chosen], names


def region_study(
    run: GadRun,
    x: torch.Tensor,
    labels: Sequence[Any] | None,
    *,
    base: str = "integrated_gradients",
    base_params: Mapping[str, Any] | None = None,
    q: float = 10.0,
    fusion: str = "intersection",
    min_size: int = 4,
    merge_distance: int = 0,
    occlusion: str = "black",
    seed: int = 0,
    batch_size: int = 32,
    progress: Progress | None = None,
    names: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """RC and RS of the original's and GAD's regions for every image of ``x`` (``[N, 3, H, W]``, normalised as the
    run's original expects: ``input_normalisation(run.metadata)``): one row per image with the columns
    ``STUDY_COLUMNS`` (``image, label`` then ``interpgrad.regions.COLUMNS``).

    In batches of ``batch_size`` on the original's device: ``gad_explanation(run, batch, base=, base_params=, q=,
    fusion=)`` explaining the original's predicted class, then ``interpgrad.regions.compare_regions`` of the original
    model on the original's map and the GAD map for that class (``q``, ``min_size``, ``merge_distance``,
    ``occlusion`` as there; the random control drawn from ``seed`` and each image's content, so the rows do not
    depend on the batching). ``labels`` (e.g. class names; None: empty) and ``names`` (None: the row's position) fill
    ``label`` and ``image``. ``progress(done, total, message)`` after every batch."""
    from ..regions import compare_regions  # OpenCV: only when regions are computed

    count = int(x.shape[0])
    if x.dim() != 4:
        raise ConfigError(f"expected images [N, 3, H, W], got {tuple(x.shape)}")
    if labels is not None and len(labels) != count:
        raise ConfigError(f"{len(labels)} labels for {count} images")
    if names is not None and len(names) != count:
        raise ConfigError(f"{len(names)} names for {count} images")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, not {batch_size}")
    mean, std = input_normalisation(run.metadata)
    device = _device_of(run.original)
    tables = []
    for start in range(0, count, batch_size):
        batch = x[start: start + batch_size].to(device)
        result = gad_explanation(run, batch, base=base, base_params=base_params, q=q, fusion=fusion)
        tables.append(compare_regions(run.original, batch, result.original_map, result.gad_map, target=result.target,
                                      q=q, min_size=min_size, merge_distance=merge_distance, occlusion=occlusion,
                                      mean=mean, std=std, seed=seed))
        done = min(start + batch_size, count)
        if progress is not None:
            progress(done, count, f"{done} of {count} images")
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(STUDY_COLUMNS[2:]))
    table.insert(0, "label", list(labels) if labels is not None else [""] * count)
    table.insert(0, "image", list(names) if names is not None else list(range(count)))
    return table[list(STUDY_COLUMNS)]
