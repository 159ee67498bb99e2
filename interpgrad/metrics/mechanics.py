"""Mechanics the metrics share, written once: which attribution a metric reads, pixel orders and ranks, rank
correlation, the batched forward pass over perturbed images, substrates, and the area under a curve.

Nothing here loops over pixels in Python: perturbed images are built as ``where(rank < threshold, end, start)`` for
a chunk of (image, step) pairs at a time and scored in one forward pass per chunk.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from ..errors import ConfigError
from ..params import Param

__all__ = [
    "ATTRIBUTIONS",
    "ATTRIBUTION_PARAM",
    "SCORES",
    "attribution_of",
    "average_ranks",
    "blurred",
    "class_scores",
    "is_constant",
    "pearson",
    "perturbation_curves",
    "pixel_ranks",
    "scores_of",
    "spearman",
    "trapezoid_auc",
]

ATTRIBUTIONS = ("map", "positive", "absolute")
ATTRIBUTION_PARAM = Param(
    "attribution",
    str,
    "map",
    "which attribution is scored: map = the display map (a CAM's positive part, a gradient's largest magnitude over "
    "the channels), positive = the positive part of the signed map, absolute = |signed map|",
    choices=ATTRIBUTIONS,
)
SCORES = ("probability", "logit", "accuracy")


def attribution_of(batch, choice: str) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """The attribution ``[B, H, W]`` a metric reads (see ``ATTRIBUTION_PARAM``), as float64."""
    if choice == "map":
        values = batch.maps
    elif choice == "positive":
        values = batch.signed_maps.clamp(min=0)
    elif choice == "absolute":
        values = batch.signed_maps.abs()
    else:
        raise ConfigError(f"unknown attribution {choice!r}; choose one of {', '.join(ATTRIBUTIONS)}")
    return torch.nan_to_num(values.detach().double(), nan=0.0, posinf=0.0, neginf=0.0)


def is_constant(values: torch.Tensor) -> torch.Tensor:
    """Whether each map ``[B, ...]`` is constant (all-zero included): it carries no location and no order."""
    flat = values.flatten(1)
    return flat.amax(dim=1) == flat.amin(dim=1)


def pixel_ranks(values: torch.Tensor, descending: bool = True) -> torch.Tensor:
    """The position of every pixel in its map's order, ``[B, H*W]`` (0 = first): by decreasing value (most salient
    first) or increasing; ties keep the pixels' raster order (a stable sort), so results are deterministic."""
    flat = values.flatten(1)
    order = torch.sort(flat, dim=1, descending=descending, stable=True).indices
    ranks = torch.empty_like(order)
    positions = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    return ranks.scatter_(1, order, positions)


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1..P of every row of ``values`` ``[B, P]``, ties given their average rank (as scipy.stats.rankdata), in
    float64."""
    flat = values.double()
    ordered = torch.sort(flat, dim=1).values
    below = torch.searchsorted(ordered, flat.contiguous(), right=False)
    through = torch.searchsorted(ordered, flat.contiguous(), right=True)
    return (below + through + 1).double() / 2.0


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of the rows of ``a`` and ``b`` ``[B, P]`` (float64); NaN where a row is constant."""
    a, b = a.double(), b.double()
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    norms = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(norms > 0, (a * b).sum(dim=1) / torch.where(norms > 0, norms, 1.0), math.nan)


