"""The pixel-perturbation test (Srinivas & Fleuret 2021, section 5.2) in pixel space, with the judge and the model
whose saliency orders the pixels chosen separately (the paper's second experiment judges the baseline with every
model's gradients).

Saliency = the signed gradient of the target logit (default: the true class) with respect to the pixels; per-pixel
score = its standard deviation over the colour channels. For every fraction f of ``logspace(-2, 0, 25)`` the
round(f x H x W) least important pixels (all channels) are set to a constant (0.5, the official code's; the paper uses
the image mean) and the judge's top-1 accuracy against the labels is recorded: higher is better.

The masking is the evaluation module's (``interpgrad.metrics.mechanics``: ``pixel_ranks`` orders the pixels,
``perturbation_curves`` builds and scores the perturbed images in batched chunks); the fractions and the rounding are
the ``pixel_perturbation`` metric's (``masking_fractions``), so both give the same curve on the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import ConfigError
from ..gradients import input_gradient
from ..metrics.faithfulness import masking_fractions
from ..metrics.mechanics import perturbation_curves, pixel_ranks
from ..metrics.statistics import CONFIDENCE, RESAMPLES, bootstrap_mean

__all__ = ["PerturbationCurves", "channel_std_saliency", "pixel_perturbation_curves"]


@dataclass(frozen=True)
class PerturbationCurves:
    """``fractions`` ``[T]`` of pixels removed; ``correct`` ``[N, T]`` (1 where the judge is right, else 0);
    ``table``: one row per fraction (``fraction``, ``accuracy``, ``ci_low``, ``ci_high``, ``n``), the accuracy over
    images with its 95 % bootstrap interval."""

    fractions: np.ndarray
    correct: np.ndarray
    table: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)


def channel_std_saliency(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``std_c d f_t(x) / d x_c`` per pixel ``[B, H, W]`` (float64): the per-pixel score of the paper, from the signed
    pixel-space logit gradient of ``model`` (used in its current mode) for ``targets``."""
    return input_gradient(model, images, targets).double().std(dim=1)


def pixel_perturbation_curves(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | Sequence[int],
    *,
    saliency_model: nn.Module | None = None,
    targets: torch.Tensor | Sequence[int] | None = None,
    fractions: Sequence[float] | None = None,
    constant: float = 0.5,
    batch_size: int = 32,
    rows: int = 256,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> PerturbationCurves:
    """Accuracy of ``model`` (the judge) as the least salient pixels of ``images`` ``[N, C, H, W]`` (in [0, 1]) become
    ``constant``; saliency from ``saliency_model`` (default: the judge itself) for ``targets`` (default: ``labels``).
    Both models take pixels (``PixelSpaceModel``) and are put in eval mode for the call. ``rows``: perturbed images
    per forward pass."""
    if not 0.0 <= constant <= 1.0:
        raise ConfigError(f"the replacement constant is a pixel value in [0, 1], got {constant}")
    points = masking_fractions(25) if fractions is None else np.asarray([float(f) for f in fractions])
    if points.size == 0 or (points < 0).any() or (points > 1).any():
        raise ConfigError("fractions must be in [0, 1] (at least one)")
    labels = torch.as_tensor(labels, dtype=torch.long).cpu()
    targets = labels if targets is None else torch.as_tensor(targets, dtype=torch.long).cpu()
    explainer = model if saliency_model is None else saliency_model
    device = next(model.parameters()).device
    height, width = images.shape[-2:]
    counts = [int(round(float(f) * height * width)) for f in points]
    modes = (model.training, explainer.training)
    model.eval(), explainer.eval()
    correct = []
    try:
        for first in range(0, len(images), batch_size):
            last = min(len(images), first + batch_size)
            x = images[first:last].to(device)
            ranks = pixel_ranks(channel_std_saliency(explainer, x, targets[first:last].to(device)), descending=False)
            with torch.no_grad():
                correct.append(perturbation_curves(model, x, torch.full_like(x, constant), ranks, counts,
                                                   labels[first:last], "accuracy", rows))
            if progress is not None:
                progress(last, len(images))
    finally:
        model.train(modes[0])
        explainer.train(modes[1])
    values = torch.cat(correct).numpy()
    rows_of_table = []
    for index, fraction in enumerate(points):
        summary = bootstrap_mean(values[:, index], confidence, resamples, seed)
        rows_of_table.append({"fraction": float(fraction), "accuracy": summary.mean, "ci_low": summary.ci_low,
                              "ci_high": summary.ci_high, "n": summary.n})
    settings = {"constant": constant, "saliency": "channel std of the signed logit gradient",
                "targets": "labels" if targets is labels else "given", "images": len(images)}
    return PerturbationCurves(points, values, pd.DataFrame(rows_of_table), settings)
