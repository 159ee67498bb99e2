"""Two maps of each image compared by their regions: RC and RS of each, of what one removed from the other, and of
a random control; dataset means with bootstrap intervals.

Written for GAD (the original map and GAD's, which is the original restricted to the fused mask), but any pair of
maps works, e.g. a map and its restriction to some mask.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import ConfigError
from ..explain.mechanics import content_seed
from ..metrics.statistics import CONFIDENCE, RESAMPLES, bootstrap_mean
from .hulls import MIN_SIZE, Q, Region, convex_hull_regions, important_pixels, random_regions_like, union_mask
from .sensitivity import BLUR_KERNEL, BLUR_SIGMA, region_sensitivity

__all__ = ["COLUMNS", "SHARES", "compare_regions", "regions_of_maps", "summarise_regions"]

COLUMNS = ("regions_original", "regions_gad", "area_original", "area_gad", "rc", "rs_gad", "rs_removed", "rs_random")
"""The columns of ``compare_regions`` (DESIGN.md's ``regions.csv`` without the caller's ``image`` and ``label``)."""
SHARES = (("rs_gad", "rs_removed"), ("rs_gad", "rs_random"))
"""The pairs ``summarise_regions`` reports the share of images for where the first is larger."""


def regions_of_maps(
    maps: torch.Tensor | np.ndarray,
    q: float = Q,
    threshold: float | None = None,
    min_size: int = MIN_SIZE,
    merge_distance: int = 0,
) -> list[list[Region]]:
    """The regions of every map of a batch (``[B, H, W]`` or ``[B, C, H, W]``; ``[H, W]`` counts as one map):
    ``convex_hull_regions(important_pixels(map, q, threshold), min_size, merge_distance)`` per map."""
    masks = important_pixels(maps, q, threshold).cpu().numpy()
    if masks.ndim == 2:
        masks = masks[None]
    return [convex_hull_regions(mask, min_size, merge_distance) for mask in masks]


def compare_regions(
    model: nn.Module,
    x: torch.Tensor,
    original_maps: torch.Tensor | np.ndarray,
    gad_maps: torch.Tensor | np.ndarray,
    target: int | Sequence[int] | torch.Tensor | None = None,
    q: float = Q,
    min_size: int = MIN_SIZE,
    merge_distance: int = 0,
    occlusion: str = "black",
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
    seed: int = 0,
    max_batch: int = 0,
    blur_kernel: int = BLUR_KERNEL,
    blur_sigma: float = BLUR_SIGMA,
) -> pd.DataFrame:
    """One row per image of ``x`` comparing the regions of ``original_maps`` and ``gad_maps`` (``[B, H, W]`` or
    ``[B, C, H, W]`` at the images' size), with the columns ``COLUMNS``:

    - ``regions_original``, ``regions_gad``: the number of regions (``regions_of_maps`` with ``q``, ``min_size``,
      ``merge_distance``);
    - ``area_original``, ``area_gad``: the union of each map's hulls as a fraction of the image;
    - ``rc = area_gad / area_original`` (< 1: GAD explains with less); NaN where the original has no region (a
      ratio to nothing is undefined; ``summarise_regions`` excludes it and counts it);
    - ``rs_gad``: RS of GAD's hulls; ``rs_removed``: RS of the original's hull pixels outside GAD's hulls (what GAD
      removed); ``rs_random``: RS of a random control with the area of GAD's hulls (``random_regions_like``, drawn
      from ``seed`` and the image's content, so an image gets the same control in any batch). RS as
      ``region_sensitivity`` (``target``, ``occlusion``, ``mean``, ``std``, ``max_batch``, blur): all three masks of
      every image scored in the same batched forward passes; an empty mask gives 0.

    The caller adds its own ``image`` and ``label`` columns.
    """
    batch = x.shape[0]
    shape = (int(x.shape[-2]), int(x.shape[-1]))
    for maps in (original_maps, gad_maps):
        size = tuple(torch.as_tensor(maps).shape)
        if len(size) not in (3, 4) or size[0] != batch or size[-2:] != shape:
            raise ConfigError(f"maps {size} do not fit images {tuple(x.shape)}: expected [{batch}, H, W] or "
                              f"[{batch}, C, H, W] with H, W = {shape}")
    original = regions_of_maps(original_maps, q, None, min_size, merge_distance)
    gad = regions_of_maps(gad_maps, q, None, min_size, merge_distance)
    masks = np.zeros((batch, 3, *shape), dtype=bool)
    for i in range(batch):
        kept, whole = union_mask(gad[i], shape), union_mask(original[i], shape)
        masks[i, 0] = kept
        masks[i, 1] = whole & ~kept
        masks[i, 2] = random_regions_like(kept, content_seed(seed, x[i]))
    sensitivity = region_sensitivity(model, x, torch.from_numpy(masks), target, occlusion, mean, std, max_batch,
                                     blur_kernel, blur_sigma).numpy()
    pixels = shape[0] * shape[1]
    area_original = np.array([np.count_nonzero(union_mask(regions, shape)) for regions in original]) / pixels
    area_gad = masks[:, 0].reshape(batch, -1).sum(axis=1) / pixels
    with np.errstate(divide="ignore", invalid="ignore"):
        rc = np.where(area_original > 0, area_gad / np.where(area_original > 0, area_original, 1.0), np.nan)
    return pd.DataFrame({
        "regions_original": [len(regions) for regions in original],
        "regions_gad": [len(regions) for regions in gad],
        "area_original": area_original,
        "area_gad": area_gad,
        "rc": rc,
        "rs_gad": sensitivity[:, 0],
        "rs_removed": sensitivity[:, 1],
        "rs_random": sensitivity[:, 2],
    })


def summarise_regions(
    table: pd.DataFrame, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0
) -> pd.DataFrame:
    """Dataset means of a ``compare_regions`` table (or ``regions.csv``): one row per column of ``COLUMNS`` present,
    then one per pair of ``SHARES`` (``"rs_gad > rs_removed"``: the share of images where occluding GAD's regions
    lowers the probability more than occluding what GAD removed; ties count as not more), each with its mean, its
    percentile-bootstrap interval (``interpgrad.metrics.statistics.bootstrap_mean``), n and the number of images
    excluded (NaN values: rc without an original region).

    Columns: ``quantity, mean, ci_low, ci_high, n, excluded``.
    """
    rows = []
    for column in COLUMNS:
        if column in table:
            rows.append({"quantity": column, **bootstrap_mean(table[column].to_numpy(float), confidence, resamples,
                                                             seed).to_dict()})
    for first, second in SHARES:
        if first in table and second in table:
            a, b = table[first].to_numpy(float), table[second].to_numpy(float)
            wins = np.where(np.isfinite(a) & np.isfinite(b), (a > b).astype(float), np.nan)
            rows.append({"quantity": f"{first} > {second}",
                         **bootstrap_mean(wins, confidence, resamples, seed).to_dict()})
    return pd.DataFrame(rows, columns=["quantity", "mean", "ci_low", "ci_high", "n", "excluded"])