def spearman(reference: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each map of ``other`` with the same row of ``reference`` ``[B, ...]``: the Pearson
    correlation of their average ranks. A constant ``other`` map (e.g. a CAM that became all zero) keeps nothing of
    the reference's order: 0. A constant reference has no order to keep: NaN (excluded)."""
    ranks = pearson(average_ranks(reference.flatten(1)), average_ranks(other.flatten(1)))
    ranks = torch.where(is_constant(other), 0.0, ranks)
    return torch.where(is_constant(reference), math.nan, ranks)


def trapezoid_auc(curves: torch.Tensor) -> torch.Tensor:
    """The area under curves ``[B, T]`` sampled on a uniform grid over [0, 1] (T >= 2): the trapezoid rule,
    ``(sum - (first + last) / 2) / (T - 1)``, equal to ``numpy.trapezoid(curve, numpy.linspace(0, 1, T))``."""
    if curves.shape[1] < 2:
        raise ConfigError("a curve needs at least 2 points for its area")
    total = curves.sum(dim=1) - (curves[:, 0] + curves[:, -1]) / 2
    return total / (curves.shape[1] - 1)


def class_scores(logits: torch.Tensor, classes: torch.Tensor, score: str) -> torch.Tensor:
    """The score of ``classes`` under ``logits`` ``[M, K]``, float64 ``[M]``: ``probability`` (softmax, computed in
    float64), ``logit``, or ``accuracy`` (1 when the class is the arg-max, else 0)."""
    if score == "probability":
        return torch.log_softmax(logits.double(), dim=1).gather(1, classes.view(-1, 1)).squeeze(1).exp()
    if score == "logit":
        return logits.double().gather(1, classes.view(-1, 1)).squeeze(1)
    if score == "accuracy":
        return (logits.argmax(dim=1) == classes).double()
    raise ConfigError(f"unknown score {score!r}; choose one of {', '.join(SCORES)}")


def scores_of(model: nn.Module, images: torch.Tensor, classes: torch.Tensor, score: str, rows: int) -> torch.Tensor:
    """The score of ``classes[i]`` on ``images[i]`` (``class_scores``), ``rows`` images per forward pass; float64
    ``[M]`` on the CPU."""
    classes = classes.to(images.device)
    return torch.cat([class_scores(model(images[i:i + rows]), classes[i:i + rows], score).cpu()
                      for i in range(0, len(images), rows)])


def perturbation_curves(
    model: nn.Module,
    start: torch.Tensor,
    end: torch.Tensor,
    ranks: torch.Tensor,
    counts: Sequence[int],
    classes: torch.Tensor,
    score: str,
    rows: int,
    known: Mapping[int, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Scores ``[B, T]`` of the images that show ``end`` at the ``counts[t]`` first pixels of each image's order
    (``ranks``, from ``pixel_ranks``) and ``start`` everywhere else: point t of image i is
    ``where(ranks_i < counts[t], end_i, start_i)`` scored for ``classes[i]``.

    All B x T images are scored ``rows`` at a time (one forward pass per chunk; a chunk mixes images and steps), and
    no image is built before its chunk, so memory stays bounded by ``rows``. ``known``: step -> scores ``[B]``
    already known (the clean image's, from the explanation's logits), which are not computed again.
    """
    known = dict(known or {})
    batch = start.shape[0]
    height, width = start.shape[-2:]
    todo = torch.tensor([t for t in range(len(counts)) if t not in known], device=start.device, dtype=torch.long)
    thresholds = torch.as_tensor(list(counts), device=start.device).view(-1, 1)
    plane_ranks = ranks.to(start.device)
    classes = classes.to(start.device)
    scores = torch.empty(batch * len(todo), dtype=torch.float64, device=start.device)
    for first in range(0, len(scores), rows):
        items = torch.arange(first, min(len(scores), first + rows), device=start.device)
        image, step = items // len(todo), todo[items % len(todo)]
        switched = (plane_ranks[image] < thresholds[step]).view(-1, 1, height, width)
        perturbed = torch.where(switched, end[image], start[image])
        scores[first:first + len(items)] = class_scores(model(perturbed), classes[image], score)
    result = torch.empty(batch, len(counts), dtype=torch.float64)
    result[:, todo.cpu()] = scores.view(batch, len(todo)).cpu()
    for step, values in known.items():
        result[:, step] = values.detach().to("cpu", torch.float64)
    return result


def blurred(x: torch.Tensor, kernel: int, sigma: float) -> torch.Tensor:
    """A Gaussian blur of every image (``kernel`` odd, reflected borders; narrowed to fit small images). Blurring
    commutes with the per-channel normalisation, so normalised images may be blurred directly."""
    size = max(1, min(kernel, 2 * min(x.shape[-2:]) - 1))
    size -= 1 - size % 2  # odd
    return gaussian_blur(x, [size, size], [sigma, sigma])
