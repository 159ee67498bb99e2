"""Scores of one explanation, for showing beside a map (the app's Explore grid): the metrics that apply to what is
known about the images, computed on demand."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ..explain import Explanation
from .core import Explainer, MetricBatch, MetricResult, get_metric

__all__ = ["EXPLORE_METRICS", "score_explanation"]

EXPLORE_METRICS = ("insertion", "deletion", "energy_pointing_game")


def score_explanation(
    model: nn.Module,
    x: torch.Tensor,
    explanation: Explanation,
    names: Sequence[str] = EXPLORE_METRICS,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    masks: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    explainer: Explainer | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, MetricResult]:
    """Each metric of ``names`` that applies (masks, labels or the explainer given when it needs them) on the
    explanation of ``x`` by ``model`` (``x`` normalised with ``mean`` / ``std``): name -> MetricResult."""
    batch = MetricBatch.from_explanation(model, x, explanation, mean=mean, std=std, masks=masks, labels=labels,
                                         explainer=explainer)
    results = {}
    for name in names:
        metric = get_metric(name)
        if (metric.needs_masks and masks is None) or (metric.needs_labels and labels is None):
            continue
        if metric.category == "sanity" and explainer is None:
            continue
        results[name] = metric(batch, **dict((params or {}).get(name, {})))
    return results
