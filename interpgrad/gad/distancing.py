"""Artificial distancing: the logits the support models learn to produce, and the schedule of distances alpha_s.

Our reading of GAD (Mazini Rodrigues, Boutry & Najman 2024, arXiv 2401.14434; PAPERS.md section 2 — the published
algorithm could not be read, so every choice below is a parameter):

- For an image on side a of the strategy, ``mode="other"`` lowers every logit of side b by alpha; ``mode="own"``
  raises every logit of side a by alpha; ``mode="both"`` does each by alpha / 2, so that in every mode the gap between
  the two sides grows by exactly alpha and the schedules are comparable. Symmetrically for side-b images. Logits of
  classes on neither side, and images on neither side, are unchanged.
- The shift depends only on the image's side, so within a class every logit moves by the same constant: the order of
  the activations among the class's images is preserved (the paper's requirement).
- ``alpha_s = s * scale * std(g)`` for s = 1..S, with ``g = A(z_a) - A(z_b)`` over the strategy's training images
  (fixed orientation; for a pair this is PAPERS.md's ``z_k - z_l``) and ``A`` the ``max`` (default) or ``mean`` over a
  side's classes; ``std`` is the sample standard deviation.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..errors import ConfigError
from .strategies import Strategy

__all__ = ["DISTANCING_MODES", "GAP_REDUCTIONS", "alpha_schedule", "distanced_logits", "logit_gap"]

DISTANCING_MODES = ("other", "own", "both")
GAP_REDUCTIONS = ("max", "mean")


def _side_masks(strategy: Strategy, classes: int, like: torch.Tensor) -> torch.Tensor:
    """``[2, classes]``: row 0 marks side a's classes, row 1 side b's."""
    masks = torch.zeros(2, classes, dtype=like.dtype, device=like.device)
    masks[0, list(strategy.side_a)] = 1
    masks[1, list(strategy.side_b)] = 1
    return masks


def distanced_logits(
    logits: torch.Tensor, sides: torch.Tensor, strategy: Strategy, alpha: float, mode: str = "other"
) -> torch.Tensor:
    """The support models' regression targets: ``logits`` ``[N, C]`` with the two sides pushed apart by ``alpha`` for
    every image on a side (``sides`` ``[N]``: 0 = side a, 1 = side b, -1 = unchanged; ``Strategy.sides``).

    ``other``: ``z_j - alpha`` for j on the other side; ``own``: ``z_j + alpha`` for j on the image's side; ``both``:
    ``alpha / 2`` each way."""
    if mode not in DISTANCING_MODES:
        raise ConfigError(f"unknown distancing mode {mode!r}; choose one of {', '.join(DISTANCING_MODES)}")
    masks = _side_masks(strategy, logits.shape[1], logits)
    sides = sides.to(logits.device)
    own, other = masks[sides.clamp(min=0)], masks[1 - sides.clamp(min=0)]
    lower, raise_ = {"other": (alpha, 0.0), "own": (0.0, alpha), "both": (alpha / 2, alpha / 2)}[mode]
    shift = raise_ * own - lower * other
    return logits + shift * (sides >= 0).unsqueeze(1).to(logits.dtype)


def logit_gap(logits: torch.Tensor, strategy: Strategy, reduction: str = "max") -> torch.Tensor:
    """``A(z_a) - A(z_b)`` per image, ``[N]``: side a's logits against side b's, each reduced by ``A`` (max or mean)."""
    if reduction not in GAP_REDUCTIONS:
        raise ConfigError(f"unknown gap reduction {reduction!r}; choose one of {', '.join(GAP_REDUCTIONS)}")
    a, b = logits[:, list(strategy.side_a)], logits[:, list(strategy.side_b)]
    if reduction == "max":
        return a.amax(dim=1) - b.amax(dim=1)
    return a.mean(dim=1) - b.mean(dim=1)


def alpha_schedule(
    logits: torch.Tensor | None,
    strategy: Strategy,
    supports: int = 3,
    scale: float = 1.0,
    reduction: str = "max",
    alphas: Sequence[float] | None = None,
) -> tuple[float, ...]:
    """``alphas`` when given (one per support model), else ``s * scale * std(logit_gap)`` for s = 1..``supports`` over
    ``logits``, the original's logits of the strategy's training images."""
    if alphas is not None:
        values = tuple(float(alpha) for alpha in alphas)
        if not values or any(not alpha >= 0 or alpha == float("inf") for alpha in values):
            raise ConfigError(f"alphas must be one or more finite numbers >= 0, got {list(alphas)}")
        return values
    if logits is None or logits.shape[0] < 2:
        raise ConfigError("the alpha schedule needs the logits of at least two training images of the strategy")
    spread = float(logit_gap(logits.double(), strategy, reduction).std())
    return tuple(step * scale * spread for step in range(1, supports + 1))
