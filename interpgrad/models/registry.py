"""The architecture registry: every model interpgrad can build, its family and its default CAM target layer.

CIFAR-style networks are registered under their plain names (``resnet18``, ``mobilenet_v2``); torchvision's ImageNet
classifiers under ``torchvision.<name>``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

from torch import nn

from ..errors import ConfigError, ModelError
from .activations import ACTIVATIONS, replace_activations
from .cifar import CifarMobileNetV2, CifarResNet18
from .imagenet import build_torchvision_model

__all__ = [
    "Architecture",
    "MAX_IMAGE_SIZE",
    "MAX_NUM_CLASSES",
    "MAX_WIDTH",
    "ModelConfig",
    "architectures",
    "build_model",
    "default_target_layer",
    "default_target_layer_for",
    "get_architecture",
    "get_layer",
    "unwrap_model",
]


@dataclass(frozen=True)
class Architecture:
    """One buildable architecture: ``builder(num_classes, width, pretrained)`` returns the ReLU version."""

    name: str
    family: str  # "cifar" (3x3 stem, small inputs) or "imagenet" (torchvision)
    target_layer: str  # dotted module name used by CAM methods by default
    default_image_size: int
    description: str
    builder: Callable[[int, float, bool], nn.Module]
    has_width: bool = True
    has_pretrained: bool = False


def _cifar(model_class: type[nn.Module]) -> Callable[[int, float, bool], nn.Module]:
    def build(num_classes: int, width: float, pretrained: bool) -> nn.Module:
        if pretrained:
            raise ModelError(f"{model_class.__name__} has no pretrained weights; train it with `python -m interpgrad train`")
        return model_class(num_classes=num_classes, width=width)

    return build


def _torchvision(name: str) -> Callable[[int, float, bool], nn.Module]:
    def build(num_classes: int, width: float, pretrained: bool) -> nn.Module:
        if width != 1.0:
            raise ConfigError(f"torchvision.{name} has no width multiplier (got width={width}); use width 1")
        return build_torchvision_model(name, num_classes=num_classes, pretrained=pretrained)

    return build


_ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("resnet18", "cifar", "layer4", 32, "CIFAR-style ResNet-18 (3x3 stem, no max-pool)", _cifar(CifarResNet18)),
        Architecture("mobilenet_v2", "cifar", "features.18", 32, "CIFAR-style MobileNet-V2 (ReLU6)", _cifar(CifarMobileNetV2)),
        Architecture("torchvision.resnet18", "imagenet", "layer4", 224, "torchvision ResNet-18", _torchvision("resnet18"), False, True),
        Architecture("torchvision.resnet50", "imagenet", "layer4", 224, "torchvision ResNet-50", _torchvision("resnet50"), False, True),
        Architecture("torchvision.vgg16_bn", "imagenet", "features.42", 224, "torchvision VGG-16 with batch norm", _torchvision("vgg16_bn"), False, True),
        Architecture("torchvision.mobilenet_v2", "imagenet", "features.18", 224, "torchvision MobileNet-V2", _torchvision("mobilenet_v2"), False, True),
    )
}


def architectures() -> dict[str, Architecture]:
    """All registered architectures by name."""
    return dict(_ARCHITECTURES)


def get_architecture(name: str) -> Architecture:
    """The registered architecture ``name``, or a ModelError listing the valid names."""
    if name not in _ARCHITECTURES:
        raise ModelError(f"unknown architecture {name!r}; choose one of {', '.join(_ARCHITECTURES)}")
    return _ARCHITECTURES[name]


def default_target_layer(arch: str) -> str:
    """The dotted name of the layer CAM methods use by default for ``arch``."""
    return get_architecture(arch).target_layer


# Upper bounds of a model's size that every real model satisfies (ImageNet-21k has 21,843 classes; ImageNet models
# take 224-512 px; the CIFAR-style networks are used at widths up to 4). Checkpoint metadata may come from anyone:
# without bounds, ``image_size=50000`` makes every explanation allocate a 50000x50000 input.
MAX_NUM_CLASSES = 100_000
MAX_IMAGE_SIZE = 1024
MAX_WIDTH = 8.0


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model before loading its weights (stored in checkpoint metadata).

    Types and sizes are checked here, because the values often come from a checkpoint file: a wrong type or an absurd
    size is a ConfigError naming the field, not a TypeError deep in a model builder or a huge allocation.
    """

    arch: str = "resnet18"
    num_classes: int = 10
    width: float = 1.0
    image_size: int = 32
    activation: str = "relu"  # "relu" or "softplus" (every ReLU/ReLU6 replaced)
    softplus_beta: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.arch, str):
            raise ConfigError(f"arch must be a name such as 'resnet18', got {self.arch!r}")
        get_architecture(self.arch)
        if not _is_int(self.num_classes) or not 1 <= self.num_classes <= MAX_NUM_CLASSES:
            raise ConfigError(f"num_classes must be an integer in 1..{MAX_NUM_CLASSES}, got {self.num_classes!r}")
        if not _is_number(self.width) or not 0 < self.width <= MAX_WIDTH:
            raise ConfigError(f"width must be a number in (0, {MAX_WIDTH:g}], got {self.width!r}")
        if not _is_int(self.image_size) or not 8 <= self.image_size <= MAX_IMAGE_SIZE:
            raise ConfigError(f"image_size must be an integer in 8..{MAX_IMAGE_SIZE}, got {self.image_size!r}")
        if not _is_number(self.softplus_beta) or not self.softplus_beta > 0:
            raise ConfigError(f"softplus_beta must be a positive number, got {self.softplus_beta!r}")
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from a metadata dict, ignoring unknown keys (newer files) and naming a missing required one."""
        known = {field.name for field in fields(cls)}
        if not isinstance(data, dict):
            raise ConfigError(f"model metadata must be a JSON object, got {type(data).__name__}")
        if "arch" not in data:
            raise ConfigError("model metadata has no 'arch'")
        return cls(**{key: value for key, value in data.items() if key in known})


def build_model(config: ModelConfig | str, pretrained: bool = False, **overrides: Any) -> nn.Module:
    """Build a freshly initialised model (in train mode) from a ModelConfig or an architecture name plus overrides.

    >>> model = build_model("resnet18", num_classes=10, width=0.25)
    """
    if isinstance(config, str):
        config = ModelConfig(arch=config, **overrides)
    elif overrides:
        config = ModelConfig(**{**config.to_dict(), **overrides})
    arch = get_architecture(config.arch)
    model = arch.builder(config.num_classes, config.width, pretrained)
    return replace_activations(model, config.activation, config.softplus_beta)


def default_target_layer_for(model: nn.Module) -> str:
    """The dotted name of the default CAM layer of a built model: the registry's choice for interpgrad's and
    torchvision's architectures, otherwise the last ``nn.Conv2d``."""
    import torchvision

    by_type: tuple[tuple[type[nn.Module], str], ...] = (
        (CifarResNet18, "layer4"),
        (CifarMobileNetV2, "features.18"),
        (torchvision.models.ResNet, "layer4"),
        (torchvision.models.MobileNetV2, "features.18"),
    )
    for model_type, layer in by_type:
        if isinstance(model, model_type):
            return layer
    if isinstance(model, torchvision.models.VGG):  # the last rectifier of the feature extractor
        names = [name for name, module in model.features.named_children() if isinstance(module, (nn.ReLU, nn.Softplus))]
        if names:
            return f"features.{names[-1]}"
    convolutions = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    if not convolutions:
        raise ModelError("the model has no Conv2d layer; pass the target layer explicitly")
    return convolutions[-1]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def get_layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    """The submodule of ``model`` named by a dotted path (``"layer4"``, ``"features.18"``, ``"layer4.1.conv2"``).

    A module is returned as is after checking that it belongs to ``model``.
    """
    if isinstance(layer, nn.Module):
        if not any(module is layer for module in model.modules()):
            raise ModelError(f"the layer {type(layer).__name__} is not a submodule of the model")
        return layer
    try:
        return model.get_submodule(layer)
    except AttributeError:
        names = [name for name, module in model.named_modules() if name and len(list(module.children())) > 0]
        hint = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise ModelError(f"the model has no layer {layer!r}; layers with children include: {hint}") from None
