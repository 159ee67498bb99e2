"""Small models the explanation tests share (plain functions: each test module decides how to cache them)."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

import interpgrad


def cifar_resnet18(seed: int = 0) -> nn.Module:
    """The starter-sized CIFAR ResNet-18 (width 0.25), random weights, eval mode."""
    torch.manual_seed(seed)
    return interpgrad.build_model("resnet18", width=0.25).eval()


def torchvision_resnet18(seed: int = 1) -> nn.Module:
    """torchvision's ResNet-18 (in-place ReLUs reused within each block) with random batch-norm statistics, so that
    rectifier masks are far from trivial; eval mode."""
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=10).eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
    return model


def tiny_shapes_checkpoint(path, seed: int = 0, image_size: int = 16):  # type: ignore[no-untyped-def]
    """A checkpoint of a random ResNet-18 at width 0.125 "trained" on shapes at ``image_size`` (its metadata says so,
    as a trainer's would: what GAD runs read their images from); returns the weights path."""
    from interpgrad.data.shapes import shapes_info

    torch.manual_seed(seed)
    config = interpgrad.ModelConfig("resnet18", num_classes=10, width=0.125, image_size=image_size)
    model = interpgrad.build_model(config).eval()
    return interpgrad.save_checkpoint(path, model, config, data=shapes_info(image_size),
                                      training={"dataset": "shapes", "seed": 0})
