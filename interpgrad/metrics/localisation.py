"""Localisation: does the map point at the object? Scored against a ground-truth mask s of every image (the shapes
dataset has them). Definitions follow Quantus (Hedström et al. 2023) except where PAPERS.md notes its defects:

- an empty mask makes every localisation score undefined: NaN, excluded from the mean and counted (Quantus' pointing
  game counts it as a hit);
- a constant map (an all-zero Grad-CAM, say) points nowhere: a miss for the pointing game, 0 for the rank-based
  scores, 0.5 for the ROC-AUC (chance), 0 for the energy share when it holds no energy at all;
- ties between pixels are broken in raster order (deterministic).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..params import Param
from .core import MetricBatch, MetricResult, register
from .mechanics import ATTRIBUTION_PARAM, attribution_of, average_ranks, is_constant, pixel_ranks

__all__ = ["dilate", "energy_pointing_game", "pointing_game", "relevance_rank_accuracy", "roc_auc", "topk_iou"]

_SOURCE_QUANTUS = "Hedström et al. 2023 (Quantus), JMLR 24(34)"


def _masks(batch: MetricBatch, name: str) -> torch.Tensor:
    return batch.need("masks", name).to(torch.bool).cpu()


def _finish(values: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``values`` with NaN where the mask is empty."""
    empty = masks.flatten(1).sum(dim=1) == 0
    return torch.where(empty, math.nan, values.double())


def dilate(masks: torch.Tensor, radius: int) -> torch.Tensor:
    """Masks ``[B, H, W]`` grown by a disc of ``radius`` pixels (every pixel within that Euclidean distance of the mask)."""
    if radius <= 0:
        return masks
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    disc = ((offsets.view(-1, 1) ** 2 + offsets.view(1, -1) ** 2) <= radius**2).to(torch.float32)
    grown = F.conv2d(masks.to(torch.float32).unsqueeze(1), disc[None, None], padding=radius)
    return grown.squeeze(1) > 0.5


@register(
    "pointing_game",
    "localisation",
    "higher",
    "whether the map's maximum lies on the object",
    params=(
        Param("tolerance", int, 0, "a hit may lie this many pixels outside the mask (TorchRay: 15 at 224 px)", low=0, high=512),
        ATTRIBUTION_PARAM,
    ),
    protocol="hit (1) when the first arg-max of the map lies in the mask grown by the tolerance, else 0; a constant map "
    "is a miss; an empty mask gives NaN (excluded, counted)",
    source=f"Zhang et al. 2018 (Top-down neural attention by excitation backprop), arXiv 1608.00507; {_SOURCE_QUANTUS}",
    needs_masks=True,
)
def pointing_game(batch: MetricBatch, tolerance: int, attribution: str) -> MetricResult:
    """1 when the map's arg-max is on the (grown) object, else 0; NaN for an empty mask."""
    masks = _masks(batch, "pointing_game")
    values = attribution_of(batch, attribution).cpu()
    peak = values.flatten(1).argmax(dim=1, keepdim=True)
    hits = dilate(masks, tolerance).flatten(1).gather(1, peak).squeeze(1) & ~is_constant(values)
    return MetricResult(_finish(hits, masks))


@register(
    "energy_pointing_game",
    "localisation",
    "higher",
    "share of the map's (positive) energy that lies on the object",
    params=(ATTRIBUTION_PARAM,),
    protocol="sum(a x s) / sum(a) with a the non-negative attribution; a map without energy scores 0; an empty mask "
    "gives NaN (excluded, counted)",
    source=f"Wang et al. 2020 (Score-CAM), arXiv 1910.01279; attribution localisation (Kohlbrenner et al. 2020) in {_SOURCE_QUANTUS}",
    needs_masks=True,
)
def energy_pointing_game(batch: MetricBatch, attribution: str) -> MetricResult:
    """``sum(a * s) / sum(a)`` per image."""
    masks = _masks(batch, "energy_pointing_game")
    values = attribution_of(batch, attribution).cpu()
    total = values.flatten(1).sum(dim=1)
    inside = (values * masks).flatten(1).sum(dim=1)
    share = torch.where(total > 0, inside / torch.where(total > 0, total, 1.0), 0.0)
    return MetricResult(_finish(share, masks))


