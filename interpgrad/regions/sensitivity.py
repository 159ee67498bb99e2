"""Region sensitivity (RS): how much the class probability drops when a region is occluded.

Our reading of the GAD paper (see PAPERS.md): ``RS(I, H, a) = (p_c(I) - p_c(I with the pixels of H set to a)) /
p_c(I)``, p_c the softmax probability of class c (the predicted class unless told), a = black in pixel space (the
authors' earlier code occluded with black RGB pixels before normalising), the image's mean colour, or a blur of it.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..data.transforms import normalize
from ..errors import ConfigError
from ..explain.mechanics import rows_per_forward, spans
from ..gradients import resolve_target
from ..metrics.mechanics import blurred, class_scores

__all__ = ["BLUR_KERNEL", "BLUR_SIGMA", "OCCLUSIONS", "occlusion_values", "region_sensitivity"]

OCCLUSIONS = ("black", "mean", "blur")
BLUR_KERNEL = 5
BLUR_SIGMA = 2.0
"""The blur occlusion's Gaussian (pixels): the insertion/deletion blur substrate's defaults."""


def occlusion_values(
    x: torch.Tensor,
    occlusion: str = "black",
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
    blur_kernel: int = BLUR_KERNEL,
    blur_sigma: float = BLUR_SIGMA,
) -> torch.Tensor:
    """What occluded pixels become, ``[B, C, H, W]`` in the model's normalised space (``x`` is normalised with
    ``mean`` / ``std``): ``black`` = 0 in pixel space, normalised; ``mean`` = each image's per-channel mean (the
    normalisation is affine per channel, so the normalised mean is the mean in pixel space, normalised); ``blur`` = a
    Gaussian blur of the image (``interpgrad.metrics.mechanics.blurred``; it commutes with the normalisation)."""
    if occlusion == "black":
        black = normalize(x.new_zeros(1, x.shape[1], 1, 1), mean, std)
        return black.expand_as(x)
    if occlusion == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    if occlusion == "blur":
        return blurred(x, blur_kernel, blur_sigma)
    raise ConfigError(f"unknown occlusion {occlusion!r}; choose one of {', '.join(OCCLUSIONS)}")


def region_sensitivity(
    model: nn.Module,
    x: torch.Tensor,
    masks: torch.Tensor | np.ndarray,
    target: int | Sequence[int] | torch.Tensor | None = None,
    occlusion: str = "black",
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
    max_batch: int = 0,
    blur_kernel: int = BLUR_KERNEL,
    blur_sigma: float = BLUR_SIGMA,
) -> torch.Tensor:
    """RS of each image under each of its masks, float64 on the CPU: ``[B]`` for masks ``[B, H, W]``, ``[B, M]`` for
    M masks per image ``[B, M, H, W]``.

    ``RS = (p_c(I) - p_c(I occluded)) / p_c(I)``, where the occluded image shows ``occlusion_values(...)`` on the
    mask's pixels and ``I`` elsewhere, and p_c is the softmax probability (float64) of ``target`` (int, one per
    image, or None for each image's predicted class). Positive: occluding the region lowers the class probability.

    ``x``: images ``[B, C, H, W]`` normalised as the model expects (``mean``, ``std`` give pixel space). The clean
    images and every occluded image with a non-empty mask are scored together, ``max_batch`` images per forward pass
    (0 = the methods' automatic bound, ``interpgrad.explain.mechanics.rows_per_forward``), each image built only in its
    chunk. An empty mask gives exactly 0 (no forward pass); a p_c(I) of 0 gives NaN. The model is called under
    ``torch.no_grad`` and not otherwise changed: put it in eval mode.
    """
    if x.dim() != 4:
        raise ConfigError(f"expected images [B, C, H, W], got shape {tuple(x.shape)}")
    masks = torch.as_tensor(masks, device=x.device) != 0
    single = masks.dim() == 3
    if single:
        masks = masks.unsqueeze(1)
    if masks.dim() != 4 or masks.shape[0] != x.shape[0] or masks.shape[-2:] != x.shape[-2:]:
        raise ConfigError(f"masks {tuple(masks.shape)} do not fit images {tuple(x.shape)}: expected "
                          f"[{x.shape[0]}, H, W] or [{x.shape[0]}, M, H, W] with H, W = {tuple(x.shape[-2:])}")
    batch = x.shape[0]
    filler = occlusion_values(x, occlusion, mean, std, blur_kernel, blur_sigma)
    pairs = masks.flatten(2).any(dim=2).nonzero()  # (image, mask) of every non-empty mask
    image_of = torch.cat([torch.arange(batch, device=x.device), pairs[:, 0]])
    mask_of = torch.cat([torch.full((batch,), -1, device=x.device, dtype=torch.long), pairs[:, 1]])
    rows = rows_per_forward(max_batch, x[0].numel(), device=x.device)
    logits = []
    with torch.no_grad():
        for start, stop in spans(len(image_of), rows):
            images, chosen = image_of[start:stop], mask_of[start:stop]
            occluded = masks[images, chosen.clamp(min=0)] & (chosen >= 0).view(-1, 1, 1)
            logits.append(model(torch.where(occluded.unsqueeze(1), filler[images], x[images])).detach())
    every = torch.cat(logits)
    targets = resolve_target(target, every[:batch])
    scores = class_scores(every, targets[image_of], "probability").cpu()
    clean, occluded_scores = scores[:batch], scores[batch:]
    result = torch.zeros(masks.shape[:2], dtype=torch.float64)
    if len(pairs):
        pairs = pairs.cpu()
        before = clean[pairs[:, 0]]
        drop = (before - occluded_scores) / torch.where(before > 0, before, 1.0)
        result[pairs[:, 0], pairs[:, 1]] = torch.where(before > 0, drop, math.nan)
    return result[:, 0] if single else result
