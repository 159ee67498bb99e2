"""torchvision's ImageNet classifiers by name, with pretrained weights read only from the local torch cache.

Nothing is downloaded: the weight file must already be in ``$TORCH_HOME/hub/checkpoints`` (where
``torchvision.models.<name>(weights=...)`` leaves it after one online run). With ``num_classes != 1000`` the
classifier head is replaced by a fresh layer (fine-tuning).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from ..errors import ModelError

__all__ = ["TORCHVISION_MODELS", "build_torchvision_model", "imagenet_class_names", "pretrained_weight_paths"]

# name -> torchvision weights enum; its members name the files a cache may hold.
TORCHVISION_MODELS: dict[str, type[torchvision.models.WeightsEnum]] = {
    "resnet18": torchvision.models.ResNet18_Weights,
    "resnet50": torchvision.models.ResNet50_Weights,
    "vgg16_bn": torchvision.models.VGG16_BN_Weights,
    "mobilenet_v2": torchvision.models.MobileNet_V2_Weights,
}


def _weights_enum(name: str) -> type[torchvision.models.WeightsEnum]:
    if name not in TORCHVISION_MODELS:
        raise ModelError(f"unknown torchvision model {name!r}; choose one of {', '.join(TORCHVISION_MODELS)}")
    return TORCHVISION_MODELS[name]


def pretrained_weight_paths(name: str) -> list[Path]:
    """The cache paths where the ImageNet weights of ``name`` may be found, default version first."""
    weights = _weights_enum(name)
    members = [weights.DEFAULT] + [member for member in weights if member is not weights.DEFAULT]
    directory = Path(torch.hub.get_dir()) / "checkpoints"
    return [directory / member.url.rsplit("/", 1)[-1] for member in members]


def imagenet_class_names(name: str = "resnet18") -> tuple[str, ...]:
    """The 1000 ImageNet class names shipped with torchvision (no download)."""
    return tuple(_weights_enum(name).DEFAULT.meta["categories"])


def _load_cached_weights(name: str, model: nn.Module) -> None:
    paths = pretrained_weight_paths(name)
    found = next((path for path in paths if path.is_file()), None)
    if found is None:
        raise ModelError(
            f"pretrained weights for {name} are not in the local torch cache (looked for {paths[0]}); "
            f"interpgrad never downloads them: run `python -c \"import torchvision; torchvision.models.{name}"
            f"(weights='DEFAULT')\"` once on a machine with network access, or copy the file there "
            f"(set TORCH_HOME to use another cache folder)"
        )
    try:
        state = torch.load(found, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as error:  # a corrupt or foreign file
        raise ModelError(f"cannot load pretrained weights for {name} from {found}: {error}") from error


def _replace_head(name: str, model: nn.Module, num_classes: int) -> None:
    if name.startswith("resnet"):
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    else:  # vgg16_bn and mobilenet_v2 end with a Linear inside ``classifier``
        last = model.classifier[-1]
        model.classifier[-1] = nn.Linear(last.in_features, num_classes)


def build_torchvision_model(name: str, num_classes: int = 1000, pretrained: bool = False) -> nn.Module:
    """torchvision's ``name`` with ``num_classes`` outputs; ImageNet weights from the local cache when ``pretrained``."""
    _weights_enum(name)
    if not pretrained:
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    model = torchvision.models.get_model(name, weights=None, num_classes=1000)
    _load_cached_weights(name, model)
    if num_classes != 1000:
        _replace_head(name, model, num_classes)
    return model