def _top(values: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """The ``counts[i]`` highest pixels of every map ``[B, H, W]`` as a flat mask ``[B, H*W]`` (ties in raster order)."""
    return pixel_ranks(values, descending=True) < counts.view(-1, 1)


@register(
    "relevance_rank_accuracy",
    "localisation",
    "higher",
    "share of the map's K highest pixels that lie on the object, K the object's area",
    params=(ATTRIBUTION_PARAM,),
    protocol="|top-K(a) ∩ s| / K with K = |s| (ties in raster order); a constant map scores 0; an empty mask gives NaN",
    source=f"Arras, Osman & Samek 2022 (CLEVR-XAI), arXiv 2003.07258; {_SOURCE_QUANTUS}",
    needs_masks=True,
)
def relevance_rank_accuracy(batch: MetricBatch, attribution: str) -> MetricResult:
    masks = _masks(batch, "relevance_rank_accuracy")
    values = attribution_of(batch, attribution).cpu()
    flat_masks = masks.flatten(1)
    area = flat_masks.sum(dim=1)
    inside = (_top(values, area) & flat_masks).sum(dim=1).double()
    accuracy = torch.where(area > 0, inside / area.clamp(min=1), 0.0)
    return MetricResult(_finish(torch.where(is_constant(values), 0.0, accuracy), masks))


@register(
    "topk_iou",
    "localisation",
    "higher",
    "intersection over union of the map's k highest pixels with the object",
    params=(
        Param("fraction", float, 0.0, "k as a fraction of the image; 0 = the object's area (k = |s|)", low=0.0, high=1.0),
        ATTRIBUTION_PARAM,
    ),
    protocol="|T ∩ s| / |T ∪ s| with T the k highest pixels of the map (ties in raster order), k = |s| or fraction x H "
    "x W; a constant map scores 0; an empty mask gives NaN",
    source=f"top-k intersection (Theiner et al. 2021) in {_SOURCE_QUANTUS}, as an IoU",
    needs_masks=True,
)
def topk_iou(batch: MetricBatch, fraction: float, attribution: str) -> MetricResult:
    masks = _masks(batch, "topk_iou")
    values = attribution_of(batch, attribution).cpu()
    flat_masks = masks.flatten(1)
    area = flat_masks.sum(dim=1)
    counts = area if fraction == 0 else torch.full_like(area, max(1, int(round(fraction * batch.pixels))))
    top = _top(values, counts)
    union = (top | flat_masks).sum(dim=1).double()
    iou = (top & flat_masks).sum(dim=1).double() / union.clamp(min=1)
    return MetricResult(_finish(torch.where(is_constant(values), 0.0, iou), masks))


@register(
    "roc_auc",
    "localisation",
    "higher",
    "area under the ROC curve of the map as a detector of the object's pixels",
    params=(ATTRIBUTION_PARAM,),
    protocol="ROC-AUC of the map's values against the mask (Mann-Whitney with average ranks for ties: a constant map "
    "scores 0.5); an empty or full mask gives NaN",
    source=f"{_SOURCE_QUANTUS} (AUC)",
    needs_masks=True,
)
def roc_auc(batch: MetricBatch, attribution: str) -> MetricResult:
    masks = _masks(batch, "roc_auc")
    values = attribution_of(batch, attribution).cpu()
    flat_masks = masks.flatten(1)
    positives = flat_masks.sum(dim=1).double()
    negatives = flat_masks.shape[1] - positives
    rank_sum = (average_ranks(values.flatten(1)) * flat_masks).sum(dim=1)
    defined = (positives > 0) & (negatives > 0)
    auc = (rank_sum - positives * (positives + 1) / 2) / torch.where(defined, positives * negatives, 1.0)
    return MetricResult(torch.where(defined, auc, math.nan))
