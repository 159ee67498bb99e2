"""Architectures: CIFAR-style ResNet-18 / MobileNet-V2 with a width multiplier, torchvision's ImageNet models, a registry."""

from __future__ import annotations

from .activations import ACTIVATIONS, replace_activations
from .cifar import CifarMobileNetV2, CifarResNet18
from .imagenet import TORCHVISION_MODELS, build_torchvision_model, imagenet_class_names, pretrained_weight_paths
from .registry import (
    Architecture,
    ModelConfig,
    architectures,
    build_model,
    default_target_layer,
    default_target_layer_for,
    get_architecture,
    get_layer,
    unwrap_model,
)

__all__ = [
    "ACTIVATIONS",
    "Architecture",
    "CifarMobileNetV2",
    "CifarResNet18",
    "ModelConfig",
    "TORCHVISION_MODELS",
    "architectures",
    "build_model",
    "build_torchvision_model",
    "default_target_layer",
    "default_target_layer_for",
    "get_architecture",
    "get_layer",
    "imagenet_class_names",
    "pretrained_weight_paths",
    "replace_activations",
    "unwrap_model",
]
