"""Important pixels, their connected components and the convex hulls around them (OpenCV), the hulls' union and
region complexity (RC), and a random control of equal area.

Our reading of the GAD paper (Mazini Rodrigues, Boutry, Najman 2024; its algorithms and code are not public, see
PAPERS.md): a map's top q % pixels are grouped into 8-connected components, components under a minimum size are
dropped, nearby components may be merged, and each group is enclosed by its convex hull "the way humans read a map".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch

from ..errors import ConfigError

__all__ = [
    "MIN_SIZE",
    "Q",
    "Region",
    "convex_hull_regions",
    "important_pixels",
    "random_regions_like",
    "region_complexity",
    "union_mask",
]

Q = 10.0
"""Default share of important pixels, in percent (the GAD paper's binarisation, as we read it)."""
MIN_SIZE = 4
"""Default smallest component kept, in pixels (our choice: single pixels, pairs and triples of a speckled gradient
map are noise rather than regions)."""


def _as_maps(maps: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Maps as float64 ``[B, H, W]`` with NaN and infinities at 0: ``[H, W]`` gains a batch axis, ``[B, C, H, W]`` is
    reduced over its channels by the sum of absolute values."""
    values = torch.as_tensor(maps).detach()
    if values.dim() == 2:
        values = values.unsqueeze(0)
    elif values.dim() == 4:
        values = values.abs().sum(dim=1)
    elif values.dim() != 3:
        raise ConfigError(f"expected maps [H, W], [B, H, W] or [B, C, H, W], got shape {tuple(values.shape)}")
    return torch.nan_to_num(values.double(), nan=0.0, posinf=0.0, neginf=0.0)


def _top_pixels(values: torch.Tensor, count: int) -> torch.Tensor:
    """Bool ``[B, P]``: the ``count`` largest values of each row, ties in raster order, positive values only. The
    count-th largest value is found with ``topk`` (several times faster than a full sort); of the pixels equal to it,
    the first ones in raster order fill the count."""
    if count <= 0:
        return torch.zeros_like(values, dtype=torch.bool)
    kth = torch.topk(values, count, dim=1, sorted=False).values.amin(dim=1, keepdim=True)
    above, tied = values > kth, values == kth
    room = count - above.sum(dim=1, keepdim=True)
    return (above | (tied & (tied.cumsum(dim=1) <= room))) & (values > 0)


def important_pixels(
    maps: torch.Tensor | np.ndarray, q: float = Q, threshold: float | None = None
) -> torch.Tensor:
    """Bool masks of each map's important pixels: its top ``q`` percent, or with ``threshold`` every pixel whose value
    is ``>= threshold`` (then ``q`` is not used).

    ``maps``: ``[H, W]`` or ``[B, H, W]`` (masks of the same shape), or ``[B, C, H, W]`` reduced over the channels by
    the sum of absolute values first (our reading of the paper's binarisation). The top q % is exactly
    ``floor(q / 100 * H * W + 0.5)`` pixels, ties broken in raster order (the earlier pixel first), except that only
    pixels with a positive value qualify: a map with fewer positive pixels gives only those, an all-zero map an empty
    mask. Maps are ranked by their values as given (pass ``map.abs()`` to rank a signed map by magnitude); NaN counts
    as 0. On the maps' device.
    """
    squeeze = torch.as_tensor(maps).dim() == 2
    values = _as_maps(maps)
    if threshold is not None:
        masks = values >= threshold
    else:
        if not 0.0 <= q <= 100.0:
            raise ConfigError(f"q is a percentage in [0, 100], got {q}")
        masks = _top_pixels(values.flatten(1), math.floor(q / 100.0 * values[0].numel() + 0.5)).view_as(values)
    return masks[0] if squeeze else masks


@dataclass(frozen=True, eq=False)
class Region:
    """One region: a group of important pixels and its convex hull.

    Attributes:
        polygon: the hull's vertices, int32 ``[K, 2]`` as (x, y) pixel coordinates, in OpenCV's order (clockwise on
            screen); K = 1 for a single pixel and K = 2 for collinear pixels.
        area: the number of pixels of ``mask``.
        mask: bool ``[H, W]``, the filled hull (``cv2.fillPoly``): every pixel whose centre lies inside or on the
            hull, plus the pixels of the hull's edges drawn as 8-connected digital lines (on a slanted edge these can
            lie up to half a pixel outside it). A single pixel fills itself, collinear pixels the digital segment
            between the two ends (which holds them all): a region's area is never 0 and its mask always contains
            its pixels.
        pixels: the number of important pixels in the group (its components' own pixels, not the hull's).
    """

    polygon: np.ndarray
    area: int
    mask: np.ndarray
    pixels: int


def _as_mask(mask: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ConfigError(f"expected one mask [H, W], got shape {mask.shape}")
    return np.ascontiguousarray(mask != 0, dtype=np.uint8)


def _group_labels(mask: np.ndarray, min_size: int, merge_distance: int) -> np.ndarray:
    """int32 labels ``[H, W]``: 0 for background and dropped components, one label per group of kept components."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
    small = stats[:, cv2.CC_STAT_AREA] < min_size
    small[0] = True
    if small.all():
        return np.zeros_like(labels)
    if small[1:].any():
        lookup = np.zeros(count, dtype=np.int32)
        lookup[~small] = np.arange(1, int((~small).sum()) + 1, dtype=np.int32)
        labels = lookup[labels]
    if merge_distance > 0:
        # Two pixels at Chebyshev distance D have 8-connected dilations by a square of side s exactly when D <= s:
        # side merge_distance + 1 joins components separated by at most merge_distance background pixels.
        side = merge_distance + 1
        kept = (labels > 0).astype(np.uint8)
        grown = cv2.dilate(kept, np.ones((side, side), np.uint8))
        _, grown_labels = cv2.connectedComponents(grown, connectivity=8, ltype=cv2.CV_32S)
        labels = np.where(kept > 0, grown_labels, 0).astype(np.int32)
    return labels


def convex_hull_regions(
    mask: torch.Tensor | np.ndarray, min_size: int = MIN_SIZE, merge_distance: int = 0
) -> list[Region]:
    """The regions of a bool mask ``[H, W]`` (e.g. one of ``important_pixels``), each enclosed by its convex hull.

    Our reading of the paper: the mask's 8-connected components (``cv2.connectedComponentsWithStats``) with fewer
    than ``min_size`` pixels are dropped; then, with ``merge_distance`` > 0, the remaining components separated by at
    most ``merge_distance`` background pixels (Chebyshev distance, i.e. a gap of that many pixels along a row, column
    or diagonal) are joined, transitively (single linkage, computed as the 8-connected components of the kept pixels
    dilated by a square of side ``merge_distance + 1``); small components are dropped before merging, so noise never
    bridges two regions. Each group's own pixels are enclosed by ``cv2.convexHull`` and the hull filled with
    ``cv2.fillPoly`` (see ``Region``). Regions come in raster order of their first pixel.
    """
    if min_size < 0 or merge_distance < 0:
        raise ConfigError(f"min_size and merge_distance must be >= 0, got {min_size} and {merge_distance}")
    pixels = _as_mask(mask)
    height, width = pixels.shape
    labels = _group_labels(pixels, int(min_size), int(merge_distance))
    flat = np.flatnonzero(labels)
    if flat.size == 0:
        return []
    group_of = labels.ravel()[flat]
    ordered = flat[np.argsort(group_of, kind="stable")]  # grouped; raster order within each group
    points = np.empty((ordered.size, 2), dtype=np.int32)
    points[:, 1], points[:, 0] = np.divmod(ordered, width)
    ends = np.cumsum(np.bincount(group_of)[1:])
    starts = ends - np.diff(ends, prepend=0)
    regions = []
    for group in np.argsort(ordered[starts], kind="stable"):  # raster order of each group's first pixel
        start, end = int(starts[group]), int(ends[group])
        polygon = cv2.convexHull(points[start:end]).reshape(-1, 2)
        filled = np.zeros((height, width), dtype=np.uint8)
        cv2.fillPoly(filled, [polygon.reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8)
        regions.append(Region(polygon=polygon, area=int(np.count_nonzero(filled)), mask=filled.view(bool),
                              pixels=end - start))
    return regions


def union_mask(regions: Sequence[Region], shape: tuple[int, int]) -> np.ndarray:
    """Bool ``[H, W]``: the pixels inside any of the regions' hulls (hulls may overlap; each pixel counts once)."""
    union = np.zeros(tuple(shape), dtype=bool)
    for region in regions:
        if region.mask.shape != union.shape:
            raise ConfigError(f"a region of shape {region.mask.shape} does not fit an image of shape {union.shape}")
        union |= region.mask
    return union


def region_complexity(regions: Sequence[Region], shape: tuple[int, int]) -> tuple[int, float]:
    """RC of one map's regions: ``(number of regions, area of the union of their hulls / image area)``. The paper's
    ratio GAD / original is ``compare_regions``' ``rc``."""
    height, width = shape
    return len(regions), float(np.count_nonzero(union_mask(regions, shape))) / (height * width)


def random_regions_like(
    mask_or_regions: torch.Tensor | np.ndarray | Sequence[Region],
    generator: np.random.Generator | int,
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """A random control of equal area: bool ``[H, W]`` with exactly as many pixels as the given mask (or the union of
    the given regions' hulls; ``shape`` is needed only for an empty list of regions).

    Our choice of a fair control: the same shapes at random places. The mask's 8-connected pieces (for regions:
    each hull, hulls that overlap or touch as one piece) are moved, largest first, each by a translation drawn
    uniformly among those that keep it entirely inside the image (no wrapping) without overlapping a piece already
    placed; a piece that fits nowhere is replaced by as many pixels drawn uniformly from those still free. The
    control may fall on the original regions (it is a uniform null). ``generator``: a NumPy generator or a seed; the
    same seed and mask always give the same control.
    """
    if isinstance(mask_or_regions, (torch.Tensor, np.ndarray)):
        target = _as_mask(mask_or_regions)
    else:
        regions = list(mask_or_regions)
        if shape is None:
            if not regions:
                raise ConfigError("random_regions_like needs the image shape for an empty list of regions")
            shape = regions[0].mask.shape
        target = union_mask(regions, shape).astype(np.uint8)
    rng = generator if isinstance(generator, np.random.Generator) else np.random.default_rng(generator)
    height, width = target.shape
    count, labels, stats, _ = cv2.connectedComponentsWithStats(target, connectivity=8, ltype=cv2.CV_32S)
    placed = np.zeros_like(target)
    left_over = 0
    for label in sorted(range(1, count), key=lambda k: (-int(stats[k, cv2.CC_STAT_AREA]), k)):
        x, y, w, h = (int(value) for value in stats[label, :4])
        piece = (labels[y:y + h, x:x + w] == label).astype(np.uint8)
        if placed.any():
            # blocked[ty, tx] = 1 where the piece moved to (tx, ty) would touch a placed pixel: a dilation of the
            # placed pixels by the piece itself, anchored at its top-left corner.
            blocked = cv2.dilate(placed, piece, anchor=(0, 0))[:height - h + 1, :width - w + 1]
            free = np.flatnonzero(blocked == 0)
        else:
            free = np.arange((height - h + 1) * (width - w + 1))
        if free.size == 0:
            left_over += int(stats[label, cv2.CC_STAT_AREA])
            continue
        top, left = divmod(int(free[rng.integers(free.size)]), width - w + 1)
        placed[top:top + h, left:left + w] |= piece
    if left_over:
        spare = np.flatnonzero(placed.ravel() == 0)
        placed.ravel()[rng.choice(spare, size=left_over, replace=False)] = 1
    return placed.astype(bool)
