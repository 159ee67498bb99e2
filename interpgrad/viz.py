"""Showing attribution maps: normalisation, colouring and overlays as separate steps, and labelled grids of panels.

    display = normalize_map(explanation.map)                        # [0, 1], per image, 99.5th percentile -> 1
    rgb = overlay(image_uint8, display[0], alpha=0.5)               # uint8 [H, W, 3]
    signed = normalize_map(explanation.signed_map, mode="signed")   # [-1, 1], 0 stays 0
    save_grid("grid.png", [[rgb, colorize(signed[0], signed=True)]], column_labels=["map", "signed"])

Maps are never normalised inside the methods; these functions are where raw values become pixels.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from .errors import ConfigError

__all__ = [
    "DEFAULT_CMAP",
    "DEFAULT_SIGNED_CMAP",
    "NORMALIZATION_MODES",
    "colorize",
    "denormalize_image",
    "grid_figure",
    "normalize_map",
    "overlay",
    "png_bytes",
    "save_grid",
]

NORMALIZATION_MODES = ("absolute", "signed")
DEFAULT_CMAP = "jet"
DEFAULT_SIGNED_CMAP = "RdBu_r"  # diverging: blue negative, white zero, red positive

MapLike = torch.Tensor | np.ndarray


def _as_tensor(values: MapLike) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(values) if not isinstance(values, torch.Tensor) else values)
    return tensor.detach().to("cpu", torch.float32)


def normalize_map(values: MapLike, mode: str = "absolute", percentile: float = 99.5) -> torch.Tensor:
    """Scale a map ``[H, W]`` or maps ``[B, H, W]`` for display, each image on its own.

    ``absolute``: ``|m| / q`` clipped to [0, 1]; ``signed``: ``m / q`` clipped to [-1, 1] (sign kept, 0 stays 0);
    ``q`` is the ``percentile``-th percentile of ``|m|`` over the image (100 = the maximum), so a few extreme pixels
    do not wash out the rest; where that percentile is 0 (a sparse map, fewer non-zero pixels than the percentile
    leaves out) ``q`` is the maximum, so the map is shown instead of blank. An all-zero (or non-finite) map gives zeros.
    """
    if mode not in NORMALIZATION_MODES:
        raise ConfigError(f"unknown normalisation mode {mode!r}; choose one of {', '.join(NORMALIZATION_MODES)}")
    if not 0.0 < percentile <= 100.0:
        raise ConfigError(f"percentile must be in (0, 100], got {percentile}")
    maps = _as_tensor(values)
    if maps.dim() not in (2, 3):
        raise ConfigError(f"expected a map [H, W] or maps [B, H, W], got shape {tuple(maps.shape)}")
    single = maps.dim() == 2
    maps = torch.nan_to_num(maps if not single else maps.unsqueeze(0), nan=0.0, posinf=0.0, neginf=0.0)
    magnitude = maps.abs().flatten(1)
    scale = torch.quantile(magnitude, percentile / 100.0, dim=1)
    scale = torch.where(scale > 0, scale, magnitude.amax(dim=1)).view(-1, 1, 1)
    scaled = torch.where(scale > 0, maps / torch.where(scale > 0, scale, torch.ones_like(scale)), 0.0)
    result = scaled.abs().clamp(max=1.0) if mode == "absolute" else scaled.clamp(-1.0, 1.0)
    return result[0] if single else result


def _colormap(name: str):  # type: ignore[no-untyped-def]
    import matplotlib

    try:
        return matplotlib.colormaps[name]
    except KeyError:
        raise ConfigError(f"unknown colormap {name!r} (any matplotlib colormap name, e.g. jet, inferno, RdBu_r)") from None


def colorize(values: MapLike, cmap: str | None = None, signed: bool = False) -> np.ndarray:
    """A normalised map as colours, uint8 ``[..., H, W, 3]``.

    Unsigned maps are read in [0, 1]; signed maps in [-1, 1], with 0 at the middle of the (diverging) colormap.
    Values outside are clipped. Default colormaps: ``jet`` (unsigned), ``RdBu_r`` (signed).
    """
    maps = _as_tensor(values).numpy()
    position = (np.clip(maps, -1.0, 1.0) + 1.0) / 2.0 if signed else np.clip(maps, 0.0, 1.0)
    colormap = _colormap(cmap or (DEFAULT_SIGNED_CMAP if signed else DEFAULT_CMAP))
    rgba = colormap(np.nan_to_num(position, nan=0.5 if signed else 0.0), bytes=True)
    return np.ascontiguousarray(rgba[..., :3])


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ConfigError(f"expected an RGB image as uint8 [H, W, 3], got {got}")


def _resize_map(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(maps.shape[-2:]) == size:
        return maps
    return F.interpolate(maps[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]


def overlay(
    image: np.ndarray, values: MapLike, alpha: float = 0.5, cmap: str | None = None, signed: bool = False
) -> np.ndarray:
    """The coloured map blended over an RGB image: ``(1 - alpha) * image + alpha * colorize(map)``, uint8 [H, W, 3].

    ``values`` is a normalised map ``[h, w]`` (``normalize_map``); it is resized bilinearly to the image's size.
    """
    _check_image(image)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
    maps = _as_tensor(values)
    if maps.dim() != 2:
        raise ConfigError(f"overlay takes one map [H, W], got shape {tuple(maps.shape)}")
    colours = colorize(_resize_map(maps, image.shape[:2]), cmap, signed).astype(np.float32)
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def denormalize_image(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A normalised image ``[3, H, W]`` (or batch ``[B, 3, H, W]``) back to uint8 RGB ``[H, W, 3]`` (``[B, H, W, 3]``):
    ``x * std + mean`` per channel, clipped to [0, 1], times 255, rounded."""
    if x.dim() not in (3, 4) or x.shape[-3] != 3:
        raise ConfigError(f"expected an image [3, H, W] or a batch [B, 3, H, W], got shape {tuple(x.shape)}")
    stats = [torch.as_tensor(values, dtype=torch.float32).view(3, 1, 1) for values in (std, mean)]
    pixels = (x.detach().to("cpu", torch.float32) * stats[0] + stats[1]).clamp(0.0, 1.0)
    return np.ascontiguousarray((pixels * 255.0).round().to(torch.uint8).movedim(-3, -1).numpy())


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _panel(image: np.ndarray | None, size: int, background: tuple[int, int, int]) -> Image.Image:
    if image is None:
        return Image.new("RGB", (size, size), background)
    _check_image(image)
    picture = Image.fromarray(image)
    scale = size / max(picture.size)
    shape = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    # Nearest neighbour when enlarging keeps small model inputs (32x32) crisp; Lanczos when shrinking.
    picture = picture.resize(shape, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), background)
    canvas.paste(picture, ((size - shape[0]) // 2, (size - shape[1]) // 2))
    return canvas


def grid_figure(
    panels: Sequence[Sequence[np.ndarray | None]],
    column_labels: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    captions: Sequence[Sequence[str]] | None = None,
    panel_size: int = 160,
    padding: int = 6,
    font_size: int = 13,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Rows x columns of uint8 RGB panels (``None`` = empty cell) composed into one image, with optional column
    labels above, row labels on the left and a caption under each panel."""
    if not panels or not any(len(row) for row in panels):
        raise ConfigError("grid_figure needs at least one panel")
    rows, columns = len(panels), max(len(row) for row in panels)
    font = _font(font_size)
    line = font_size + 4
    row_label_width = 0
    if row_labels:
        measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        row_label_width = max(int(measure.textlength(str(label), font=font)) for label in row_labels) + padding
    top = line if column_labels else 0
    caption_height = line if captions else 0
    cell_width, cell_height = panel_size + padding, panel_size + caption_height + padding
    size = (padding + row_label_width + columns * cell_width, padding + top + rows * cell_height)
    figure = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(figure)
    for column, label in enumerate(column_labels or []):
        draw.text((padding + row_label_width + column * cell_width, padding), str(label), fill=(0, 0, 0), font=font)
    for row, images in enumerate(panels):
        y = padding + top + row * cell_height
        if row_labels and row < len(row_labels):
            draw.text((padding, y + panel_size // 2 - line // 2), str(row_labels[row]), fill=(0, 0, 0), font=font)
        for column, image in enumerate(images):
            x = padding + row_label_width + column * cell_width
            figure.paste(_panel(image, panel_size, background), (x, y))
            if captions and row < len(captions) and column < len(captions[row]):
                draw.text((x, y + panel_size + 2), str(captions[row][column]), fill=(0, 0, 0), font=font)
    return figure


def png_bytes(figure: Image.Image | np.ndarray) -> bytes:
    """A figure (PIL image or uint8 RGB array) encoded as PNG, e.g. for a download button."""
    picture = figure if isinstance(figure, Image.Image) else Image.fromarray(figure)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def save_grid(path: str | os.PathLike[str], panels: Sequence[Sequence[np.ndarray | None]], **layout: object) -> Path:
    """``grid_figure(panels, **layout)`` written to ``path`` as PNG (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(grid_figure(panels, **layout)))  # type: ignore[arg-type]
    return path
