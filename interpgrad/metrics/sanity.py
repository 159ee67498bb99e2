"""Sanity checks: does the map depend on the model and on the class it explains?

- **Cascading model-parameter randomisation** (Adebayo et al. 2018): the layers are re-initialised (their own
  ``reset_parameters``, seeded) from the output towards the input, cumulatively; after each stage the map is computed
  again and compared with the original by Spearman rank correlation. A method whose maps stay correlated with the
  original ones while the model is destroyed explains the image, not the model: it fails the check. The value is the
  mean correlation over the randomised stages — not including the unrandomised model's correlation with itself,
  which Quantus' average does (PAPERS.md).
- **Random logit** (Sixt et al. 2020): the map of the explained class against the map of a random other class.
  A map that hardly changes with the class does not explain the class.

Both are lower-is-better and need the method itself (``MetricBatch.explainer``), since they compute new maps.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..explain.mechanics import SEED_PARAM, content_seed
from ..models import unwrap_model
from ..params import Param
from .core import MetricBatch, MetricResult, register
from .mechanics import spearman

__all__ = ["GRANULARITIES", "SIMILARITIES", "model_stages", "random_logit", "randomisation", "similarity", "ssim"]

GRANULARITIES = ("block", "stage", "module")
SIMILARITIES = ("spearman", "ssim")

SIMILARITY_PARAM = Param(
    "similarity", str, "spearman",
    "how alike two maps are: spearman = rank correlation; ssim = structural similarity of the maps scaled by their "
    "maximum (Gaussian window 11, sigma 1.5)", choices=SIMILARITIES,
)


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def model_stages(model: nn.Module, granularity: str = "block") -> list[tuple[str, list[nn.Module]]]:
    """The groups of layers the cascade re-initialises, from the output towards the input, as (name, modules).

    ``stage``: the model's top-level children (``fc``, ``layer4``, ..., ``conv1``); ``block``: the same with
    containers (``nn.Sequential``, ``nn.ModuleList``) opened one level (``layer4.1``, ``layer4.0``, ...,
    ``features.18``, ...); ``module``: every module that holds parameters of its own (each convolution, batch norm and
    linear layer, Quantus' granularity). Children without parameters are skipped. Forward order is taken to be the
    order of registration, as in every architecture of interpgrad and torchvision.
    """
    model = unwrap_model(model)
    if granularity == "module":
        groups = [(name, [module]) for name, module in model.named_modules()
                  if any(True for _ in module.parameters(recurse=False))]
    else:
        groups = []
        for name, child in model.named_children():
            if granularity == "block" and isinstance(child, (nn.Sequential, nn.ModuleList)):
                groups += [(f"{name}.{inner}", [block]) for inner, block in child.named_children()]
            else:
                groups.append((name, [child]))
        groups = [(name, modules) for name, modules in groups if _has_parameters(modules[0])]
    if not groups:
        raise ValueError("the model has no layers with parameters to randomise")
    return groups[::-1]


def _stage_seed(seed: int, stage: int) -> int:
    return int(np.random.SeedSequence([seed, stage]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def _reinitialise(modules: list[nn.Module], seed: int, device: torch.device) -> None:
    """``reset_parameters()`` of every module in ``modules`` (and inside them), drawing from ``seed`` (the global
    generators are restored afterwards)."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for module in modules:
            for inner in module.modules():
                reset = getattr(inner, "reset_parameters", None)
                if callable(reset):
                    reset()


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    line = torch.exp(-(offsets**2) / (2 * sigma**2))
    line /= line.sum()
    return (line.view(-1, 1) * line.view(1, -1)).to(device, dtype)[None, None]


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean structural similarity of maps ``[B, H, W]`` in [0, 1] (Wang et al. 2004: Gaussian window, C1 = 0.01^2,
    C2 = 0.03^2, population statistics, the mean over the window positions inside the image; as scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``)."""
    size = min(window, *a.shape[-2:])
    size -= 1 - size % 2
    kernel = _gaussian_window(size, sigma, torch.float64, a.device)
    a, b = a.double().unsqueeze(1), b.double().unsqueeze(1)
    blur = lambda values: F.conv2d(values, kernel)  # noqa: E731  (valid positions only)
    mean_a, mean_b = blur(a), blur(b)
    var_a = blur(a * a) - mean_a**2
    var_b = blur(b * b) - mean_b**2
    covariance = blur(a * b) - mean_a * mean_b
    c1, c2 = 0.01**2, 0.03**2
    index = ((2 * mean_a * mean_b + c1) * (2 * covariance + c2)) / ((mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2))
    return index.flatten(1).mean(dim=1)


def _scaled(maps: torch.Tensor) -> torch.Tensor:
    """Non-negative maps divided by their maximum (all-zero maps stay zero)."""
    peak = maps.flatten(1).amax(dim=1).view(-1, 1, 1)
    return torch.where(peak > 0, maps / torch.where(peak > 0, peak, torch.ones_like(peak)), 0.0)


def similarity(reference: torch.Tensor, other: torch.Tensor, kind: str) -> torch.Tensor:
    """Similarity ``[B]`` of each map of ``other`` with the same row of ``reference`` (display maps, non-negative)."""
    reference, other = reference.detach().double().cpu(), other.detach().double().cpu()
    if kind == "ssim":
        return ssim(_scaled(reference), _scaled(other))
    return spearman(reference, other)


@register(
    "randomisation",
    "sanity",
    "lower",
    "how similar the maps stay while the model's layers are re-initialised from the output down (cascading)",
    params=(
        Param("granularity", str, "block", "what one stage re-initialises: block = one residual block or one layer of "
              "a Sequential (Adebayo et al.'s cascade), stage = one top-level child (layer4, layer3, ...), module = "
              "one parametrised module (Quantus)", choices=GRANULARITIES),
        SIMILARITY_PARAM,
        SEED_PARAM,
    ),
    protocol="layers re-initialised with their reset_parameters (seeded) from the output towards the input, "
    "cumulatively; after each stage, the similarity of the new map of the same class with the original; value = the "
    "mean over the randomised stages (the original model's self-similarity is not included)",
    source="Adebayo et al. 2018 (Sanity checks for saliency maps), arXiv 1810.03292",
    curve_axis="layers re-initialised, from the output",
)
def randomisation(batch: MetricBatch, granularity: str, similarity: str, seed: int) -> MetricResult:
    explainer = batch.need("explainer", "randomisation")
    randomised = copy.deepcopy(unwrap_model(batch.model)).eval()
    stages = model_stages(randomised, granularity)
    device = batch.x.device
    points = []
    for index, (_, modules) in enumerate(stages):
        _reinitialise(modules, _stage_seed(seed, index), device)
        with torch.enable_grad():
            maps = explainer(randomised, batch.x, batch.targets).map
        points.append(_similarity(batch.maps, maps, similarity))
    curve = torch.stack(points, dim=1)
    return MetricResult(curve.mean(dim=1), curve, [float(i + 1) for i in range(len(stages))],
                        [name for name, _ in stages])


_similarity = similarity  # the parameter of the metrics below shadows the function's name


def other_classes(batch: MetricBatch, classes: int, seed: int) -> torch.Tensor:
    """A random class other than the explained one for every image, drawn from ``seed`` and the image's values (so the
    same image gets the same class whatever its batch)."""
    offsets = torch.tensor([1 + content_seed(seed, image) % (classes - 1) for image in batch.x])
    return (batch.targets.cpu() + offsets) % classes


@register(
    "random_logit",
    "sanity",
    "lower",
    "how similar the map of the explained class is to the map of a random other class",
    params=(SIMILARITY_PARAM, SEED_PARAM),
    protocol="similarity of the map of the explained class with the map of a class drawn uniformly among the others "
    "(seeded per image); a model with one class gives NaN",
    source="Sixt, Granz & Landgraf 2020 (When explanations lie), arXiv 1912.09818",
)
def random_logit(batch: MetricBatch, similarity: str, seed: int) -> MetricResult:
    explainer = batch.need("explainer", "random_logit")
    classes = batch.num_classes or int(batch.model(batch.x[:1]).shape[1])
    if classes < 2:
        return MetricResult(torch.full((batch.size,), math.nan, dtype=torch.float64))
    others = other_classes(batch, classes, seed).to(batch.targets.device)
    with torch.enable_grad():
        maps = explainer(batch.model, batch.x, others).map
    return MetricResult(_similarity(batch.maps, maps, similarity))
