"""Gradients are arbitrary (Srinivas & Fleuret 2021, section 3): adding the same function g(x) to every logit leaves
the softmax unchanged, softmax(f(x) + g(x) 1) = softmax(f(x)), so the classifier's predictions and probabilities are
the same, while every logit gradient becomes grad f_i(x) + grad g(x): whatever g makes it.

With g the inner product with a pattern P, g(x) = scale * <P, x>, grad g = scale * P: the gradient maps of every class
show the original's gradient plus scale times the pattern. ``add_to_logits`` wraps a model; the field acts on the
wrapped model's input, so wrap a ``PixelSpaceModel`` to add a pattern in pixel space.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = ["AddToLogits", "InnerProductField", "add_to_logits"]


class InnerProductField(nn.Module):
    """g(x) = scale * <pattern, x> per image, shape ``[B]``; its input gradient is ``scale * pattern`` everywhere.
    ``pattern``: ``[C, H, W]`` (e.g. from ``interpgrad.lab.patterns``, unit norm, so ``scale`` is the norm added)."""

    def __init__(self, pattern: torch.Tensor, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("pattern", torch.as_tensor(pattern, dtype=torch.float32).detach().clone())
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * (x * self.pattern.to(x.dtype)).flatten(1).sum(1)


class AddToLogits(nn.Module):
    """Logits ``model(x) + g(x)``, the same ``g(x)`` (shape ``[B]``) added to every class."""

    def __init__(self, model: nn.Module, field: nn.Module | Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        self.field = field

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) + self.field(x).reshape(-1, 1)


def add_to_logits(model: nn.Module, g: nn.Module | Callable[[torch.Tensor], torch.Tensor]) -> AddToLogits:
    """A module whose logits are ``model(x) + g(x)`` for every class (module docstring); its mode is ``model``'s."""
    wrapped = AddToLogits(model, g)
    return wrapped.train(model.training)
