"""Causal metrics (RISE, Petsiuk et al. 2018): insert or delete pixels in the order the map ranks them.

Pixels are ranked by the map, most salient first (ties in raster order). Each step changes ``step`` more pixels (all
channels), ``step = round(step_rows x W)`` (one image row by default: RISE's 224 pixels at 224 x 224, 32 at 32 x 32);
there are ``n = ceil(H W / step)`` steps and ``n + 1`` scores including both ends (the last step may change fewer
pixels). **Deletion** starts from the image and replaces pixels by the substrate: the faster the score falls, the
better (lower area). **Insertion** starts from the substrate and puts the image's pixels back: the faster it rises,
the better (higher area). The score is the softmax probability of the explained class; the area is the trapezoid
rule on a uniform grid over [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..params import Param, When
from .core import MetricBatch, MetricResult, register
from .mechanics import blurred, perturbation_curves, pixel_ranks, scores_of, trapezoid_auc

__all__ = ["SUBSTRATES", "deletion", "insertion", "step_counts", "substrate"]

SUBSTRATES = ("blur", "zeros", "mean", "constant")


def _params(default_substrate: str) -> tuple[Param, ...]:
    return (
        Param("substrate", str, default_substrate,
              "what replaces the image: blur = a Gaussian blur of it; zeros = 0 in normalised space (the dataset's mean "
              "colour, RISE's deletion); mean = the image's own mean colour; constant = the value of the parameter "
              "constant", choices=SUBSTRATES),
        Param("blur_kernel", int, 5, "size of the blur's Gaussian kernel in pixels, odd (an even size is taken one smaller; narrowed to fit "
              "small images; RISE: 11 at 224 px)", low=1, high=255, when=When("substrate", "blur")),
        Param("blur_sigma", float, 2.0, "standard deviation of the blur in pixels (RISE: 5 at 224 px)", low=0.1, high=100.0,
              when=When("substrate", "blur")),
        Param("constant", float, 0.0, "substrate value in pixel space [0, 1]", low=0.0, high=1.0,
              when=When("substrate", "constant")),
        Param("step_rows", float, 1.0, "pixels changed per step, in image rows (W pixels): 1 = RISE's 224 at 224 px; "
              "the interpretable-gradients authors used 8", low=0.001, high=1024.0),
        Param("score", str, "probability", "the score of the explained class on each image: softmax probability "
              "(RISE) or logit", choices=("probability", "logit")),
    )


def substrate(batch: MetricBatch, kind: str, blur_kernel: int, blur_sigma: float, constant: float) -> torch.Tensor:
    """The fully perturbed images ``[B, C, H, W]`` in normalised space."""
    x = batch.x
    if kind == "blur":
        return blurred(x, blur_kernel, blur_sigma)
    if kind == "zeros":
        return torch.zeros_like(x)
    if kind == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    return batch.from_pixels(torch.full_like(x, constant))


def step_counts(pixels: int, width: int, step_rows: float) -> list[int]:
    """How many pixels are changed after each step: ``0, step, 2 step, ..., H W`` (``n + 1`` entries)."""
    step = max(1, int(round(step_rows * width)))
    steps = math.ceil(pixels / step)
    return [min(pixels, k * step) for k in range(steps + 1)]


def _curves(batch: MetricBatch, insert: bool, substrate_kind: str, blur_kernel: int, blur_sigma: float,
            constant: float, step_rows: float, score: str) -> MetricResult:
    filler = substrate(batch, substrate_kind, blur_kernel, blur_sigma, constant)
    start, end = (filler, batch.x) if insert else (batch.x, filler)
    ranks = pixel_ranks(batch.maps.double(), descending=True)
    counts = step_counts(batch.pixels, int(batch.x.shape[-1]), step_rows)
    clean = batch.clean_scores(score)  # the image itself: insertion's last point, deletion's first
    known = {} if clean is None else {len(counts) - 1 if insert else 0: clean}
    # The substrate alone (insertion's first point, deletion's last) is shared by insertion and deletion on one batch
    # when they use the same substrate: scored once.
    key = ("substrate-scores", substrate_kind, blur_kernel, blur_sigma, constant, score)
    rows = batch.rows_per_forward()
    known[0 if insert else len(counts) - 1] = batch.memo(
        key, lambda: scores_of(batch.model, filler, batch.targets, score, rows))
    curves = perturbation_curves(batch.model, start, end, ranks, counts, batch.targets, score, rows, known)
    grid = np.linspace(0.0, 1.0, len(counts))
    return MetricResult(trapezoid_auc(curves), curves, [float(value) for value in grid])


_PROTOCOL = ("RISE: pixels ranked by the map (most salient first, ties in raster order), step = round(step_rows x W) "
             "pixels (all channels) per step, n = ceil(HW / step) steps, n + 1 scores of the explained class; value = "
             "area under the curve (trapezoid, uniform grid over [0, 1])")


@register(
    "insertion",
    "causality",
    "higher",
    "how fast the class score rises as the most salient pixels are put back into a blurred image",
    params=_params("blur"),
    protocol=f"insertion from the substrate; {_PROTOCOL}",
    source="Petsiuk, Das & Saenko 2018 (RISE), arXiv 1806.07421",
    curve_axis="fraction of pixels inserted",
)
def insertion(batch: MetricBatch, substrate: str, blur_kernel: int, blur_sigma: float, constant: float,
              step_rows: float, score: str) -> MetricResult:
    """The insertion curve ``[B, n + 1]`` and its area."""
    return _curves(batch, True, substrate, blur_kernel, blur_sigma, constant, step_rows, score)


@register(
    "deletion",
    "causality",
    "lower",
    "how fast the class score falls as the most salient pixels are deleted",
    params=_params("zeros"),
    protocol=f"deletion into the substrate; {_PROTOCOL}",
    source="Petsiuk, Das & Saenko 2018 (RISE), arXiv 1806.07421",
    curve_axis="fraction of pixels deleted",
)
def deletion(batch: MetricBatch, substrate: str, blur_kernel: int, blur_sigma: float, constant: float,
             step_rows: float, score: str) -> MetricResult:
    """The deletion curve ``[B, n + 1]`` and its area."""
    return _curves(batch, False, substrate, blur_kernel, blur_sigma, constant, step_rows, score)
