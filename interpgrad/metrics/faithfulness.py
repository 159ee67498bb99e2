"""Faithfulness: does keeping what the map points at keep the model's decision?

Notation (``../shared/PAPERS.md``, section 4): S the saliency map of class c upsampled to the image and min-max scaled
to [0, 1]; I the image in pixel space [0, 1]; Y the softmax probability of c on I, O its probability on the
explanation image E = S * I (multiplied in pixel space, then normalised as the model expects).

Average Drop and Average Increase follow Chattopadhyay et al. (Grad-CAM++, 2018); Average Gain follows Opti-CAM
(Zhang et al. 2023), from the group of the interpretable-gradients paper. Pixel perturbation follows Srinivas & Fleuret
(2021).
"""

from __future__ import annotations

import numpy as np
import torch

from ..params import Param, When
from .core import MetricBatch, MetricResult, register
from .mechanics import is_constant, perturbation_curves, pixel_ranks, scores_of, trapezoid_auc

__all__ = [
    "EPSILON",
    "average_drop",
    "average_gain",
    "average_increase",
    "explanation_images",
    "masking_fractions",
    "min_max",
    "pixel_perturbation",
]

EPSILON = 1e-8
"""Added to every denominator of AD and AG (a probability of exactly 0 or 1 must not divide by zero)."""


def min_max(maps: torch.Tensor) -> torch.Tensor:
    """Each map ``[B, H, W]`` scaled to [0, 1] by its own minimum and maximum; a constant map (no saliency anywhere)
    becomes all zero."""
    flat = maps.flatten(1)
    low, high = flat.amin(dim=1).view(-1, 1, 1), flat.amax(dim=1).view(-1, 1, 1)
    span = high - low
    return torch.where(span > 0, (maps - low) / torch.where(span > 0, span, torch.ones_like(span)), 0.0)


def explanation_images(batch: MetricBatch) -> torch.Tensor:
    """``E = normalise(S * denormalise(x))``: the image in pixel space times its min-max scaled map, normalised again
    (the Grad-CAM++ protocol, as the interpretable-gradients authors' code computes it)."""
    saliency = min_max(torch.nan_to_num(batch.maps.to(batch.x.dtype), nan=0.0)).unsqueeze(1)
    return batch.from_pixels(saliency * batch.to_pixels(batch.x))


