"""Activation swapping: ReLU / ReLU6 modules -> Softplus(beta), as score matching needs a non-zero Hessian.

Srinivas & Fleuret (ICLR 2021) replace every ReLU by Softplus(beta=10) so that the Hessian-trace estimate is informative.
Only ``nn.Module`` activations can be swapped; interpgrad's own architectures use modules everywhere.
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError

__all__ = ["ACTIVATIONS", "replace_activations"]

ACTIVATIONS = ("relu", "softplus")


def replace_activations(model: nn.Module, activation: str = "softplus", beta: float = 10.0) -> nn.Module:
    """Replace every ``nn.ReLU`` and ``nn.ReLU6`` in ``model`` (in place) by ``nn.Softplus(beta)``; returns ``model``.

    ``activation="relu"`` leaves the model unchanged.
    """
    if activation not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    if activation == "relu":
        return model
    if beta <= 0:
        raise ConfigError(f"softplus beta must be positive, got {beta}")
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, (nn.ReLU, nn.ReLU6)):
                setattr(parent, child_name, nn.Softplus(beta=beta))
    return model
