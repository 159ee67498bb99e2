"""CIFAR-style networks: a 3x3 stem and no max-pool, for 32x32 and 64x64 inputs, with a width multiplier.

Module names follow torchvision's (``conv1``/``bn1``/``relu``/``layer1..4``/``fc`` for ResNet, ``features``/``classifier``
for MobileNet-V2) so target layers read the same on both families. Every rectifier is an ``nn.Module``, so activation
swapping (ReLU -> Softplus) and module-based tools such as Captum see all of them.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CifarResNet18", "CifarMobileNetV2", "scale_channels"]


def scale_channels(channels: int, width: float, divisor: int = 1) -> int:
    """``channels * width`` rounded to a multiple of ``divisor`` (never below ``divisor`` nor 10 % under the exact value)."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return rounded


def _init_weights(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut; the block's ReLU module is used twice, as in torchvision."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class CifarResNet18(nn.Module):
    """ResNet-18 (He et al. 2016) for small images: 3x3 stride-1 stem, no max-pool, stages of 2 blocks.

    Stage widths are ``(64, 128, 256, 512) * width``; the last stage sees 4x4 maps at 32x32 input, 8x8 at 64x64.
    """

    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        widths = [scale_channels(c, width) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        in_channels = widths[0]
        for index, (channels, stride) in enumerate(zip(widths, (1, 2, 2, 2)), start=1):
            stage = nn.Sequential(BasicBlock(in_channels, channels, stride), BasicBlock(channels, channels, 1))
            self.add_module(f"layer{index}", stage)
            in_channels = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _conv_bn_relu6(in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU6(),
    )


class InvertedResidual(nn.Module):
    """MobileNet-V2 block: 1x1 expansion, 3x3 depthwise, linear 1x1 projection; residual when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_relu6(in_channels, hidden, kernel=1))
        layers += [
            _conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


# (expansion t, output channels c, repeats n, first stride s); CIFAR variant: stride 1 in the stem and the 24-channel stage.
_MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class CifarMobileNetV2(nn.Module):
    """MobileNet-V2 (Sandler et al. 2018) for small images: 3x3 stride-1 stem, ReLU6, width multiplier.

    ``features`` holds the stem, the 17 inverted-residual blocks and the final 1x1 convolution (``features.18``, the
    default CAM layer); its spatial size is 1/8 of the input.
    """

    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        in_channels = scale_channels(32, width, 8)
        last_channels = scale_channels(1280, width, 8)
        features: list[nn.Module] = [_conv_bn_relu6(3, in_channels)]
        for expand, channels, repeats, stride in _MOBILENET_V2_STAGES:
            out_channels = scale_channels(channels, width, 8)
            for repeat in range(repeats):
                features.append(InvertedResidual(in_channels, out_channels, stride if repeat == 0 else 1, expand))
                in_channels = out_channels
        features.append(_conv_bn_relu6(in_channels, last_channels, kernel=1))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(last_channels, num_classes))
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
