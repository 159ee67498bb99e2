"""Architectures: shapes at 32/64, width multiplier, registry and target layers, Softplus swap, torchvision weights read
only from the local cache (the tests build a fake cache; nothing is downloaded)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from interpgrad import ConfigError, ModelConfig, ModelError, architectures, build_model, default_target_layer, get_layer
from interpgrad.models import default_target_layer_for
from interpgrad.models import imagenet_class_names, pretrained_weight_paths


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
@pytest.mark.parametrize("size", [32, 64])
def test_cifar_models_shapes(arch: str, size: int) -> None:
    model = build_model(arch, num_classes=7, width=0.25).eval()
    assert model(torch.randn(2, 3, size, size)).shape == (2, 7)
    layer = get_layer(model, default_target_layer(arch))
    activations = []
    handle = layer.register_forward_hook(lambda m, i, o: activations.append(o))
    model(torch.randn(1, 3, size, size))
    handle.remove()
    assert activations[0].shape[-1] == size // 8  # the CAM layer sees 1/8 of the input


def test_cifar_style_stem_has_no_max_pool() -> None:
    model = build_model("resnet18")
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert 11.1e6 < _parameters(model) < 11.2e6  # the usual CIFAR ResNet-18


def test_width_multiplier_scales_channels() -> None:
    full = build_model("resnet18", width=1.0)
    quarter = build_model("resnet18", width=0.25)
    assert quarter.conv1.out_channels == 16 and quarter.fc.in_features == 128
    assert _parameters(quarter) < _parameters(full) / 12
    assert _parameters(build_model("mobilenet_v2", width=0.25)) < _parameters(build_model("mobilenet_v2")) / 4


def test_mobilenet_uses_relu6() -> None:
    model = build_model("mobilenet_v2", width=0.5)
    assert any(isinstance(m, nn.ReLU6) for m in model.modules())
    assert not any(type(m) is nn.ReLU for m in model.modules())


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2", "torchvision.resnet18", "torchvision.mobilenet_v2"])
def test_softplus_swap(arch: str) -> None:
    model = build_model(arch, num_classes=3, activation="softplus", softplus_beta=10.0)
    softplus = [m for m in model.modules() if isinstance(m, nn.Softplus)]
    assert softplus and all(m.beta == 10.0 for m in softplus)
    assert not any(isinstance(m, (nn.ReLU, nn.ReLU6)) for m in model.modules())


def test_registry_lists_every_architecture_with_a_real_target_layer() -> None:
    registry = architectures()
    assert {"resnet18", "mobilenet_v2", "torchvision.resnet18", "torchvision.resnet50", "torchvision.vgg16_bn",
            "torchvision.mobilenet_v2"} <= set(registry)
    for name, arch in registry.items():
        model = build_model(name, num_classes=4)
        layer = get_layer(model, arch.target_layer)
        assert isinstance(layer, nn.Module) and arch.family in {"cifar", "imagenet"}


def test_default_target_layer_of_a_built_model() -> None:
    for name, arch in architectures().items():
        assert default_target_layer_for(build_model(name, num_classes=3)) == arch.target_layer
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Flatten())
    assert default_target_layer_for(plain) == "2"
    with pytest.raises(ModelError, match="no Conv2d"):
        default_target_layer_for(nn.Linear(2, 2))


def test_unknown_names_are_clear_errors() -> None:
    with pytest.raises(ModelError, match="unknown architecture 'resnet19'.*resnet18"):
        build_model("resnet19")
    with pytest.raises(ModelError, match="no layer 'layer9'"):
        get_layer(build_model("resnet18", width=0.25), "layer9")
    with pytest.raises(ModelError, match="not a submodule"):
        get_layer(build_model("resnet18", width=0.25), nn.Conv2d(1, 1, 1))
    with pytest.raises(ConfigError, match="width"):
        build_model("resnet18", width=0)
    with pytest.raises(ConfigError, match="activation"):
        build_model("resnet18", activation="gelu")
    with pytest.raises(ConfigError, match="no width multiplier"):
        build_model("torchvision.resnet18", width=0.5)


def test_model_config_round_trip_ignores_unknown_keys() -> None:
    config = ModelConfig("mobilenet_v2", num_classes=100, width=0.5, image_size=64, activation="softplus")
    assert ModelConfig.from_dict({**config.to_dict(), "added_in_a_later_version": 1}) == config


def test_pretrained_weights_come_only_from_the_local_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelError, match="not in the local torch cache.*resnet18-f37072fd.pth"):
        build_model("torchvision.resnet18", pretrained=True)
    source = build_model("torchvision.resnet18", num_classes=1000)
    path = pretrained_weight_paths("resnet18")[0]
    assert path.parent == tmp_path / "hub" / "checkpoints"
    path.parent.mkdir(parents=True)
    torch.save(source.state_dict(), path)
    loaded = build_model("torchvision.resnet18", pretrained=True)
    assert torch.equal(loaded.conv1.weight, source.conv1.weight)
    finetune = build_model("torchvision.resnet18", num_classes=2, pretrained=True)
    assert torch.equal(finetune.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert finetune.fc.out_features == 2


def test_corrupt_cached_weights_are_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = pretrained_weight_paths("mobilenet_v2")[0]
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a weight file")
    with pytest.raises(ModelError, match="cannot load pretrained weights"):
        build_model("torchvision.mobilenet_v2", pretrained=True)


def test_imagenet_class_names_are_offline() -> None:
    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench"