def _probabilities(batch: MetricBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(Y, O): the probability of the explained class on the images and on their explanation images, float64 ``[B]``;
    computed once per batch for AD, AI and AG."""

    def compute() -> tuple[torch.Tensor, torch.Tensor]:
        images, classes = explanation_images(batch), batch.targets.to(batch.x.device)
        clean = batch.clean_scores("probability")
        if clean is None:  # no logits given: score the images too, in the same passes
            images, classes = torch.cat([batch.x, images]), torch.cat([classes, classes])
        scores = scores_of(batch.model, images, classes, "probability", batch.rows_per_forward())
        if clean is None:
            return scores[:batch.size], scores[batch.size:]
        return clean.cpu(), scores

    return batch.memo("explanation-probabilities", compute)


_CAM_PROTOCOL = ("explanation image E = normalise(S x I) with S the map min-max scaled to [0, 1] and I the image in "
                 "pixel space; Y, O = softmax probability of the explained class on I and on E")


@register(
    "average_drop",
    "faithfulness",
    "lower",
    "how much the class probability drops when only the map's share of the image is kept",
    protocol=f"Average Drop = 100 x max(0, Y - O) / Y, averaged over images (per image: its term); {_CAM_PROTOCOL}",
    source="Chattopadhyay et al. 2018 (Grad-CAM++), arXiv 1710.11063",
    unit="%",
)
def average_drop(batch: MetricBatch) -> MetricResult:
    """``100 * max(0, Y - O) / Y`` per image (the mean over images is AD)."""
    original, explained = _probabilities(batch)
    return MetricResult(100.0 * (original - explained).clamp(min=0) / (original + EPSILON))


@register(
    "average_increase",
    "faithfulness",
    "higher",
    "share of images whose class probability rises when only the map's share of the image is kept",
    protocol=f"Average Increase (Increase in Confidence) = 100 x 1[O > Y], averaged over images; ties are no "
    f"increase; {_CAM_PROTOCOL}",
    source="Chattopadhyay et al. 2018 (Grad-CAM++), arXiv 1710.11063",
    unit="%",
)
def average_increase(batch: MetricBatch) -> MetricResult:
    """``100 * 1[O > Y]`` per image (the mean over images is AI)."""
    original, explained = _probabilities(batch)
    return MetricResult(100.0 * (explained > original).double())


@register(
    "average_gain",
    "faithfulness",
    "higher",
    "how much of the probability's headroom is gained when only the map's share of the image is kept",
    protocol=f"Average Gain = 100 x max(0, O - Y) / (1 - Y), averaged over images; {_CAM_PROTOCOL}",
    source="Zhang et al. 2023 (Opti-CAM), arXiv 2301.07002",
    unit="%",
)
def average_gain(batch: MetricBatch) -> MetricResult:
    """``100 * max(0, O - Y) / (1 - Y)`` per image (the mean over images is AG): the gain over the headroom."""
    original, explained = _probabilities(batch)
    return MetricResult(100.0 * (explained - original).clamp(min=0) / (1.0 - original + EPSILON))


# ---------------------------------------------------------------------------------------------------- pixel perturbation


def masking_fractions(points: int) -> np.ndarray:
    """``logspace(-2, 0, points)``: the fractions of pixels removed (Srinivas & Fleuret: 25 points)."""
    return np.logspace(-2, 0, points)


def _saliency(batch: MetricBatch, saliency: str) -> torch.Tensor:
    """The per-pixel score that orders the pixels: the standard deviation over the channels of the raw attribution
    (Srinivas & Fleuret), or the display map (CAMs, whose raw map has no channels, always use it; so does a raw map
    whose channels are all equal, such as the random control's: its spread is 0 everywhere and would order the pixels
    in raster order)."""
    maps = batch.maps.double()
    if saliency == "channel_std" and batch.raw is not None and batch.raw.shape[1] > 1:
        spread = batch.raw.double().std(dim=1)
        return torch.where(is_constant(spread).view(-1, 1, 1), maps.to(spread.device), spread)
    return maps


@register(
    "pixel_perturbation",
    "faithfulness",
    "higher",
    "accuracy as the least salient pixels are removed (a faithful map points at what the model needs)",
    params=(
        Param("replacement", str, "mean", "what removed pixels become: mean = the image's mean colour (the paper), "
              "constant = the value of the parameter constant (the official code: 0.5)", choices=("mean", "constant")),
        Param("constant", float, 0.5, "replacement value in pixel space [0, 1]", low=0.0, high=1.0,
              when=When("replacement", "constant")),
        Param("points", int, 25, "masking fractions, logspace(-2, 0, points)", low=2, high=200),
        Param("saliency", str, "channel_std", "per-pixel score: channel_std = standard deviation of the attribution "
              "over the colour channels (the paper; CAMs have one channel and use their map, as do maps equal on every "
              "channel: the random control), map = the display map",
              choices=("channel_std", "map")),
        Param("score", str, "accuracy", "accuracy = top-1 correct against the ground truth (the paper); probability = "
              "softmax probability of the ground-truth class", choices=("accuracy", "probability")),
    ),
    protocol="for each fraction f in logspace(-2, 0, points), the round(f x H x W) least salient pixels (all channels) "
    "are replaced and the judge (the model itself unless another is given) scores the ground-truth class; value = "
    "the area under that curve over the log-spaced fractions (trapezoid on a uniform grid in log f, so 0..1)",
    source="Srinivas & Fleuret 2021, arXiv 2006.09128 (official code idiap/rethinking-saliency)",
    needs_labels=True,
    curve_axis="fraction of pixels removed (log scale)",
)
def pixel_perturbation(
    batch: MetricBatch, replacement: str, constant: float, points: int, saliency: str, score: str
) -> MetricResult:
    """Score ``[B, points]`` of the ground-truth class as the least salient pixels are removed, and its area."""
    x, labels = batch.x, batch.need("labels", "pixel_perturbation")
    fractions = masking_fractions(points)
    if replacement == "mean":
        filler = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    else:
        filler = batch.from_pixels(torch.full_like(x, constant))
    ranks = pixel_ranks(_saliency(batch, saliency), descending=False)  # least salient first
    counts = [int(round(f * batch.pixels)) for f in fractions]
    judge = batch.judge if batch.judge is not None else batch.model
    curves = perturbation_curves(judge, x, filler, ranks, counts, labels, score, batch.rows_per_forward())
    return MetricResult(trapezoid_auc(curves), curves, [float(f) for f in fractions])
