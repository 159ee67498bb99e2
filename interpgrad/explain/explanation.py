"""``Explanation``: the result of ``interpgrad.explain``, with its display maps derived from the raw attribution by one
convention for every method.

Display-map conventions (no normalisation here: maps keep their units; ``interpgrad.viz.normalize_map`` scales them
for display):

- attributions at input resolution ``[B, C, H, W]`` (gradient methods, Guided Grad-CAM):
  ``map = max_c |raw_c|`` (Simonyan et al. 2014), ``signed_map = sum_c raw_c`` (for Integrated Gradients the signed
  map sums to ``f(x) - f(baseline)``);
- class activation maps ``[B, h, w]``: ``map = Up(ReLU(raw))``, ``signed_map = Up(raw)`` with ``Up`` the bilinear
  upsampling to the input's ``H x W`` (``align_corners=False``; ReLU before upsampling, as Captum's
  ``LayerGradCam(relu_attributions=True)`` followed by ``LayerAttribution.interpolate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .core import Attribution
from .mechanics import upsample

__all__ = ["Explanation", "build_explanation"]


@dataclass(frozen=True)
class Explanation:
    """One explanation of a batch.

    Attributes:
        map: display map ``[B, H, W]`` at input resolution, non-negative, not normalised.
        signed_map: the signed version ``[B, H, W]`` (channel sum, or the CAM before its ReLU).
        raw: the method's raw signed attribution: ``[B, C, H, W]`` or a CAM ``[B, h, w]`` at the layer's resolution.
        target: the explained class of every row, LongTensor ``[B]``.
        method: the registry name; layer: the target layer's dotted name (None for methods without one).
        params: the resolved parameters (defaults filled in).
        logits: the model's logits on the input, ``[B, classes]``.
    """

    map: torch.Tensor
    signed_map: torch.Tensor
    raw: torch.Tensor
    target: torch.Tensor
    method: str
    layer: str | None
    params: dict[str, Any] = field(default_factory=dict)
    logits: torch.Tensor = field(default_factory=lambda: torch.empty(0))

    @property
    def probabilities(self) -> torch.Tensor:
        """Softmax of the logits, ``[B, classes]``."""
        return torch.softmax(self.logits, dim=1)

    @property
    def target_probability(self) -> torch.Tensor:
        """The probability of each row's target class, ``[B]``."""
        return self.probabilities.gather(1, self.target.view(-1, 1)).squeeze(1)


def build_explanation(
    attribution: Attribution, image_size: tuple[int, int], method: str, layer: str | None, params: dict[str, Any]
) -> Explanation:
    """The Explanation of ``attribution`` with its display maps (see the module docstring)."""
    raw = attribution.raw.detach()
    if attribution.at_input:
        display, signed = raw.abs().amax(dim=1), raw.sum(dim=1)
    else:
        display, signed = upsample(raw.clamp(min=0), image_size), upsample(raw, image_size)
    return Explanation(
        map=display,
        signed_map=signed,
        raw=raw,
        target=attribution.target.detach(),
        method=method,
        layer=layer,
        params=dict(params),
        logits=attribution.logits.detach(),
    )
