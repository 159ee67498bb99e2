"""Target layers: naming them, recording their output during a forward pass, replacing it, and the gradient of the
target logit with respect to it.

The recording hook hands a *copy* of the layer's output to the rest of the network. An in-place operation further on
(a ``ReLU(inplace=True)`` after a convolution) then changes the copy, never the recorded tensor, so the recorded
activations and their gradient are those of the layer itself — the failure mode of hooks that keep the output
tensor. A module that runs several times in one forward pass (torchvision's block ReLU) is recorded at its last call.
All hooks are removed when the block ends; ``explain`` additionally restores the whole model state.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from ..errors import ModelError
from ..gradients import select_logits
from ..models import default_target_layer_for, get_layer
from .core import Request

__all__ = [
    "LayerGradients",
    "LayerRecording",
    "layer_gradients",
    "record_forward",
    "record_layer_output",
    "replace_layer_output",
    "resolve_layer",
]


def resolve_layer(model: nn.Module, layer: str | nn.Module | None) -> tuple[nn.Module, str]:
    """The target layer and its dotted name: a module of ``model``, a dotted name, or ``None`` for the default
    (``interpgrad.models.default_target_layer_for``). An unknown name is a ModelError naming the layers there are."""
    if layer is None:
        layer = default_target_layer_for(model)
    module = get_layer(model, layer)
    if isinstance(layer, str):
        return module, layer
    name = next(name for name, candidate in model.named_modules() if candidate is module)
    return module, name


@dataclass
class LayerRecording:
    """The output of a target layer seen during a forward pass (its last call), and how often the layer ran."""

    name: str
    activation: torch.Tensor | None = None
    calls: int = 0

    def feature_map(self) -> torch.Tensor:
        """The recorded output (a feature map ``[B, K, h, w]``: the hook checks it), or a ModelError if the layer did not
        run."""
        if self.activation is None:
            raise ModelError(f"the layer {self.name!r} did not run in the forward pass; choose a layer the model uses")
        return self.activation


def _check_feature_map(name: str, output: object) -> torch.Tensor:
    if not isinstance(output, torch.Tensor) or output.dim() != 4:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ModelError(f"the layer {name!r} outputs {shape}; class activation maps need a feature map [B, K, h, w]")
    return output


@contextmanager
def record_layer_output(layer: nn.Module, name: str) -> Iterator[LayerRecording]:
    """Record ``layer``'s output during the forward passes run inside the block (see the module docstring)."""
    recording = LayerRecording(name)

    def hook(module: nn.Module, inputs: object, output: object) -> torch.Tensor:
        recording.activation = _check_feature_map(name, output)
        recording.calls += 1
        return recording.activation.clone()

    handle = layer.register_forward_hook(hook)
    try:
        yield recording
    finally:
        handle.remove()


@contextmanager
def replace_layer_output(
    layer: nn.Module, name: str, replacement: Callable[[torch.Tensor], torch.Tensor], at_call: int
) -> Iterator[None]:
    """Inside the block, the output ``A`` of ``layer``'s call number ``at_call`` (0-based, counted from the start of
    the block: run one forward pass per block) is replaced by ``replacement(A)``, which may have more rows; the
    layer's other calls are untouched."""
    calls = 0

    def hook(module: nn.Module, inputs: object, output: object) -> torch.Tensor | None:
        nonlocal calls
        index, calls = calls, calls + 1
        return replacement(_check_feature_map(name, output)) if index == at_call else None

    handle = layer.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def record_forward(request: Request) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One forward pass of the clean input without a graph: the target layer's activations ``[B, K, h, w]`` (last
    call), the logits, and how many times the layer ran."""
    assert request.layer is not None and request.layer_name is not None
    with torch.no_grad(), record_layer_output(request.layer, request.layer_name) as recording:
        logits = request.model(request.x)
    return recording.feature_map(), logits, recording.calls


@dataclass
class LayerGradients:
    """Activations ``A`` ``[B, K, h, w]`` of the target layer and ``g = d f_t(x) / dA`` (detached), with the logits."""

    activations: torch.Tensor
    gradients: torch.Tensor
    logits: torch.Tensor


def layer_gradients(
    request: Request, inputs: torch.Tensor | None = None, targets: torch.Tensor | None = None
) -> LayerGradients:
    """One forward pass recording the target layer and one backward pass down to it (not below).

    ``inputs`` default to the request's clean input, whose logits resolve the targets; noisy copies pass their
    (repeated) ``targets``. The input is made to require grad so that a graph exists even for a frozen model.
    """
    assert request.layer is not None and request.layer_name is not None
    rows = (request.x if inputs is None else inputs).detach().requires_grad_(True)
    with torch.enable_grad(), record_layer_output(request.layer, request.layer_name) as recording:
        logits = request.model(rows)
    activations = recording.feature_map()
    if targets is None:
        targets = request.targets(logits)
    (gradients,) = torch.autograd.grad(select_logits(logits, targets).sum(), activations, allow_unused=True)
    if gradients is None:  # the layer's output does not reach the logits
        gradients = torch.zeros_like(activations)
    return LayerGradients(activations.detach(), gradients, logits.detach())
