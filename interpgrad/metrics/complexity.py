"""Complexity: how concentrated is the map? A map that spreads its mass over every pixel is harder to read.

Both read the display map (non-negative). A map without any mass (all zero) scores 0 on both.
"""

from __future__ import annotations

import math

import torch

from ..params import Param
from .core import MetricBatch, MetricResult, register

__all__ = ["sparseness", "top10_energy"]


@register(
    "sparseness",
    "complexity",
    "higher",
    "Gini index of the map: 0 when every pixel has the same value, near 1 when one pixel has it all",
    protocol="Gini index of the display map: sum_i (2 i - n - 1) a_(i) / (n sum_i a_i) over the n pixels sorted "
    "increasingly; an all-zero map scores 0",
    source="Chalasani et al. 2020 (Concise explanations of neural networks using adversarial training), arXiv "
    "1810.06583; Hedström et al. 2023 (Quantus)",
)
def sparseness(batch: MetricBatch) -> MetricResult:
    values = torch.sort(batch.maps.detach().double().flatten(1).clamp(min=0), dim=1).values
    count = values.shape[1]
    weights = 2 * torch.arange(1, count + 1, dtype=torch.float64, device=values.device) - count - 1
    total = values.sum(dim=1)
    gini = (values * weights).sum(dim=1) / torch.where(total > 0, count * total, 1.0)
    return MetricResult(torch.where(total > 0, gini, 0.0))


@register(
    "top10_energy",
    "complexity",
    "higher",
    "share of the map's mass held by its 10 % highest pixels",
    params=(Param("fraction", float, 0.1, "the share of pixels counted from the top", low=0.001, high=1.0),),
    protocol="sum of the ceil(fraction x H x W) highest values of the display map / the sum of all its values; an "
    "all-zero map scores 0",
    source="concentration of the attribution mass, as in the complexity metrics of Hedström et al. 2023 (Quantus)",
)
def top10_energy(batch: MetricBatch, fraction: float) -> MetricResult:
    values = batch.maps.detach().double().flatten(1).clamp(min=0)
    count = max(1, math.ceil(fraction * values.shape[1] - 1e-9))  # 0.1 x 1000 is 100, not 101
    top = torch.topk(values, count, dim=1).values.sum(dim=1)
    total = values.sum(dim=1)
    return MetricResult(torch.where(total > 0, top / torch.where(total > 0, total, 1.0), 0.0))
