"""The metric registry and the two objects every metric deals with: the ``MetricBatch`` it scores and the
``MetricResult`` it returns.

A metric is one function ``compute(batch, **params) -> MetricResult`` registered with ``@register(...)``: its name,
category, direction (is higher or lower better), description, declared parameters (``interpgrad.params.Param``; the
CLI and the app build their widgets from them), the protocol it follows (with the values of its parameters, printed
beside every number: protocol choices move these numbers a lot), its source, and what it needs besides maps (ground
truth masks, labels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from ..data.transforms import denormalize, normalize
from ..errors import ConfigError
from ..explain import Explanation
from ..explain.mechanics import rows_per_forward
from ..params import Param, applicable, resolve_params
from .mechanics import class_scores

__all__ = [
    "CATEGORIES",
    "DIRECTIONS",
    "Explainer",
    "Metric",
    "MetricBatch",
    "MetricResult",
    "get_metric",
    "metrics",
    "register",
]

CATEGORIES = ("faithfulness", "causality", "localisation", "sanity", "complexity")
DIRECTIONS = ("higher", "lower")

Explainer = Callable[[nn.Module, torch.Tensor, torch.Tensor], Explanation]
"""``explainer(model, x, targets) -> Explanation``: the method being evaluated, with its parameters, as a function of
the model, the input and the classes (what the sanity checks call on randomised models and on other classes)."""


@dataclass
class MetricBatch:
    """What a metric scores: a batch of images, the maps one method made of them, and what else it may need.

    Attributes:
        model: the classifier (eval mode) the maps explain; metrics call it without gradients.
        x: the images ``[B, C, H, W]`` normalised as the model expects (``mean``, ``std``), on the model's device.
        maps: display maps ``[B, H, W]`` at input resolution, non-negative (``Explanation.map``).
        signed_maps: the signed maps ``[B, H, W]`` (``Explanation.signed_map``).
        raw: the raw attribution at input resolution ``[B, C, H, W]`` (gradient methods, controls), or None (CAMs).
        targets: the explained class of every image ``[B]``: every score is of this class.
        labels: the ground-truth classes ``[B]``, or None.
        masks: ground-truth object masks ``[B, H, W]`` (bool), or None.
        explainer: recomputes the method's maps for another model or class (sanity checks), or None.
        judge: the model whose predictions pixel perturbation scores (default: ``model``).
        num_classes: the model's number of classes (from the explanation's logits), or None.
        logits: the model's logits on ``x`` (the explanation's), or None: the clean images' scores are taken from them
            instead of a forward pass of their own.
        max_batch: images per forward pass of the perturbation metrics (0 = automatic, as the methods' batch_size).
    """

    model: nn.Module
    x: torch.Tensor
    maps: torch.Tensor
    signed_maps: torch.Tensor
    raw: torch.Tensor | None
    targets: torch.Tensor
    mean: Sequence[float] = (0.0, 0.0, 0.0)
    std: Sequence[float] = (1.0, 1.0, 1.0)
    labels: torch.Tensor | None = None
    masks: torch.Tensor | None = None
    explainer: Explainer | None = None
    judge: nn.Module | None = None
    num_classes: int | None = None
    logits: torch.Tensor | None = None
    max_batch: int = 0
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_explanation(cls, model: nn.Module, x: torch.Tensor, explanation: Explanation, **kwargs: Any) -> MetricBatch:
        """The batch of ``explanation`` (computed by ``interpgrad.explain(model, x, ...)``)."""
        raw = explanation.raw if explanation.raw.dim() == 4 and explanation.raw.shape[-2:] == x.shape[-2:] else None
        if explanation.logits.dim() == 2 and explanation.logits.shape[0] == x.shape[0]:
            kwargs.setdefault("num_classes", int(explanation.logits.shape[1]))
            kwargs.setdefault("logits", explanation.logits)
        return cls(model=model, x=x, maps=explanation.map, signed_maps=explanation.signed_map, raw=raw,
                   targets=explanation.target, **kwargs)

    @property
    def size(self) -> int:
        return int(self.x.shape[0])

    @property
    def pixels(self) -> int:
        """Pixels per image, H x W."""
        return int(self.x.shape[-2] * self.x.shape[-1])

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images back to pixel space [0, 1]: ``x * std + mean``."""
        return denormalize(x, self.mean, self.std)

    def from_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """Images in pixel space normalised as the model expects: ``(images - mean) / std``."""
        return normalize(images, self.mean, self.std)

    def rows_per_forward(self) -> int:
        """Images per forward pass: ``max_batch``, or the methods' automatic bound (about 4 million input values, at
        most 128 images on a CPU: ``interpgrad.explain.mechanics.rows_per_forward``)."""
        return rows_per_forward(self.max_batch, self.x[0].numel(), device=self.x.device)

    def clean_scores(self, score: str) -> torch.Tensor | None:
        """The score of the explained class on the unperturbed images, float64 ``[B]``, from ``logits`` (None
        without them)."""
        if self.logits is None:
            return None
        return class_scores(self.logits.to(self.targets.device), self.targets, score)

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per batch for ``key``: what several metrics share (e.g. AD, AI and AG's forward pass)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def need(self, what: str, metric: str) -> Any:
        """The batch's ``masks``, ``labels`` or ``explainer``, or a ConfigError saying that ``metric`` needs them."""
        value = getattr(self, what)
        if value is None:
            needs = {"masks": "ground-truth masks (the shapes dataset has them)", "labels": "ground-truth labels",
                     "explainer": "the attribution method itself (to compute new maps)"}
            raise ConfigError(f"{metric} needs {needs.get(what, what)}, and this batch has none")
        return value


@dataclass
class MetricResult:
    """What a metric returns for a batch.

    Attributes:
        values: one value per image, float64 ``[B]``; NaN where the metric is undefined for that image (an empty mask,
            say), which summaries exclude and count.
        curve: the curve behind the value, ``[B, T]`` (insertion, deletion, pixel perturbation, randomisation), or None.
        curve_x: the T positions of the curve's points (fraction of pixels, masking fraction, stage number).
        curve_labels: a name per point where numbers say too little (the randomised layers), or None.
    """

    values: torch.Tensor
    curve: torch.Tensor | None = None
    curve_x: Sequence[float] | None = None
    curve_labels: Sequence[str] | None = None


@dataclass(frozen=True)
class Metric:
    """A registered metric. ``protocol`` is the protocol it follows, in words; ``describe(params)`` adds the values."""

    name: str
    category: str
    direction: str  # "higher" or "lower": which is better
    description: str
    compute: Callable[..., MetricResult] = field(repr=False)
    params: tuple[Param, ...] = ()
    protocol: str = ""
    source: str = ""
    needs_masks: bool = False
    needs_labels: bool = False
    curve_axis: str | None = None  # what the curve's x axis is, for metrics that have one
    unit: str = ""  # "%" for the 0-100 scores of AD / AI / AG

    @property
    def arrow(self) -> str:
        """↑ when higher is better, ↓ when lower is."""
        return "↑" if self.direction == "higher" else "↓"

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overridden by ``given``, each value checked against its declaration (ConfigError otherwise)."""
        return resolve_params(self.params, given, owner=self.name)

    def describe(self, params: Mapping[str, Any] | None = None) -> str:
        """The protocol with the values of the parameters that apply: what to print beside a number."""
        resolved = applicable(self.params, self.resolve(params or {}))
        settings = ", ".join(f"{name}={_format(value)}" for name, value in resolved.items())
        return f"{self.protocol}" + (f" [{settings}]" if settings else "")

    def better(self, difference: float) -> bool:
        """Whether a positive ``difference`` (a - b) means a is better."""
        return (difference > 0) == (self.direction == "higher")

    def __call__(self, batch: MetricBatch, **params: Any) -> MetricResult:
        """The metric of ``batch`` with ``params`` (declared ones; defaults fill the rest)."""
        if self.needs_masks:
            batch.need("masks", self.name)
        if self.needs_labels:
            batch.need("labels", self.name)
        with torch.no_grad():
            result = self.compute(batch, **self.resolve(params))
        result.values = result.values.detach().to("cpu", torch.float64)
        if result.curve is not None:
            result.curve = result.curve.detach().to("cpu", torch.float64)
        return result

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (for the app, ``info`` and results.json)."""
        return {
            "name": self.name,
            "category": self.category,
            "direction": self.direction,
            "description": self.description,
            "params": [param.to_dict() for param in self.params],
            "protocol": self.protocol,
            "source": self.source,
            "needs_masks": self.needs_masks,
            "needs_labels": self.needs_labels,
            "curve_axis": self.curve_axis,
            "unit": self.unit,
        }


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    return str(value)


_REGISTRY: dict[str, Metric] = {}


def register(
    name: str,
    category: str,
    direction: str,
    description: str,
    params: Sequence[Param] = (),
    protocol: str = "",
    source: str = "",
    needs_masks: bool = False,
    needs_labels: bool = False,
    curve_axis: str | None = None,
    unit: str = "",
) -> Callable[[Callable[..., MetricResult]], Callable[..., MetricResult]]:
    """Decorator adding ``compute(batch, **params) -> MetricResult`` to the registry under ``name``."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown metric category {category!r}")
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown metric direction {direction!r}")

    def add(compute: Callable[..., MetricResult]) -> Callable[..., MetricResult]:
        if name in _REGISTRY:
            raise ValueError(f"metric {name!r} is registered twice")
        _REGISTRY[name] = Metric(name, category, direction, description, compute, tuple(params), protocol, source,
                                 needs_masks, needs_labels, curve_axis, unit)
        return compute

    return add


def metrics() -> dict[str, Metric]:
    """Every registered metric by name, in registration order (by category)."""
    return dict(_REGISTRY)


def get_metric(name: str) -> Metric:
    """The metric registered as ``name``, or a ConfigError listing the valid names."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown metric {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]
