"""Combining the original's explanation with its support models' into the GAD map (our reading of Mazini Rodrigues,
Boutry & Najman 2024, arXiv 2401.14434; PAPERS.md section 2):

1. ``A_0`` (original) and ``A_1..A_S`` (support models): the maps of a base gradient method from the registry for the
   same target class (the original's prediction by default), reduced over the channels by ``sum_c |raw_c|``;
2. each binarised at its top ``q`` % of pixels (``interpgrad.regions.important_pixels``: exactly
   round(q/100 * H * W) pixels, ties in raster order, positive values only — so a larger q keeps a superset);
3. fused (``fuse_masks``): ``intersection`` (default; a pixel in every mask), ``majority`` (in more than half of the
   S + 1 masks) or ``union`` (in any);
4. GAD map = ``A_0`` restricted to the fused mask (zero elsewhere).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import ConfigError
from ..explain.api import explain
from ..explain.core import get_method, methods
from ..explain.explanation import Explanation
from ..params import Param, resolve_params

__all__ = ["COMBINATION_PARAMS", "FUSIONS", "GadExplanation", "fuse_masks", "gad_bases", "gad_explanation",
           "pixel_map"]

FUSIONS = ("intersection", "majority", "union")


def gad_bases() -> tuple[str, ...]:
    """The methods GAD can build on: the registry's gradient family (attributions at the input), but GAD itself."""
    return tuple(name for name, method in methods().items() if method.family == "gradient" and not method.requires)


COMBINATION_PARAMS: tuple[Param, ...] = (
    Param("base", str, "integrated_gradients", "the gradient method whose maps are combined", choices=gad_bases()),
    Param("q", float, 10.0, "share of the pixels (%) each binarised map keeps: its top q %", low=0.01, high=100.0),
    Param("fusion", str, "intersection",
          "intersection: pixels in every model's top q %; majority: in more than half; union: in any",
          choices=FUSIONS),
)


def pixel_map(explanation: Explanation) -> torch.Tensor:
    """``sum_c |raw_c|``, ``[B, H, W]``: the map GAD binarises (PAPERS.md: reduced over channels by sum of |.|)."""
    if explanation.raw.dim() != 4:
        raise ConfigError(f"GAD needs attributions at the input ([B, C, H, W]); {explanation.method} gives "
                          f"{tuple(explanation.raw.shape)}")
    return explanation.raw.abs().sum(dim=1)


def _important(maps: torch.Tensor, q: float) -> torch.Tensor:
    """``interpgrad.regions.important_pixels`` of maps ``[M, B, H, W]`` (it reads a 4-D tensor as channels)."""
    from ..regions import important_pixels  # imports OpenCV: only when a map is binarised

    return important_pixels(maps.flatten(0, 1), q).view(maps.shape)


def fuse_masks(masks: torch.Tensor, fusion: str = "intersection") -> torch.Tensor:
    """One mask from ``masks`` ``[M, ...]`` (one per model): ``intersection``, ``majority`` (more than M / 2) or
    ``union``."""
    if fusion == "intersection":
        return masks.all(dim=0)
    if fusion == "union":
        return masks.any(dim=0)
    if fusion == "majority":
        return masks.sum(dim=0) * 2 > masks.shape[0]
    raise ConfigError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")


@dataclass(frozen=True)
class GadExplanation:
    """The pieces of a GAD explanation of a batch ``[B, C, H, W]``.

    Attributes:
        original: the base method's Explanation of the original; supports: one per support model (same targets).
        maps: ``[S + 1, B, H, W]`` the channel-reduced maps (``sum_c |.|``), the original's first.
        masks: ``[S + 1, B, H, W]`` bool, each map's top q %.
        fused: ``[B, H, W]`` bool, the fused mask; gad_map: ``[B, H, W]`` the original's map where fused, else 0.
        target: the explained class of every row, ``[B]``; the rest: how it was made.
    """

    original: Explanation
    supports: tuple[Explanation, ...]
    maps: torch.Tensor
    masks: torch.Tensor
    fused: torch.Tensor
    gad_map: torch.Tensor
    target: torch.Tensor
    base: str
    base_params: dict[str, Any] = field(default_factory=dict)
    q: float = 10.0
    fusion: str = "intersection"

    @property
    def original_map(self) -> torch.Tensor:
        return self.maps[0]

    @property
    def support_maps(self) -> torch.Tensor:
        return self.maps[1:]

    @property
    def original_mask(self) -> torch.Tensor:
        return self.masks[0]


def _models_of(run_or_models: Any) -> list[nn.Module]:
    from .run import GadRun, load_gad_run

    if isinstance(run_or_models, (str, os.PathLike)):
        run_or_models = load_gad_run(run_or_models)
    models = run_or_models.models if isinstance(run_or_models, GadRun) else list(run_or_models)
    if len(models) < 2 or not all(isinstance(model, nn.Module) for model in models):
        raise ConfigError("GAD needs the original model and at least one support model")
    return models


def _device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def gad_explanation(
    run_or_models: Any,
    x: torch.Tensor,
    target: Any = None,
    base: str = "integrated_gradients",
    base_params: Mapping[str, Any] | None = None,
    q: float = 10.0,
    fusion: str = "intersection",
) -> GadExplanation:
    """GAD of the batch ``x`` (normalised as the original expects, on its device).

    ``run_or_models``: a GadRun, a GAD run folder, or the models themselves (the original first, then the support
    models); support models not on ``x``'s device are moved there. ``target``: as in ``interpgrad.explain`` (None: the
    original's predicted class), the same class for every model. ``base`` / ``base_params``: the registry's gradient
    method and its parameters; ``q``, ``fusion``: see the module docstring."""
    resolved = resolve_params(COMBINATION_PARAMS, {"base": base, "q": q, "fusion": fusion}, owner="gad")
    base_params = get_method(resolved["base"]).resolve(dict(base_params or {}))
    original, *supports = _models_of(run_or_models)
    for model in supports:
        if _device_of(model) != x.device:
            model.to(x.device)
    first = explain(original, x, resolved["base"], target=target, **base_params)
    others = tuple(explain(model, x, resolved["base"], target=first.target, **base_params) for model in supports)
    maps = torch.stack([pixel_map(explanation) for explanation in (first, *others)])
    masks = _important(maps, resolved["q"])
    fused = fuse_masks(masks, resolved["fusion"])
    return GadExplanation(first, others, maps, masks, fused, maps[0] * fused, first.target, resolved["base"],
                          base_params, resolved["q"], resolved["fusion"])

