"""The method registry and the two objects every method deals with: the ``Request`` it answers and the
``Attribution`` it returns.

A method is one function ``compute(request, **params) -> Attribution`` registered with ``@register(...)``: its name,
family, description, declared parameters (``interpgrad.params.Param``; the CLI and the app build their widgets from
them), whether it uses a target layer, its source and the name of its Captum equivalent, if any. A method that cannot
run on its defaults names the parameters the caller must give (``requires``: GAD needs its ``support`` run): it is
left out of ``all`` and of the loops over every method that can give none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..gradients import resolve_target
from ..params import Param, resolve_params

__all__ = ["FAMILIES", "Attribution", "Method", "Request", "get_method", "methods", "register"]

FAMILIES = ("gradient", "cam", "control")

TargetSpec = int | Sequence[int] | torch.Tensor | None


@dataclass
class Request:
    """What a method explains: ``model`` (used as is), the input batch ``x`` ``[B, C, H, W]`` (detached), the target
    as the caller gave it, and the target layer (module and dotted name) for methods that use one."""

    model: nn.Module
    x: torch.Tensor
    target: TargetSpec = None
    layer: nn.Module | None = None
    layer_name: str | None = None
    _resolved: torch.Tensor | None = field(default=None, init=False, repr=False)

    def targets(self, logits: torch.Tensor) -> torch.Tensor:
        """The target class of every row, ``[B]``, resolved once from the logits of the clean input (``None`` = the
        predicted class); later calls return the same tensor."""
        if self._resolved is None:
            self._resolved = resolve_target(self.target, logits)
        return self._resolved

    @property
    def image_size(self) -> tuple[int, int]:
        return (int(self.x.shape[-2]), int(self.x.shape[-1]))


@dataclass
class Attribution:
    """What a method returns. ``raw`` is signed: ``[B, C, H, W]`` at input resolution (``at_input=True``: gradient
    methods, Guided Grad-CAM) or a class activation map ``[B, h, w]`` at the layer's resolution before the final ReLU
    (``at_input=False``). ``logits`` are the model's on the clean input, ``target`` the explained classes."""

    raw: torch.Tensor
    logits: torch.Tensor
    target: torch.Tensor
    at_input: bool


@dataclass(frozen=True)
class Method:
    """A registered attribution method."""

    name: str
    family: str  # "gradient", "cam" or "control" (maps that ignore the model, for evaluation tables)
    description: str
    compute: Callable[..., Attribution] = field(repr=False)
    params: tuple[Param, ...] = ()
    uses_layer: bool = False
    captum: str | None = None  # the Captum class computing the same thing, if any
    source: str = ""
    requires: tuple[str, ...] = ()  # parameters without a usable default: the caller must give them

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overridden by ``given``, each value checked against its declaration (ConfigError otherwise)."""
        return resolve_params(self.params, given, owner=self.name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (for the app, ``info`` and documentation)."""
        return {
            "name": self.name,
            "family": self.family,
            "description": self.description,
            "params": [param.to_dict() for param in self.params],
            "uses_layer": self.uses_layer,
            "captum": self.captum,
            "source": self.source,
            "requires": list(self.requires),
        }


_REGISTRY: dict[str, Method] = {}


def register(
    name: str,
    family: str,
    description: str,
    params: Sequence[Param] = (),
    uses_layer: bool = False,
    captum: str | None = None,
    source: str = "",
    requires: Sequence[str] = (),
) -> Callable[[Callable[..., Attribution]], Callable[..., Attribution]]:
    """Decorator adding ``compute(request, **params) -> Attribution`` to the registry under ``name``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown method family {family!r}")

    def add(compute: Callable[..., Attribution]) -> Callable[..., Attribution]:
        if name in _REGISTRY:
            raise ValueError(f"attribution method {name!r} is registered twice")
        _REGISTRY[name] = Method(name, family, description, compute, tuple(params), uses_layer, captum, source,
                                 tuple(requires))
        return compute

    return add


def methods() -> dict[str, Method]:
    """Every registered method by name, in registration order (gradient family first)."""
    return dict(_REGISTRY)


def get_method(name: str) -> Method:
    """The method registered as ``name``, or a ConfigError listing the valid names."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown attribution method {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]
