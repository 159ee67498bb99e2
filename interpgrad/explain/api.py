"""``interpgrad.explain``: the one entry point that checks the request, runs a registered method with the model's
state preserved, and assembles the Explanation."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..modelstate import preserved_model_state
from .core import Request, TargetSpec, get_method
from .explanation import Explanation, build_explanation
from .layers import resolve_layer

__all__ = ["explain", "check_input"]


def check_input(x: object) -> torch.Tensor:
    """``x`` as a detached floating tensor ``[B, C, H, W]`` with B >= 1, or a ConfigError."""
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"the input must be a tensor [B, C, H, W], got {type(x).__name__}")
    if x.dim() != 4 or x.shape[0] == 0:
        raise ConfigError(f"the input must be a non-empty batch of images [B, C, H, W], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ConfigError(f"the input must be a floating tensor (a normalised image batch), got {x.dtype}")
    return x.detach()


def explain(
    model: nn.Module,
    x: torch.Tensor,
    method: str,
    target: TargetSpec = None,
    layer: str | nn.Module | None = None,
    **params: Any,
) -> Explanation:
    """Explain ``model``'s decision on the batch ``x`` with the registered ``method``.

    Args:
        model: a classifier returning logits ``[B, classes]``, in eval mode (``load_checkpoint`` returns one; the
            mode is not changed here, and train mode — batch statistics, dropout — gives a warning). It is left
            exactly as it was (modules, hooks, mode, ``requires_grad``, ``.grad``), also when this raises.
        x: input batch ``[B, C, H, W]``, normalised as the model expects.
        method: a name from ``interpgrad.methods()``.
        target: class per row (int, sequence, LongTensor ``[B]``); ``None`` = the predicted class of each row.
        layer: target layer of CAM-family methods: a submodule, a dotted name (``"layer4"``) or ``None`` for the
            model's default; ignored by methods that use no layer (``Explanation.layer`` is then None).
        **params: the method's declared parameters (see ``methods()[method].params``); defaults fill the rest.

    Returns:
        An Explanation: ``.map`` ``[B, H, W]`` (display map, not normalised), ``.signed_map``, ``.raw``, ``.target``,
        ``.logits``, ``.probabilities``, ``.method``, ``.layer``, ``.params``.

    CAM methods hook the target layer for the duration of the call, so calls on one model object must not run
    concurrently (serialise them, e.g. with a lock per model); different models are independent.

    >>> explanation = explain(model.eval(), x, "gradcam", target=[3, 5], layer="layer4")
    """
    spec = get_method(method)
    resolved = spec.resolve(params)
    x = check_input(x)
    if model.training:
        warnings.warn(
            "the model is in train mode (batch statistics, dropout): explanations are usually taken in eval mode; "
            "call model.eval() first",
            stacklevel=2,
        )
    with preserved_model_state(model):
        module, name = resolve_layer(model, layer) if spec.uses_layer else (None, None)
        request = Request(model, x, target, module, name)
        attribution = spec.compute(request, **resolved)
    return build_explanation(attribution, request.image_size, spec.name, name, resolved)
