"""Density-ratio profile (Srinivas & Fleuret 2021): how the implicit class-conditional density log p(x | y) =
f_y(x) - log Z changes around the data. For every noise level sigma of a log grid::

    r(sigma) = mean over images x (true class y) and eta ~ N(0, sigma^2 I) of  f_y(x + eta) - f_y(x)

the log of the density ratio p(x + eta | y) / p(x | y) (Z cancels). A model whose density peaks at the data has
r(sigma) < 0, falling with sigma (lower is better). ``ratio`` is also reported: the mean of exp(f_y(x + eta) - f_y(x)),
the ratio itself as the paper plots it.

Pixels are in [0, 1]; ``x + eta`` is **not** clamped to [0, 1] by default (neither the paper nor its code mention a
clamp; ``clamp=True`` keeps the noisy images valid images). At sigma = 0 the difference is exactly 0: the clean and the
noisy images go through the same forward pass. Each image draws its noise from its own generator (seed, image,
level), so the profile does not depend on the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import ConfigError
from ..gradients import select_logits
from ..metrics.statistics import CONFIDENCE, RESAMPLES, bootstrap_mean
from .randomness import generator_for, normal_like

__all__ = ["DEFAULT_STDS", "DensityProfile", "density_ratio_profile"]

DEFAULT_STDS = (0.0, *np.logspace(-3, 0, 13).tolist())
"""0 (the check: exactly 0) and 13 levels from 1e-3 to 1 in pixel units."""


@dataclass(frozen=True)
class DensityProfile:
    """``stds`` ``[S]``; ``differences`` ``[N, S]``: per image, the mean over its noise samples of
    f_y(x + eta) - f_y(x); ``ratios`` ``[N, S]``: the mean of exp of it; ``table``: one row per level (``std``,
    ``mean``, ``ci_low``, ``ci_high``, ``n``, ``ratio_mean``, ``ratio_ci_low``, ``ratio_ci_high``), means over images
    with 95 % bootstrap intervals."""

    stds: np.ndarray
    differences: np.ndarray
    ratios: np.ndarray
    table: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)


def density_ratio_profile(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | Sequence[int],
    *,
    stds: Sequence[float] = DEFAULT_STDS,
    noise_samples: int = 4,
    seed: int = 0,
    clamp: bool = False,
    batch_size: int = 64,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    progress: Callable[[int, int], None] | None = None,
) -> DensityProfile:
    """The profile of ``model`` (pixel space, eval mode for the call) on ``images`` ``[N, C, H, W]`` in [0, 1] with
    their true ``labels`` (module docstring); ``noise_samples`` draws of eta per image and level."""
    levels = np.asarray([float(s) for s in stds], dtype=np.float64)
    if levels.size == 0 or (levels < 0).any() or not np.isfinite(levels).all():
        raise ConfigError("stds must be finite numbers >= 0 (at least one)")
    if noise_samples < 1:
        raise ConfigError(f"noise_samples must be >= 1, got {noise_samples}")
    labels = torch.as_tensor(labels, dtype=torch.long).cpu()
    device = next(model.parameters()).device
    count, shape = len(images), tuple(images.shape[1:])
    differences = np.empty((count, len(levels)))
    ratios = np.empty((count, len(levels)))
    training = model.training
    model.eval()
    done, total = 0, len(levels) * len(range(0, count, batch_size))
    try:
        with torch.no_grad():
            for first in range(0, count, batch_size):
                last = min(count, first + batch_size)
                x, y = images[first:last].to(device), labels[first:last].to(device)
                size = last - first
                for level_index, sigma in enumerate(levels):
                    generators = [generator_for(seed, index, level_index) for index in range(first, last)]
                    eta = normal_like((noise_samples, *shape), generators, device, x.dtype) * float(sigma)
                    noisy = (x.unsqueeze(1) + eta).flatten(0, 1)
                    if clamp:
                        noisy = noisy.clamp(0.0, 1.0)
                    logits = select_logits(model(torch.cat([x, noisy])), torch.cat([y, y.repeat_interleave(noise_samples)]))
                    clean, noisy_logits = logits[:size].double(), logits[size:].double().view(size, noise_samples)
                    difference = noisy_logits - clean.unsqueeze(1)
                    differences[first:last, level_index] = difference.mean(1).cpu().numpy()
                    ratios[first:last, level_index] = difference.exp().mean(1).cpu().numpy()
                    done += 1
                    if progress is not None:
                        progress(done, total)
    finally:
        model.train(training)
    rows = []
    for level_index, sigma in enumerate(levels):
        summary = bootstrap_mean(differences[:, level_index], confidence, resamples, seed)
        ratio = bootstrap_mean(ratios[:, level_index], confidence, resamples, seed)
        rows.append({"std": float(sigma), "mean": summary.mean, "ci_low": summary.ci_low, "ci_high": summary.ci_high,
                     "n": summary.n, "ratio_mean": ratio.mean, "ratio_ci_low": ratio.ci_low,
                     "ratio_ci_high": ratio.ci_high})
    settings = {"noise_samples": noise_samples, "seed": seed, "clamp": clamp, "images": count}
    return DensityProfile(levels, differences, ratios, pd.DataFrame(rows), settings)
