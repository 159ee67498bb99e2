"""Control maps: "explanations" that ignore the model, to put beside the real methods in every evaluation table.

A saliency method that scores no better than these has shown nothing about the model (Adebayo et al. 2018 compare
with an edge detector; a random map is the chance level of every metric). They return ``[B, C, H, W]`` at the input
like the gradient methods, plus the model's logits on the input (one forward pass), so that they fit wherever a method
does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .core import Attribution, Request, register
from .mechanics import SEED_PARAM, content_seed

__all__ = ["edge", "random_map", "sobel_magnitude"]


def _logits_and_targets(request: Request) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        logits = request.model(request.x)
    return logits, request.targets(logits)


@register(
    "random",
    "control",
    "control: seeded uniform noise, independent of the model (the chance level of every metric)",
    params=(SEED_PARAM,),
    source="a control map; Adebayo et al. 2018, arXiv 1810.03292 (sanity checks)",
)
def random_map(request: Request, seed: int) -> Attribution:
    """``U(0, 1)`` per pixel (the same value on every channel), from a generator seeded by ``seed`` and the image's
    values, so an image's map does not depend on its batch nor on the model."""
    x = request.x
    logits, targets = _logits_and_targets(request)
    maps = torch.empty(x.shape[0], 1, *x.shape[2:], dtype=x.dtype)
    for index, image in enumerate(x):
        generator = torch.Generator().manual_seed(content_seed(seed, image))
        maps[index] = torch.rand(maps.shape[1:], generator=generator, dtype=x.dtype)
    raw = maps.expand(-1, x.shape[1], -1, -1).to(x.device).contiguous()
    return Attribution(raw, logits, targets, at_input=True)


_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(Gx^2 + Gy^2)`` per channel, ``[B, C, H, W]``: the 3x3 Sobel derivatives with replicated borders (so the
    image's border is not an edge)."""
    channels = x.shape[1]
    kernel_x = _SOBEL_X.to(x.device, x.dtype)
    kernels = torch.stack([kernel_x, kernel_x.t()]).unsqueeze(1).repeat(channels, 1, 1, 1)  # [2C, 1, 3, 3]
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    derivatives = F.conv2d(padded, kernels, groups=channels).view(x.shape[0], channels, 2, *x.shape[2:])
    return derivatives.pow(2).sum(dim=2).sqrt()


@register(
    "edge",
    "control",
    "control: Sobel edge magnitude of the input, independent of the model (Adebayo et al.'s edge detector)",
    source="Adebayo et al. 2018, arXiv 1810.03292 (the edge-detector baseline)",
)
def edge(request: Request) -> Attribution:
    """The Sobel gradient magnitude of each channel of the input as the model sees it (normalisation divides each
    channel by its std, which scales that channel's edges); the display map is the largest over the channels."""
    logits, targets = _logits_and_targets(request)
    return Attribution(sobel_magnitude(request.x), logits, targets, at_input=True)
