"""Tensor transforms on images in [0, 1] shaped [C, H, W] or [B, C, H, W]: normalisation and the CIFAR augmentation."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..errors import DataError

__all__ = [
    "CropFlipParams",
    "RandomCropFlip",
    "augmentation_from_names",
    "denormalize",
    "normalize",
    "to_float_images",
]


def _channel_stats(x: torch.Tensor, values: Sequence[float]) -> torch.Tensor:
    """``values`` as a tensor shaped to broadcast over the channel axis of ``x`` ([C,H,W] or [B,C,H,W])."""
    if x.dim() not in (3, 4):
        raise ValueError(f"expected an image tensor [C,H,W] or [B,C,H,W], got shape {tuple(x.shape)}")
    stats = torch.as_tensor(values, dtype=x.dtype, device=x.device)
    return stats.reshape(-1, 1, 1)


def normalize(
    x: torch.Tensor, mean: Sequence[float], std: Sequence[float], *, inplace: bool = False
) -> torch.Tensor:
    """``(x - mean) / std`` per channel (written into ``x`` when ``inplace``)."""
    if inplace:
        return x.sub_(_channel_stats(x, mean)).div_(_channel_stats(x, std))
    return (x - _channel_stats(x, mean)) / _channel_stats(x, std)


def denormalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``x * std + mean`` per channel (the inverse of :func:`normalize`)."""
    return x * _channel_stats(x, std) + _channel_stats(x, mean)


def to_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 images [..., H, W, C] as contiguous float32 [..., C, H, W] in [0, 1]."""
    moved = images.movedim(-1, -3)
    out = torch.empty(moved.shape, dtype=torch.float32, device=images.device)
    out.copy_(moved)
    return out.div_(255.0)


class CropFlipParams(NamedTuple):
    """Per-sample draws of :class:`RandomCropFlip`: crop offsets into the padded image and the flip flags."""

    top: torch.Tensor
    left: torch.Tensor
    flip: torch.Tensor


class RandomCropFlip:
    """The standard CIFAR augmentation on a batch: zero-pad by ``padding``, random crop back to H x W, and a horizontal
    flip with probability 0.5, drawn independently per sample and applied with one gather (no per-sample Python work).
    """

    def __init__(self, padding: int = 4, flip: bool = True, generator: torch.Generator | None = None) -> None:
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self.padding = int(padding)
        self.flip = bool(flip)
        self.generator = generator

    def __repr__(self) -> str:
        return f"RandomCropFlip(padding={self.padding}, flip={self.flip})"

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> CropFlipParams:
        """Draw crop offsets in [0, 2*padding] and flip flags for ``batch_size`` samples (on the generator's device)."""
        generator = generator if generator is not None else self.generator
        device = generator.device if generator is not None else None
        span = 2 * self.padding + 1
        top = torch.randint(0, span, (batch_size,), generator=generator, device=device)
        left = torch.randint(0, span, (batch_size,), generator=generator, device=device)
        if self.flip:
            flip = torch.rand(batch_size, generator=generator, device=device) < 0.5
        else:
            flip = torch.zeros(batch_size, dtype=torch.bool, device=device)
        return CropFlipParams(top, left, flip)

    def apply(self, x: torch.Tensor, params: CropFlipParams) -> torch.Tensor:
        """Crop and flip the batch ``x`` [B,C,H,W] as ``params`` say: out[b] = crop of pad(x[b]) at (top, left)."""
        batch, _, height, width = x.shape
        device = x.device
        top, left, flip = (tensor.to(device) for tensor in params)
        padded = F.pad(x, (self.padding,) * 4) if self.padding else x
        rows = top[:, None] + torch.arange(height, device=device)
        cols_forward = torch.arange(width, device=device)
        cols = torch.where(flip[:, None], cols_forward.flip(0), cols_forward) + left[:, None]
        index = torch.arange(batch, device=device)[:, None, None]
        gathered = padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]]
        return gathered.permute(0, 3, 1, 2).contiguous()

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch [B,C,H,W] or a single image [C,H,W]."""
        if x.dim() == 3:
            return self(x.unsqueeze(0), generator).squeeze(0)
        if x.dim() != 4:
            raise ValueError(f"expected [C,H,W] or [B,C,H,W], got shape {tuple(x.shape)}")
        return self.apply(x, self.sample(x.shape[0], generator))


_CROP_NAME = re.compile(r"random_crop_pad(\d+)")


def augmentation_from_names(
    names: Sequence[str], generator: torch.Generator | None = None
) -> RandomCropFlip | None:
    """The batch augmentation named by ``DataInfo.augment`` (``random_crop_padK``, ``horizontal_flip``), or None."""
    padding, flip = 0, False
    for name in names:
        match = _CROP_NAME.fullmatch(name)
        if match:
            padding = int(match.group(1))
        elif name == "horizontal_flip":
            flip = True
        else:
            raise DataError(f"unknown augmentation {name!r}; known: random_crop_pad<K>, horizontal_flip")
    if padding == 0 and not flip:
        return None
    return RandomCropFlip(padding=padding, flip=flip, generator=generator)
